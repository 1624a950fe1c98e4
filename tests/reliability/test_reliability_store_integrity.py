"""Reliability class 2 (issue 13): silent corruption of activations.

Found: deleting one chunk file of a complete store (``rm STORE/positive/c/3/5/0``) and fitting
succeeded and changed k (Zarr reads a missing chunk as the fill value 0); a truncated chunk,
flipped bytes, a NaN, attributes that disagree with the arrays (``rows_per_shard: 0``, another
``d_model``, fewer layers declared than the arrays hold, ``n_rows: 0`` with ``--no-centre``) and a
truncated ``zarr.json`` ended in tracebacks (Zstd RuntimeError, LinAlgError, ZeroDivisionError,
IndexError, JSONDecodeError) or in a fit of the wrong thing.

Held now: each shard's completion marker records the sha256 of every chunk written and the fit
checks each block against it as it reads it; non-finite values are refused with the row and
layer named; attributes are checked for themselves and against the arrays on every open; and
``sea-dist store verify`` lists every problem in one pass (``--mark-pending`` lets a resumed
collection redo exactly the damaged shards). Every refusal here is one line with exit code 2 and
leaves the store byte-identical; every damage is refused or (where the decoded values are
unchanged) fits exactly what a clean store fits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr
from cli_outcome import Outcome, refusal_problems, run_cli
from reliability_workspace import shard_payload, store_spec, write_store
from tree_snapshot import changes, tree_digest

from sea_dist.config import FitConfig
from sea_dist.errors import StoreError
from sea_dist.fit import fit_store
from sea_dist.fit.result import FitResult
from sea_dist.store import ActivationStore, StoreSpec
from sea_dist.store.integrity import read_checked
from sea_dist.store.verify import verify_store

pytestmark = pytest.mark.fault

SPEC = dataclasses.replace(
    store_spec(n_rows=24, rows_per_shard=4, d_model=8), layers=(0, 1, 2), n_model_layers=3
)
"""6 shards x 3 layers x 3 roles = 54 activation chunks of (4, 1, 8)."""
ROLES = ("neutral", "positive", "negative")


def chunk(store: Path, role: str, shard: int, layer_index: int) -> Path:
    return store / role / "c" / str(shard) / str(layer_index) / "0"


def build(root: Path, spec: StoreSpec = SPEC) -> Path:
    url = root / "store.zarr"
    write_store(str(url), spec, list(range(spec.n_shards)))
    return url


def make_legacy(store: Path) -> None:
    """Turn a store into one written before digests: no ``digests`` attribute, no digest array
    and no attribute seal (both came later)."""
    shutil.rmtree(store / "shard_digests")
    edit_attrs(store, digests=None, attributes_sha256=None)


def edit_attrs(store: Path, **values: object) -> None:
    """Set (None: delete) group attributes by editing zarr.json, as a person would."""
    path = store / "zarr.json"
    meta = json.loads(path.read_text())
    for key, value in values.items():
        if value is None:
            meta["attributes"].pop(key, None)
        else:
            meta["attributes"][key] = value
    path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("pristine"))


@pytest.fixture(scope="module")
def clean_fit(pristine: Path) -> FitResult:
    return fit_store(str(pristine))


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store.zarr"
    shutil.copytree(pristine, copy)
    return copy


def same_fit(a: FitResult, b: FitResult) -> bool:
    return all(
        x.layer == y.layer
        and x.k_pos == y.k_pos
        and x.k_neg == y.k_neg
        and np.array_equal(x.U_pos, y.U_pos)
        and np.array_equal(x.U_neg, y.U_neg)
        for x, y in zip(a.layers, b.layers, strict=True)
    )


def fit_refused(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> str:
    """Run ``sea-dist fit`` on a damaged store: one line, exit 2, nothing written or changed."""
    before = tree_digest(store)
    out = tmp_path / "fit-out"
    outcome = run_cli(["fit", str(store), "--out", str(out), *extra], capsys)
    assert not refusal_problems(outcome), refusal_problems(outcome)
    assert not out.exists()
    assert changes(before, tree_digest(store)) == []
    return outcome.err.strip().splitlines()[-1]


def verify_lines(store: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Outcome:
    return run_cli(["store", "verify", str(store), *extra], capsys)


def problem_lines(outcome: Outcome) -> list[str]:
    return [line for line in outcome.out.splitlines() if line.strip() and not line.startswith("OK")]


# -- chunk damage: refused by the fit (chunk named) and by verify (one line) -------------------


def _flip(offset: float) -> Callable[[Path], object]:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[int(offset * (len(data) - 1))] ^= 0xFF
        path.write_bytes(bytes(data))

    return damage


def _copy_from(role: str, shard: int, layer_index: int) -> Callable[[Path], object]:
    def damage(path: Path) -> None:
        store = path.parents[4]
        path.write_bytes(chunk(store, role, shard, layer_index).read_bytes())

    return damage


def _as_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


CHUNK_DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "deleted": (Path.unlink, "no chunk file"),
    "truncated-half": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), ""),
    "emptied": (lambda p: p.write_bytes(b""), ""),
    "first-byte-flipped": (_flip(0.0), ""),
    "middle-byte-flipped": (_flip(0.5), ""),
    "last-byte-flipped": (_flip(1.0), ""),
    "garbage-appended": (lambda p: p.write_bytes(p.read_bytes() + b"\x00garbage"), ""),
    "copied-from-another-shard": (_copy_from("positive", 0, 1), "changed after it was written"),
    "copied-from-another-role": (_copy_from("neutral", 3, 1), "changed after it was written"),
    "copied-from-another-layer": (_copy_from("positive", 3, 2), "changed after it was written"),
    "replaced-by-a-folder": (_as_folder, "the chunk was changed"),
}


@pytest.mark.parametrize("kind", list(CHUNK_DAMAGE))
def test_damaged_chunk_is_refused_by_fit_and_named_by_verify(
    kind: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damage, detail = CHUNK_DAMAGE[kind]
    damage(chunk(store, "positive", 3, 1))
    where = "shard 3 positive layer 1 (chunk positive/c/3/1/0)"
    line = fit_refused(store, tmp_path, capsys)
    assert where in line and detail in line and "--mark-pending" in line
    outcome = verify_lines(store, capsys)
    assert outcome.code == 2 and outcome.escaped is None
    assert len(problem_lines(outcome)) == 1 and where in problem_lines(outcome)[0]


@pytest.mark.parametrize(
    ("codec", "dtype", "kind"),
    [
        ("none", "float32", "middle-byte-flipped"),  # decodes fine: only the digest sees it
        ("none", "float32", "truncated-half"),  # a reshape ValueError without a check
        ("none", "float32", "copied-from-another-shard"),
        ("gzip", "float32", "middle-byte-flipped"),
        ("blosc", "float16", "middle-byte-flipped"),
        ("zstd", "float16", "last-byte-flipped"),
    ],
)
def test_damage_is_caught_whatever_the_codec_and_dtype(
    codec: str, dtype: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = dataclasses.replace(SPEC, codec=codec, dtype=dtype)
    store = build(tmp_path / "s", spec)
    verify = verify_lines(store, capsys)
    assert verify.code == 0, verify.text
    CHUNK_DAMAGE[kind][0](chunk(store, "positive", 3, 1))
    assert "shard 3 positive layer 1" in fit_refused(store, tmp_path, capsys)


def test_every_single_byte_flip_is_refused_or_harmless(pristine: Path, tmp_path: Path) -> None:
    """Flip each byte of one compressed chunk in turn: the checked read (the one the fit and
    verify use) names the chunk, or the values decoded are exactly the original ones (a flip in
    bits the codec ignores)."""
    original = chunk(pristine, "negative", 2, 0).read_bytes()
    reference = ActivationStore.open(str(pristine))
    expected = reference.read("negative", slice(8, 12))[:, 0]
    check = reference.layer_checks()[0]
    store = tmp_path / "store.zarr"
    shutil.copytree(pristine, store)
    target = chunk(store, "negative", 2, 0)
    array = zarr.open_array(str(store), path="negative", mode="r")
    outcomes = {"refused": 0, "harmless": 0}
    for offset in range(len(original)):
        data = bytearray(original)
        data[offset] ^= 0x5A
        target.write_bytes(bytes(data))
        try:
            got = read_checked(array, "negative", check, 8, 12)
        except StoreError as error:
            assert "shard 2 negative layer 0" in str(error) and "\n" not in str(error)
            outcomes["refused"] += 1
        else:
            assert np.array_equal(got, expected), f"byte {offset}: wrong values passed the check"
            outcomes["harmless"] += 1
    assert outcomes["refused"] >= len(original) - 8, outcomes


@pytest.mark.parametrize(
    ("role", "row", "layer_index", "value", "found"),
    [
        ("positive", 13, 2, np.nan, "found nan"),
        ("neutral", 0, 0, np.inf, "found inf"),
        ("negative", 23, 1, -np.inf, "found -inf"),
    ],
)
def test_non_finite_activation_is_refused_with_row_and_layer(
    role: str,
    row: int,
    layer_index: int,
    value: float,
    found: str,
    store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zarr.open_array(str(store), path=role, mode="r+")[row, layer_index, 3] = value
    line = fit_refused(store, tmp_path, capsys)
    assert f"{role} row {row} (id 'row-{row}') layer {layer_index}" in line and found in line
    assert f"{role} row {row}" in problem_lines(verify_lines(store, capsys))[0]


def test_non_finite_activation_is_refused_in_a_store_without_digests(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_legacy(store)
    zarr.open_array(str(store), path="positive", mode="r+")[5, 1, 0] = np.nan
    assert "positive row 5 (id 'row-5') layer 1" in fit_refused(store, tmp_path, capsys)


def test_writing_non_finite_activations_is_refused_and_the_shard_stays_pending(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "store.zarr")
    store = ActivationStore.create(url, SPEC)
    activations, ids, generated, n_tokens = shard_payload(SPEC, 2)
    activations["negative"][1, 2, 4] = np.inf
    before = tree_digest(tmp_path)
    with pytest.raises(StoreError, match=r"shard 2 negative row 9 \(id 'row-9'\) layer 2"):
        store.write_shard(2, activations, ids, generated, n_tokens)
    assert changes(before, tree_digest(tmp_path)) == [] and 2 in store.pending_shards()


@pytest.mark.parametrize("svd", ["qr", "randomized"])
def test_other_read_paths_check_too(svd: str, tmp_path: Path) -> None:
    """The thin-QR route reads through lazy Dask arrays, not the moments tasks: checked too."""
    spec = dataclasses.replace(SPEC, d_model=32, n_rows=12)  # N < d: qr applies
    store = build(tmp_path / "s", spec)
    chunk(store, "negative", 1, 2).unlink()
    with pytest.raises(StoreError, match=r"shard 1 negative layer 2 .*no chunk file"):
        fit_store(str(store), FitConfig(svd=svd))  # type: ignore[arg-type]


@pytest.mark.parametrize("scheduler", ["synchronous", "processes"])
def test_damage_surfaces_as_one_line_through_every_local_scheduler(
    scheduler: str, store: Path
) -> None:
    chunk(store, "neutral", 4, 0).write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(StoreError, match="shard 4 neutral layer 0") as info:
        fit_store(str(store), FitConfig(scheduler=scheduler), partitions=3)
    assert "\n" not in str(info.value)


# -- completion markers --------------------------------------------------------------------------


MARKER_DAMAGE: dict[str, Callable[[Path], object]] = {
    "digest-deleted": lambda s: (s / "shard_digests" / "c" / "2").unlink(),
    "digest-of-another-shard": lambda s: (s / "shard_digests" / "c" / "2").write_bytes(
        (s / "shard_digests" / "c" / "1").read_bytes()
    ),
    "digest-garbled": lambda s: (s / "shard_digests" / "c" / "2").write_bytes(b"\x00garbage"),
    "flag-garbled": lambda s: (s / "shard_done" / "c" / "2").write_bytes(b"\x00garbage"),
}


@pytest.mark.parametrize("kind", list(MARKER_DAMAGE))
def test_damaged_marker_makes_the_shard_pending_and_resume_redoes_only_it(
    kind: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_fit: FitResult
) -> None:
    MARKER_DAMAGE[kind](store)
    line = fit_refused(store, tmp_path, capsys)
    assert "1 pending (first 2)" in line and "damaged marker" in line
    problems = problem_lines(verify_lines(store, capsys))
    assert len(problems) == 1 and "shard 2 marker" in problems[0]
    resumed = ActivationStore.create(str(store), SPEC)  # what a restarted collection does
    assert resumed.pending_shards() == [2]
    resumed.write_shard(2, *shard_payload(SPEC, 2))
    assert verify_store(str(store)).ok and same_fit(fit_store(str(store)), clean_fit)


def test_flag_without_data_is_not_done(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A flag set by hand on a shard never written: no digests, so not done (never zeros)."""
    url = tmp_path / "store.zarr"
    write_store(str(url), SPEC, [0, 1, 2, 3, 4])
    zarr.open_array(str(url), path="shard_done", mode="r+")[5] = 1
    assert "1 pending (first 5)" in fit_refused(url, tmp_path, capsys)


