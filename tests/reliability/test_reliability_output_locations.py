"""Class 9: no output lands in a place that disappears.

A Ray job submitted with ``--working-dir .`` runs inside Ray's temporary copy of the checkout
(``.../runtime_resources/working_dir_files/_ray_pkg_<hash>``); relative output locations there
used to publish into that copy, which Ray deletes. These tests build the same folder layout on
disk and run the real commands with their working directory inside it (the real job submission
is in ``tests/integration/test_jobs_submit.py``): a relative (or absolute) output location inside
the copy is refused in one line naming ``SEA_DIST_OUTPUT_BASE``, and with that base set every
relative location resolves against it and is printed absolute.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_outcome import refusal_problems, run_cli
from synthetic_fit import write_synthetic_fit
from tree_snapshot import changes, tree_digest

from sea_dist.cli.environment import output_base_from_environment
from sea_dist.config import SeaConfig, with_overrides
from sea_dist.errors import ConfigError
from sea_dist.outputs import (
    OUTPUT_BASE_ENV,
    anchor_location,
    anchor_outputs,
    output_base,
    ray_working_dir,
)
from sea_dist.registry.filesystem import Registry


def _ray_copy(root: Path) -> Path:
    """Ray's layout of an unpacked working_dir below ``root``, with a config inside it."""
    copy = (
        root
        / "ray"
        / "session_2026-12-04_18-00-00_000000_1"
        / "runtime_resources"
        / "working_dir_files"
        / "_ray_pkg_0123456789abcdef"
    )
    (copy / "jobs" / "configs").mkdir(parents=True)
    return copy


def _relative_config(copy: Path) -> Path:
    """The README's default layout: every output relative (``sea-runs/...``)."""
    path = copy / "jobs" / "configs" / "relative.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"id": "tiny-model-never-loaded"},
                "collect": {"neutral": "prompt"},
                "store": {"url": "sea-runs/store.zarr"},
                "fit": {"out": "sea-runs/fit"},
                "publish": {"registry": "sea-runs/registry", "name": "tiny"},
                "evaluate": {"out": "sea-runs/eval"},
            }
        )
    )
    return path


def test_ray_working_dir_is_recognised(tmp_path: Path) -> None:
    copy = _ray_copy(tmp_path)
    assert ray_working_dir(copy) == copy
    assert ray_working_dir(copy / "jobs" / "configs") == copy
    assert ray_working_dir(tmp_path) is None
    assert ray_working_dir(Path("/tmp/_ray_pkg_x")) is None  # not below working_dir_files


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "location",
    ["sea-runs/store.zarr", "./out", "file://sea-runs/x", "jobs/../sea-runs/x", "{copy}/abs"],
)
def test_a_location_inside_the_copy_is_refused(location: str, tmp_path: Path) -> None:
    copy = _ray_copy(tmp_path)
    with pytest.raises(ConfigError) as raised:
        anchor_location(location.format(copy=copy), "fit.out", cwd=copy)
    message = str(raised.value)
    assert message.startswith("fit.out: expected a location that outlives the Ray job")
    assert OUTPUT_BASE_ENV in message and "_ray_pkg_0123456789abcdef" in message


def test_locations_outside_the_copy_are_made_absolute(tmp_path: Path) -> None:
    copy = _ray_copy(tmp_path)
    outside = tmp_path / "shared" / "fit"
    assert anchor_location(str(outside), "fit.out", cwd=copy) == str(outside)
    # ".." out of the copy lands outside it: allowed, and printed absolute
    escaped = anchor_location("../../x", "fit.out", cwd=copy)
    assert escaped == str(copy.parent.parent / "x")
    assert anchor_location("s3://bucket/fit", "fit.out", cwd=copy) == "s3://bucket/fit"
    assert anchor_location("memory://reg", "publish.registry", cwd=copy) == "memory://reg"
    assert anchor_location("runs/fit", "fit.out", cwd=tmp_path) == str(tmp_path / "runs" / "fit")


