"""Configuration input is bounded: size, depth, aliases, duplicate keys, numbers and schedules.

Round two found a 455-byte YAML alias bomb taking 33 s and 2 GB before a MemoryError, a 300-byte
one producing a 522 KB "one-line" error, a list nested 5000 deep raising RecursionError, NaN and
inf accepted, ``rows_per_shard: 1e23`` accepted, a section given twice silently keeping the last,
and a cron of ``99 99 99 99 99`` in ``Mars/Phobos`` passing ``validate-config``. Now
:mod:`sea_dist.config_yaml` walks the YAML events with alias expansion counted before anything
is built, refuses duplicate keys, config numbers must be finite and within stated ranges,
schedules are parsed by the scheduler's own cron parser, and every error line quotes at most a
short excerpt of the value.

Each case runs ``sea-dist validate-config`` in-process (plus a sample through ``run`` and
``schedule next``): exit 2, one line per problem, each line short, nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_outcome import run_cli
from tree_snapshot import changes, tree_digest

from sea_dist.config import load_config
from sea_dist.config_yaml import MAX_CONFIG_BYTES, parse_yaml
from sea_dist.errors import ConfigError, excerpt

MAX_LINE = 400
"""No error line is longer (the field path, the expectation, a value excerpt and the fix)."""


def _alias_bomb(levels: int, fan: int = 9) -> str:
    text = "a: &a [" + ", ".join(['"lol"'] * fan) + "]\n"
    previous = "a"
    for name in "bcdefghijklm"[:levels]:
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * fan) + "]\n"
        previous = name
    return text


CASES: dict[str, tuple[bytes, str]] = {
    # alias expansion, depth and size
    "alias-bomb-455-bytes": (_alias_bomb(9).encode(), "values (aliases expanded)"),
    "alias-bomb-300-bytes-in-a-field": (  # 4681 values: under the limit, so quoted
        (
            "collect:\n  site: &x [" + ", ".join(["abcdefghij"] * 8) + "]\n"
            "  token: &y [" + ", ".join(["*x"] * 8) + "]\n"
            "  layers: [" + ", ".join(["*y"] * 8) + "]\n"
        ).encode(),
        "collect.layers: expected str or a list of int, found [[[",
    ),
    "nested-5000-deep": (("x: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "levels of nesting"),
    "nested-mappings-100-deep": (
        ("".join(f"{'  ' * i}k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n").encode(),
        "levels of nesting",
    ),
    "deep-through-aliases": (
        (
            "a: &a " + "[" * 20 + "1" + "]" * 20 + "\nb: " + "[" * 16 + "*a " + "]" * 16 + "\n"
        ).encode(),
        "levels of nesting (aliases expanded)",
    ),
    "twenty-thousand-keys": (
        ("data:\n  columns:\n" + "".join(f"    k{i}: v\n" for i in range(20_000))).encode(),
        "values",
    ),
    "file-over-one-mib": (b"# " + b"x" * MAX_CONFIG_BYTES + b"\n", "at most 1048576 bytes"),
    # duplicate keys
    "section-twice": (b"fit:\n  centre: false\nfit:\n  centre: true\n", "'fit' at lines 1 and 3"),
    "nested-key-twice": (b"collect:\n  layers: all\n  layers: [1]\n", "'layers' at lines 2"),
    "key-twice-in-flow-mapping": (b"fit: {centre: true, centre: false}\n", "'centre'"),
    "key-twice-in-a-schedule": (
        b"schedule:\n  schedules:\n    - name: a\n      name: b\n      cron: 0 3 * * *\n"
        b"      job_config: x.yaml\n",
        "'name'",
    ),
    "bool-key-twice": (b"data:\n  columns: {yes: a, true: b}\n", "True at lines"),
    # non-finite and out-of-range numbers
    "nan-energy": (b"fit:\n  negative_energy: .nan\n", "fit.negative_energy: expected a finite"),
    "inf-feature-scale": (b"fit:\n  feature_map_scale: .inf\n", "feature_map_scale: expected a"),
    "minus-inf-gpus": (b"collect:\n  num_gpus_per_actor: -.inf\n", "expected a finite number"),
    "nan-budget": (
        b"evaluate:\n  budget:\n    max_perplexity_ratio: .nan\n",
        "evaluate.budget.max_perplexity_ratio: expected a finite number",
    ),
    "huge-float-energy": (b"fit:\n  positive_energy: 1.0e+400\n", "expected a finite number"),
    "rows-per-shard-1e23": (b"collect:\n  rows_per_shard: 1e23\n", "rows_per_shard: expected"),
    "rows-per-shard-1.0e+23": (b"collect:\n  rows_per_shard: 1.0e+23\n", "expected int"),
    "rows-per-shard-10-to-23": (
        b"collect:\n  rows_per_shard: 100000000000000000000000\n",
        "rows_per_shard: expected an integer of at most",
    ),
    "rows-per-shard-one-million": (b"collect:\n  rows_per_shard: 1000000\n", "at most 65536"),
    "batch-size-huge": (b"collect:\n  batch_size: 1000000\n", "batch_size: expected at most"),
    "max-new-tokens-huge": (b"collect:\n  max_new_tokens: 10000000\n", "max_new_tokens"),
    "limit-huge": (b"data:\n  limit: 10000000000000\n", "data.limit: expected at most"),
    "seed-negative": (b"fit:\n  seed: -1\n", "fit.seed: expected an integer >= 0"),
    "chunk-rows-huge": (b"fit:\n  chunk_rows: 999999999999\n", "fit.chunk_rows"),
    "eval-batch-huge": (b"evaluate:\n  batch_size: 100000\n", "evaluate.batch_size"),
    # schedules
    "cron-99-in-mars": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: 99 99 99 99 99\n"
        b"      job_config: x.yaml\n      timezone: Mars/Phobos\n",
        "cron minute: expected a value in 0-59",
    ),
    "timezone-unknown": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: 0 3 * * *\n"
        b"      job_config: x.yaml\n      timezone: Mars/Phobos\n",
        "timezone: expected an IANA zone name",
    ),
    "timezone-traversal": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: 0 3 * * *\n"
        b"      job_config: x.yaml\n      timezone: ../../etc/passwd\n",
        "timezone: expected an IANA zone name",
    ),
    "cron-never-fires": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: 0 0 30 2 *\n"
        b"      job_config: x.yaml\n",
        "fires within 8 years",
    ),
    "cron-step-zero": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: '*/0 * * * *'\n"
        b"      job_config: x.yaml\n",
        "cron minute: expected a value in 0-59",
    ),
    # A backwards range (9-5) is an overnight window since croniter; a range past 23 is not.
    "cron-range-out-of-bounds": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: 0 9-25 * * *\n"
        b"      job_config: x.yaml\n",
        "cron hour: expected a value in 0-23",
    ),
    "cron-weekday-8": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: 0 3 * * 8\n"
        b"      job_config: x.yaml\n",
        "cron day of week",
    ),
    "schedule-names-twice": (
        b"schedule:\n  schedules:\n"
        b"    - {name: a, cron: 0 3 * * *, job_config: x.yaml}\n"
        b"    - {name: a, cron: 0 4 * * *, job_config: y.yaml}\n",
        "schedule.schedules: expected unique names",
    ),
    "schedule-name-blank": (
        b"schedule:\n  schedules:\n    - {name: ' ', cron: 0 3 * * *, job_config: x.yaml}\n",
        "name: expected a non-empty schedule name",
    ),
    # huge values are quoted as short excerpts
    "device-one-megabyte-less": (
        b"model:\n  device: " + b"x" * 900_000 + b"\n",
        "model.device: expected cpu",
    ),
    "unknown-key-100k": (b"? " + b"y" * 100_000 + b"\n: 1\n", "unknown key"),
    "timezone-10k": (
        b"schedule:\n  schedules:\n    - name: a\n      cron: 0 3 * * *\n"
        b"      job_config: x.yaml\n      timezone: " + b"Z" * 10_000 + b"\n",
        "timezone: expected an IANA zone name",
    ),
    "wrong-type-big-list": (
        b"collect:\n  batch_size: [" + b", ".join([b"123456789"] * 5000) + b"]\n",
        "collect.batch_size: expected int, found [123456789, 123456789",
    ),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", list(CASES))
def test_bounded_config_is_refused(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text, expect = CASES[case]
    path = tmp_path / "config.yaml"
    path.write_bytes(text)
    monkeypatch.chdir(tmp_path)
    before = tree_digest(tmp_path)
    outcome = run_cli(["validate-config", str(path)], capsys)
    assert outcome.escaped is None, outcome.escaped
    assert outcome.code == 2, outcome.text[:MAX_LINE]
    lines = outcome.text.splitlines()
    assert lines and all(len(line) <= MAX_LINE for line in lines), [ln[:200] for ln in lines]
    assert any(expect in line for line in lines), lines
    assert changes(before, tree_digest(tmp_path)) == []


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("command", "case"),
    [
        ("run", "alias-bomb-455-bytes"),
        ("run", "section-twice"),
        ("run", "rows-per-shard-10-to-23"),
        ("schedule", "cron-99-in-mars"),
        ("schedule", "nested-5000-deep"),
    ],
)
def test_bounded_config_through_other_commands(
    command: str,
    case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(CASES[case][0])
    monkeypatch.chdir(tmp_path)
    argv = ["run", str(path)] if command == "run" else ["schedule", "next", str(path)]
    before = tree_digest(tmp_path)
    outcome = run_cli(argv, capsys)
    assert outcome.escaped is None, outcome.escaped
    assert outcome.code == 2
    lines = [line for line in outcome.text.splitlines() if line.strip()]
    assert len(lines) == 1 and len(lines[0]) <= 4100, lines[:3]
    assert changes(before, tree_digest(tmp_path)) == []


# -- what is still accepted -----------------------------------------------------------------------


def test_anchors_merge_keys_and_valid_schedules_still_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "fit:\n  <<: {centre: false, positive_energy: 0.9}\n  negative_energy: 0.5\n"
        "evaluate:\n  <<: {limit: 10}\n  batch_size: 4\n"
        "collect:\n  rows_per_shard: 65536\n  layers: &l [0, 1]\n"
        "schedule:\n  schedules:\n"
        "    - {name: a, cron: '*/15 1-5 * * 1-5', job_config: x.yaml, "
        "timezone: Europe/Berlin}\n"
        "    - {name: b, cron: 0 0 29 2 *, job_config: x.yaml}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.fit.centre is False and config.fit.positive_energy == 0.9
    assert config.fit.negative_energy == 0.5 and config.evaluate.limit == 10
    assert [s.name for s in config.schedule.schedules] == ["a", "b"]


def test_the_largest_accepted_document_is_bounded() -> None:
    """Just under the node limit loads; one alias more is refused without being expanded."""
    items = ", ".join(["1"] * 99)
    ok = "a: &a [" + items + "]\nb: [" + ", ".join(["*a"] * 98) + "]\n"  # 9904 values
    assert len(parse_yaml(ok)["b"]) == 98
    with pytest.raises(ConfigError, match="values"):
        parse_yaml(ok + "c: [" + ", ".join(["*a"] * 2) + "]\n")


def test_excerpt_never_builds_the_whole_repr() -> None:
    bomb: list[object] = ["lol"] * 9
    for _ in range(12):  # 9**13 leaves: its full repr would not fit in memory
        bomb = [bomb] * 9
    text = excerpt(bomb)
    assert len(text) <= 140 and text.endswith("(cut)")
    assert excerpt("x" * 10**6).endswith("(cut)") and len(excerpt("x" * 10**6)) <= 140
    assert excerpt({"a": [1, (2,)]}) == repr({"a": [1, (2,)]})