# -- attributes that disagree with the arrays or cannot describe a store -----------------------


ATTRIBUTE_EDITS: dict[str, tuple[dict[str, object], str]] = {
    "rows_per_shard-0": ({"rows_per_shard": 0}, "attribute rows_per_shard"),
    "rows_per_shard-negative": ({"rows_per_shard": -4}, "attribute rows_per_shard"),
    "rows_per_shard-float": ({"rows_per_shard": 4.0}, "attribute rows_per_shard"),
    "rows_per_shard-string": ({"rows_per_shard": "4"}, "attribute rows_per_shard"),
    "rows_per_shard-other": ({"rows_per_shard": 8, "n_shards": 3}, "chunks (8, 1, 8)"),
    "d_model-other": ({"d_model": 16}, "found d_model 16"),
    "d_model-bool": ({"d_model": True}, "attribute d_model"),
    "fewer-layers": ({"layers": [0, 1]}, "found 2 layers"),
    "more-layers": (
        {"layers": list(range(30)), "n_model_layers": 30},
        "found 30 layers",
    ),
    "layers-duplicated": ({"layers": [0, 1, 1]}, "distinct layer indices"),
    "layers-beyond-model": ({"layers": [0, 1, 7]}, "below n_model_layers"),
    "layers-not-a-list": ({"layers": "0,1,2"}, "attribute layers"),
    "n_rows-0": ({"n_rows": 0}, "attribute n_rows"),
    "n_rows-fewer": ({"n_rows": 20, "n_shards": 5}, "found n_rows 20"),
    "n_rows-more": ({"n_rows": 40, "n_shards": 10}, "found n_rows 40"),
    "n_shards-other": ({"n_shards": 9}, "attribute n_shards"),
    "dtype-other": ({"dtype": "float16"}, "expected dtype float16"),
    "dtype-unknown": ({"dtype": "int8"}, "attribute dtype"),
    "schema-version-2": ({"schema_version": 2}, "schema_version: expected 1"),
    "token-unknown": ({"token": "first"}, "attribute token"),
    "digests-unknown": ({"digests": "md5"}, "attribute digests"),
}