def test_the_base_anchors_relative_locations(tmp_path: Path) -> None:
    copy = _ray_copy(tmp_path)
    base = tmp_path / "shared"
    assert anchor_location("sea-runs/fit", "fit.out", base=str(base), cwd=copy) == str(
        base / "sea-runs" / "fit"
    )
    assert (
        anchor_location("sea-runs/fit", "fit.out", base="s3://bucket/runs/", cwd=copy)
        == "s3://bucket/runs/sea-runs/fit"
    )
    # an absolute location is where the user said, base or not (still refused inside the copy)
    with pytest.raises(ConfigError):
        anchor_location(str(copy / "x"), "fit.out", base=str(base), cwd=copy)


@pytest.mark.bad_input
@pytest.mark.parametrize("base", ["sea-runs", "./shared", "file://relative/x"])
def test_a_relative_base_is_refused(base: str) -> None:
    with pytest.raises(ConfigError, match=f"{OUTPUT_BASE_ENV}: expected an absolute folder"):
        output_base(base)
    with pytest.raises(ConfigError, match=f"{OUTPUT_BASE_ENV}: expected an absolute folder"):
        output_base_from_environment({OUTPUT_BASE_ENV: base})  # what the CLI and jobs read


def test_every_output_is_reported_at_once(tmp_path: Path) -> None:
    copy = _ray_copy(tmp_path)
    config = with_overrides(SeaConfig(), store={"url": str(tmp_path / "kept.zarr")})
    with pytest.raises(ConfigError) as raised:
        anchor_outputs(config, base=None, cwd=copy)
    assert [p.split(":")[0] for p in raised.value.problems] == [
        "fit.out",
        "publish.registry",
        "evaluate.out",
    ]
    anchored = anchor_outputs(config, base=str(tmp_path / "b"), cwd=copy)
    assert anchored.fit.out == str(tmp_path / "b" / "sea-runs" / "fit")
    assert anchored.store.url == str(tmp_path / "kept.zarr")
    assert anchor_outputs(anchored, cwd=copy) == anchored  # idempotent
    from_env = output_base_from_environment({OUTPUT_BASE_ENV: str(tmp_path / "b")})
    assert anchor_outputs(config, base=from_env, cwd=copy) == anchored


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "command",
    [
        ["run", "{config}", "--no-progress"],
        ["collect", "{config}", "--no-progress"],
        ["collect", "{config}", "--store", "elsewhere.zarr", "--no-progress"],
        ["fit", "--config", "{config}"],
        ["publish", "{fit}", "--config", "{config}"],
        ["publish", "{fit}", "--registry", "reg"],
        ["registry", "gc", "--name", "tiny", "--keep", "1", "--registry", "reg"],
    ],
    ids=lambda c: "-".join(a for a in c if not a.startswith("{"))[:40],
)
def test_commands_in_the_copy_refuse_relative_outputs(
    command: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    copy = _ray_copy(tmp_path)
    config = _relative_config(copy)
    fit = write_synthetic_fit(tmp_path / "fit-outside")
    monkeypatch.chdir(copy)
    monkeypatch.delenv(OUTPUT_BASE_ENV, raising=False)
    monkeypatch.delenv("SEA_DIST_REGISTRY", raising=False)
    before = tree_digest(tmp_path)
    argv = [a.format(config=config, fit=fit) for a in command]
    outcome = run_cli(argv, capsys)
    assert refusal_problems(outcome, OUTPUT_BASE_ENV) == []
    assert changes(before, tree_digest(tmp_path)) == []


def test_publish_with_a_base_lands_there_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _ray_copy(tmp_path)
    config = _relative_config(copy)
    fit = write_synthetic_fit(tmp_path / "fit-outside")
    base = tmp_path / "shared"
    monkeypatch.chdir(copy)
    monkeypatch.setenv(OUTPUT_BASE_ENV, str(base))
    monkeypatch.delenv("SEA_DIST_REGISTRY", raising=False)
    outcome = run_cli(["publish", str(fit), "--config", str(config)], capsys)
    assert outcome.code == 0, outcome.text
    registry = base / "sea-runs" / "registry"
    assert f"(registry {registry})" in outcome.out
    assert Registry(str(registry)).resolve("tiny").version == 1
    assert not (copy / "sea-runs").exists()
    listed = run_cli(["registry", "versions", "tiny"], capsys)  # reads resolve the same way
    assert listed.code == 0 and "tiny-random-llama" in listed.out, listed.text