@pytest.mark.parametrize("case", list(ATTRIBUTE_EDITS))
def test_attributes_that_cannot_describe_the_arrays_are_refused(
    case: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values, expect = ATTRIBUTE_EDITS[case]
    edit_attrs(store, **values)
    for centre in ("--centre", "--no-centre"):
        assert expect in fit_refused(store, tmp_path, capsys, centre)
    outcome = verify_lines(store, capsys)
    assert outcome.code == 2 and outcome.escaped is None
    assert problem_lines(outcome) and all(expect in line for line in problem_lines(outcome)[:1])


def test_missing_attribute_is_refused(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_attrs(store, model_id=None)
    assert "expected key 'model_id'" in fit_refused(store, tmp_path, capsys)


SEALED_EDITS = {
    "model-revision-char": ("model_revision", lambda v: v[:-1] + ("0" if v[-1] != "0" else "1")),
    "demonstrations-fingerprint-char": (
        "demonstrations_fingerprint",
        lambda v: ("f" if v[0] != "f" else "e") + v[1:],
    ),
    "model-id-char": ("model_id", lambda v: v + "x"),
    "created-at": ("created_at", lambda v: v.replace("20", "19", 1)),
    "seal-itself": ("attributes_sha256", lambda v: ("0" if v[0] != "0" else "1") + v[1:]),
}


@pytest.mark.parametrize("case", list(SEALED_EDITS))
def test_a_changed_identity_attribute_is_caught_by_the_seal(
    case: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Values that stay well-formed (a character of a fingerprint) pass every other check; the
    attribute seal written at creation catches them, in the fit and in verify."""
    key, change = SEALED_EDITS[case]
    meta = json.loads((store / "zarr.json").read_text())
    edit_attrs(store, **{key: change(meta["attributes"][key])})
    assert "sealed at creation" in fit_refused(store, tmp_path, capsys)
    outcome = verify_lines(store, capsys)
    assert outcome.code == 2 and any("sealed at creation" in p for p in problem_lines(outcome))


# -- damaged or missing metadata files --------------------------------------------------------


METADATA_DAMAGE: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "group-truncated": ("zarr.json", lambda p: p.write_text(p.read_text()[:100]), "damaged"),
    "group-empty": ("zarr.json", lambda p: p.write_bytes(b""), "damaged"),
    "group-binary": ("zarr.json", lambda p: p.write_bytes(b"\xff\xfe\x00\x01"), "damaged"),
    "group-a-json-list": ("zarr.json", lambda p: p.write_text("[]"), "damaged"),
    "group-deleted": ("zarr.json", Path.unlink, "without zarr.json"),
    "array-truncated": ("positive/zarr.json", lambda p: p.write_text(p.read_text()[:90]), ""),
    "array-deleted": ("negative/zarr.json", Path.unlink, "array negative"),
    "array-shape-edited": (
        "neutral/zarr.json",
        lambda p: p.write_text(p.read_text().replace('"shape": [\n    24', '"shape": [\n    28')),
        "neutral axis 0 has 28",
    ),
    "marker-array-truncated": ("shard_done/zarr.json", lambda p: p.write_text("{"), ""),
    "digest-array-deleted": ("shard_digests/zarr.json", Path.unlink, "array shard_digests"),
    "row-ids-array-truncated": ("row_ids/zarr.json", lambda p: p.write_text("{"), "row_ids"),
}


@pytest.mark.parametrize("case", list(METADATA_DAMAGE))
def test_damaged_metadata_is_refused_in_one_line(
    case: str, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, damage, expect = METADATA_DAMAGE[case]
    damage(store / name)
    assert expect in fit_refused(store, tmp_path, capsys)
    outcome = verify_lines(store, capsys)
    assert outcome.code == 2 and outcome.escaped is None and problem_lines(outcome)


# -- verify: every problem in one pass, mark pending, resume --------------------------------------


def test_verify_reports_a_clean_store_ok(
    pristine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_digest(pristine)
    outcome = verify_lines(pristine, capsys)
    assert outcome.code == 0 and outcome.out.startswith("OK:") and "54 against their" in outcome.out
    assert changes(before, tree_digest(pristine)) == []


def test_verify_lists_every_problem_then_resume_redoes_exactly_those_shards(
    store: Path, capsys: pytest.CaptureFixture[str], clean_fit: FitResult
) -> None:
    chunk(store, "positive", 3, 2).unlink()
    chunk(store, "neutral", 1, 0).write_bytes(b"torn")
    _flip(0.5)(chunk(store, "negative", 1, 1))
    zarr.open_array(str(store), path="positive", mode="r+")[17, 0, 0] = np.nan  # shard 4
    (store / "row_ids" / "c" / "5").unlink()
    before = tree_digest(store)
    outcome = verify_lines(store, capsys)
    assert outcome.code == 2 and len(problem_lines(outcome)) == 5, outcome.out
    assert changes(before, tree_digest(store)) == []  # verify alone writes nothing
    marked = verify_lines(store, capsys, "--mark-pending")
    assert "marked 4 damaged shards pending ([1, 3, 4, 5])" in marked.err
    resumed = ActivationStore.create(str(store), SPEC)
    assert resumed.pending_shards() == [1, 3, 4, 5]  # and nothing else is redone
    for shard in resumed.pending_shards():
        resumed.write_shard(shard, *shard_payload(SPEC, shard))
    assert verify_lines(store, capsys).code == 0
    assert same_fit(fit_store(str(store)), clean_fit)


def test_mark_pending_writes_nothing_when_the_metadata_is_damaged(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_attrs(store, d_model=16)
    chunk(store, "positive", 3, 2).unlink()
    before = tree_digest(store)
    outcome = verify_lines(store, capsys, "--mark-pending")
    assert outcome.code == 2 and changes(before, tree_digest(store)) == []


def test_verify_of_missing_and_foreign_locations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    for target, expect in (("absent.zarr", "found nothing"), ("notes", "without zarr.json")):
        outcome = verify_lines(tmp_path / target, capsys)
        assert outcome.code == 2 and len(problem_lines(outcome)) == 1 and expect in outcome.out


def test_verify_over_fsspec() -> None:
    url = "memory://integrity/store.zarr"
    write_store(url, SPEC, list(range(SPEC.n_shards)))
    assert verify_store(url).ok
    zarr.open_array(url, path="negative", mode="r+")[0, 0, 0] = 5.0
    (problem,) = verify_store(url).problems
    assert "shard 0 negative layer 0" in problem and "changed after it was written" in problem


# -- stores written before digests ----------------------------------------------------------------


def test_old_store_fits_with_a_warning_and_verifies(
    store: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    clean_fit: FitResult,
) -> None:
    make_legacy(store)
    with caplog.at_level(logging.WARNING):
        assert same_fit(fit_store(str(store)), clean_fit)
    assert "written before shard digests" in caplog.text
    outcome = verify_lines(store, capsys)
    assert outcome.code == 0 and "0 against their digests" in outcome.out
    assert "written before shard digests" in outcome.err


def test_old_store_missing_chunk_is_refused(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_legacy(store)
    chunk(store, "positive", 3, 2).unlink()
    line = fit_refused(store, tmp_path, capsys)
    assert "shard 3 positive layer 2" in line and "expected a chunk file, found none" in line
    assert len(problem_lines(verify_lines(store, capsys))) == 1


def test_old_store_resumes_and_new_shards_record_digests(
    tmp_path: Path, clean_fit: FitResult
) -> None:
    url = tmp_path / "store.zarr"
    write_store(str(url), SPEC, [0, 1, 2])
    make_legacy(url)
    resumed = ActivationStore.create(str(url), SPEC)
    assert resumed.pending_shards() == [3, 4, 5]
    for shard in resumed.pending_shards():
        resumed.write_shard(shard, *shard_payload(SPEC, shard))
    markers = resumed.markers()
    assert markers.unchecked == {0, 1, 2} and set(markers.digests) == {3, 4, 5}
    report = verify_store(str(url))
    assert report.ok and report.digests_checked == 27
    chunk(url, "neutral", 4, 0).unlink()  # a new shard is now protected by its digest
    assert "no chunk file" in verify_store(str(url)).problems[0]


def test_store_command_is_registered_without_importing_zarr() -> None:
    code = "import sys, sea_dist.cli as c; c.build_parser(); print('zarr' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False", "sea-dist --help would import zarr"


# -- end to end: the reproduction of the issue through Ray collection -----------------------------


@pytest.mark.integration
def test_collected_store_deleted_chunk_then_redo_only_that_shard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rm STORE/positive/c/3/1/0`` on a store collected by Ray actors: the fit refuses it,
    verify names it, ``--mark-pending`` + the same collect config redo shard 3 alone, and the
    fit then equals the fit of the untouched store."""
    import ray
    from tiny_models import save_tiny_model

    from sea_dist.collect.driver import collect
    from sea_dist.config import config_from_dict

    folder = save_tiny_model("llama", tmp_path / "tiny-llama")
    config = config_from_dict(
        {
            "model": {"id": str(folder)},
            "data": {"source": "builtin", "limit": 12},
            "collect": {
                "layers": [0, 1],
                "neutral": "prompt",
                "batch_size": 3,
                "rows_per_shard": 3,
                "num_actors": 1,
            },
            "store": {"url": str(tmp_path / "store.zarr")},
        }
    )
    store = tmp_path / "store.zarr"
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        collect(config, progress=False)
        clean = fit_store(str(store))
        assert verify_lines(store, capsys).code == 0
        chunk(store, "positive", 3, 1).unlink()
        assert "shard 3 positive layer 1" in fit_refused(store, tmp_path, capsys)
        assert verify_lines(store, capsys, "--mark-pending").code == 2
        summary = collect(config, progress=False)
    finally:
        ray.shutdown()
    assert (summary.shards_skipped, summary.shards_collected) == (3, 1)
    assert verify_lines(store, capsys).code == 0
    assert same_fit(fit_store(str(store)), clean)
