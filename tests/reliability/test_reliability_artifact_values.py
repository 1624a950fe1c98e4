"""Round two, class 3: projections whose values cannot be an edit are never published or loaded.

A NaN in a ``U_pos``, or a ``U_pos`` multiplied by 1000, used to pass ``publish``, ``load_edit``
and ``evaluate`` (perplexity nan, exit 0): a sha256 pins bytes, and the shapes were right. Now
every tensor is checked for its dtype (float32/float64), finite values, orthonormal bases
(``max |U^T U - I| <= 1e-3``) and singular values >= 0, by ``publish`` (Python and CLI), by
``load_edit`` on a fit output, and by every loader of a published artifact: ``load_artifact``
(folder and reference), ``Registry.load``, ``Registry.download``, ``load_edit`` (artifact folder,
reference, and the serving-image reader without fsspec) and the HTTP client. Each refusal is one
line naming the layer and the tensor.

The bad artifacts are "published" by forging a good version consistently (tensors, manifest
sha256 and completion marker rewritten): what a registry written before these checks, or by a
tool that skipped them, holds. Layout damage the issue did not name (negative shapes and
offsets, a header length of 2**64 - 8) is run through the fit-output readers too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_outcome import refusal_problems, run_cli
from synthetic_fit import write_synthetic_fit
from tree_snapshot import changes, tree_digest

from sea_dist.edit import load_edit
from sea_dist.edit.projections import ORTHONORMAL_ATOL as EDIT_ORTHONORMAL_ATOL
from sea_dist.errors import ArtifactError, SeaDistError
from sea_dist.format.anchors import manifest_digest, marker_bytes
from sea_dist.format.tensors import decode, encode, sha256_hex
from sea_dist.format.values import ORTHONORMAL_ATOL
from sea_dist.registry import load_artifact
from sea_dist.registry.filesystem import Registry

PROJECTIONS = "projections.safetensors"
MANIFEST = "manifest.json"
Arrays = dict[str, np.ndarray]


def _set(arrays: Arrays, name: str, value: np.ndarray) -> None:
    arrays[name] = value


def _scaled_column(arrays: Arrays, name: str, factor: float) -> None:
    u = arrays[name].copy()
    u[:, 0] *= factor
    arrays[name] = u


def _zero_column(arrays: Arrays) -> None:
    u = arrays["layers.3.U_pos"].copy()
    u[:, 1] = 0.0
    arrays["layers.3.U_pos"] = u


def _duplicated_column(arrays: Arrays) -> None:
    u = arrays["layers.3.U_neg"].copy()
    u[:, 1] = u[:, 0]
    arrays["layers.3.U_neg"] = u


def _unit_but_not_orthogonal(arrays: Arrays) -> None:
    u = arrays["layers.3.U_pos"].copy()
    mixed = (u[:, 0] + u[:, 1]) / np.linalg.norm(u[:, 0] + u[:, 1])
    u[:, 1] = mixed  # unit norm, 45 degrees from column 0
    arrays["layers.3.U_pos"] = u


def _poke(name: str, value: float, index: tuple[int, ...]) -> Callable[[Arrays], None]:
    def change(arrays: Arrays) -> None:
        array = arrays[name].copy()
        array[index] = value
        arrays[name] = array

    return change


def _identity_int(arrays: Arrays) -> None:
    # Orthonormal values, wrong dtype: only the dtype rule can refuse it.
    arrays["layers.3.U_pos"] = np.eye(16, 3, dtype=np.int64)


# name -> (change to the arrays of a good fit, fragments the one-line refusal must hold)
BAD_VALUES: dict[str, tuple[Callable[[Arrays], None], tuple[str, ...]]] = {
    "nan-in-U_pos": (
        _poke("layers.3.U_pos", np.nan, (4, 1)),
        ("layer 3", "layers.3.U_pos", "finite", "NaN"),
    ),
    "inf-in-U_neg": (
        _poke("layers.3.U_neg", np.inf, (0, 0)),
        ("layer 3", "layers.3.U_neg", "finite", "inf"),
    ),
    "nan-in-mean": (_poke("layers.1.mean", np.nan, (7,)), ("layer 1", "layers.1.mean", "finite")),
    "minus-inf-in-mean": (
        _poke("layers.3.mean", -np.inf, (0,)),
        ("layer 3", "layers.3.mean", "finite"),
    ),
    "nan-in-S_pos": (_poke("layers.3.S_pos", np.nan, (2,)), ("layers.3.S_pos", "finite")),
    "U_pos-times-1000": (
        lambda a: _set(a, "layers.3.U_pos", a["layers.3.U_pos"] * 1000),
        ("layer 3", "layers.3.U_pos", "orthonormal", f"{ORTHONORMAL_ATOL:g}", "norm 1000"),
    ),
    "U_neg-times-1000-layer-1": (
        lambda a: _set(a, "layers.1.U_neg", a["layers.1.U_neg"] * 1000),
        ("layer 1", "layers.1.U_neg", "orthonormal"),
    ),
    "column-off-by-2x-tolerance": (
        lambda a: _scaled_column(a, "layers.3.U_pos", 1 + ORTHONORMAL_ATOL),
        ("layers.3.U_pos", "orthonormal", "column 0"),
    ),
    "zero-column": (_zero_column, ("layers.3.U_pos", "orthonormal", "column 1 has norm 0")),
    "duplicated-column": (
        _duplicated_column,
        ("layers.3.U_neg", "orthonormal", "columns 0 and 1"),
    ),
    "unit-columns-not-orthogonal": (
        _unit_but_not_orthogonal,
        ("layers.3.U_pos", "orthonormal", "inner product 0.707"),
    ),
    "U_pos-float16": (
        lambda a: _set(a, "layers.3.U_pos", a["layers.3.U_pos"].astype(np.float16)),
        ("layers.3.U_pos", "dtype float32 or float64", "float16"),
    ),
    "U_pos-int64-identity": (_identity_int, ("layers.3.U_pos", "dtype", "int64")),
    "negative-singular-value": (
        _poke("layers.3.S_neg", -1.0, (0,)),
        ("layers.3.S_neg", "singular values >= 0"),
    ),
}


def _rewrite(folder: Path, change: Callable[[Arrays], None]) -> bytes:
    arrays = decode((folder / PROJECTIONS).read_bytes(), "test")
    change(arrays)
    data = encode(arrays)
    (folder / PROJECTIONS).write_bytes(data)
    return data


def _bad_fit(root: Path, case: str) -> Path:
    fit = write_synthetic_fit(root / f"fit-{case}", seed=5)
    _rewrite(fit, BAD_VALUES[case][0])
    return fit


def forge_version(registry_root: Path, name: str, version: int, data: bytes) -> None:
    """Replace a published version's tensors with ``data``, consistently: manifest and marker
    are re-hashed, as a registry written before the value checks would hold it."""
    folder = registry_root / name / "versions" / str(version)
    (folder / PROJECTIONS).write_bytes(data)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest["sha256"] = sha256_hex(data)
    manifest["size_bytes"] = len(data)
    manifest["files"][PROJECTIONS] = {"sha256": sha256_hex(data), "size_bytes": len(data)}
    raw = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    (folder / MANIFEST).write_bytes(raw)
    marker = registry_root / name / "complete" / f"{version}.json"
    completed = json.loads(marker.read_text(encoding="utf-8"))["completed_at"]
    marker.write_bytes(marker_bytes(version, sha256_hex(data), manifest_digest(raw), completed))
    (registry_root / name / "index.parquet").unlink(missing_ok=True)


def _assert_names(message: str, fragments: tuple[str, ...]) -> None:
    assert "\n" not in message.strip(), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# -- fit outputs: publish (Python and CLI) and load_edit -------------------------------------------


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(BAD_VALUES))
@pytest.mark.parametrize("path", ["publish", "cli-publish", "load-edit-fit"])
def test_bad_values_in_a_fit_output_are_refused(
    case: str, path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(str(tmp_path / "registry"))
    registry.publish(write_synthetic_fit(tmp_path / "good", seed=1), "vals")
    fit = _bad_fit(tmp_path, case)
    before = tree_digest(tmp_path)
    if path == "cli-publish":
        argv = ["publish", str(fit), "--name", "vals", f"--registry={registry.url}"]
        outcome = run_cli(argv, capsys)
        assert refusal_problems(outcome, BAD_VALUES[case][1][0]) == []
        message = outcome.text
    else:
        with pytest.raises(ArtifactError) as info:
            if path == "publish":
                registry.publish(fit, "vals")
            else:
                load_edit(fit)
        message = str(info.value)
    _assert_names(message, BAD_VALUES[case][1])
    assert changes(before, tree_digest(tmp_path)) == []  # nothing published, nothing written
    assert registry.complete_versions("vals") == [1]


# -- published artifacts: every loader -------------------------------------------------------------

ARTIFACT_LOADERS = (
    "artifact-dir",
    "artifact-ref",
    "registry-load",
    "download",
    "edit-dir",
    "edit-ref",
    "cli-download",
)


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with one name per case: version 1 good, version 2 forged with the bad values."""
    root = tmp_path_factory.mktemp("forged")
    registry = Registry(str(root / "registry"))
    for case in BAD_VALUES:
        name = case.lower().replace("_", "-")
        for seed in (1, 2):
            registry.publish(write_synthetic_fit(root / "fits" / f"{name}{seed}", seed=seed), name)
        good = root / "fits" / f"{name}2"
        data = _rewrite(good, BAD_VALUES[case][0])
        forge_version(root / "registry", name, 2, data)
    return root / "registry"


def _load_forged(
    loader: str, registry_root: Path, name: str, out: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    folder = registry_root / name / "versions" / "2"
    url = str(registry_root)
    calls: dict[str, Callable[[], object]] = {
        "artifact-dir": lambda: load_artifact(str(folder)),
        "artifact-ref": lambda: load_artifact(f"{name}@2", registry=url),
        "registry-load": lambda: Registry(url).load(f"{name}@latest"),
        "download": lambda: Registry(url).download(f"{name}@2", out),
        "edit-dir": lambda: load_edit(folder),
        "edit-ref": lambda: load_edit(f"{name}@2", registry=url),
    }
    if loader == "cli-download":
        outcome = run_cli(
            ["registry", "download", f"{name}@2", str(out), f"--registry={url}"], capsys
        )
        assert refusal_problems(outcome) == []
        return outcome.text
    with pytest.raises(SeaDistError) as info:
        calls[loader]()
    return str(info.value)


@pytest.mark.fault
@pytest.mark.parametrize("case", sorted(BAD_VALUES))
@pytest.mark.parametrize("loader", ARTIFACT_LOADERS)
def test_bad_values_in_a_published_artifact_are_refused(
    case: str, loader: str, forged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = case.lower().replace("_", "-")
    before = tree_digest(forged)
    message = _load_forged(loader, forged, name, tmp_path / "out", capsys)
    _assert_names(message, BAD_VALUES[case][1])
    assert not (tmp_path / "out" / PROJECTIONS).exists()  # nothing half-downloaded
    assert changes(before, tree_digest(forged)) == []  # loading never repairs or writes
    assert Registry(str(forged)).load(f"{name}@1").manifest.version == 1  # the neighbour loads


_NO_FSSPEC = textwrap.dedent(
    """
    import json, sys
    for blocked in ("fsspec", "pyarrow", "ray", "dask", "zarr"):
        sys.modules[blocked] = None  # a serving image: import raises ImportError
    from sea_dist.edit import load_edit
    from sea_dist.errors import SeaDistError
    results = {}
    for folder in sys.argv[1:]:
        try:
            load_edit(folder)
            results[folder] = "loaded"
        except SeaDistError as error:
            results[folder] = str(error)
    assert "sea_dist.registry.loader" not in sys.modules  # the fallback reader was used
    print(json.dumps(results))
    """
)


@pytest.mark.integration
@pytest.mark.fault
def test_the_serving_image_reader_refuses_bad_values_too(forged: Path) -> None:
    """``load_edit`` without fsspec reads artifact folders itself: the torch copy of the rule."""
    folders = {
        case: str(forged / case.lower().replace("_", "-") / "versions" / "2") for case in BAD_VALUES
    }
    good = str(forged / "nan-in-u-pos" / "versions" / "1")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", _NO_FSSPEC, good, *folders.values()],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout)
    assert outcome[good] == "loaded"
    for case, folder in folders.items():
        _assert_names(outcome[folder], BAD_VALUES[case][1])


@pytest.fixture(scope="module")
def http_url(forged: Path) -> Iterator[str]:
    from sea_dist.serve.server import make_server

    server = make_server(Registry(str(forged)), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.integration
@pytest.mark.fault
@pytest.mark.parametrize("case", ["nan-in-U_pos", "U_pos-times-1000", "duplicated-column"])
@pytest.mark.parametrize("how", ["http-load", "http-download", "load-edit-over-http"])
def test_bad_values_are_refused_over_http(
    case: str, how: str, http_url: str, tmp_path: Path
) -> None:
    from sea_dist.registry.client import HttpRegistry

    name = case.lower().replace("_", "-")
    client = HttpRegistry(http_url)
    calls: dict[str, Callable[[], object]] = {
        "http-load": lambda: client.load(f"{name}@2"),
        "http-download": lambda: client.download(f"{name}@2", tmp_path / "out"),
        "load-edit-over-http": lambda: load_edit(f"{name}@2", registry=http_url),
    }
    with pytest.raises(SeaDistError) as info:
        calls[how]()
    _assert_names(str(info.value), BAD_VALUES[case][1])
    assert not (tmp_path / "out").exists()


# -- the stated tolerance, both implementations ----------------------------------------------------


@pytest.mark.parametrize(
    ("deviation", "accepted"),
    [(0.0, True), (ORTHONORMAL_ATOL / 2, True), (ORTHONORMAL_ATOL * 2, False)],
    ids=["exact", "half-tolerance", "twice-tolerance"],
)
def test_the_orthonormality_tolerance_is_what_is_stated(
    deviation: float, accepted: bool, tmp_path: Path
) -> None:
    """``|U^T U - I|`` up to 1e-3 loads (float32 rounding is ~1e-7), beyond it is refused, in
    the numpy checker (publish, load_artifact) and the torch one (load_edit) alike."""
    assert EDIT_ORTHONORMAL_ATOL == ORTHONORMAL_ATOL
    fit = write_synthetic_fit(tmp_path / "fit", seed=3)
    # Column 0 scaled by sqrt(1 + deviation): its U^T U diagonal entry is 1 + deviation.
    _rewrite(fit, lambda a: _scaled_column(a, "layers.3.U_pos", float(np.sqrt(1 + deviation))))
    registry = Registry(str(tmp_path / "registry"))
    verdicts = []
    for attempt in (
        lambda: registry.publish(fit, "tol"),
        lambda: load_edit(fit),
    ):
        try:
            attempt()
            verdicts.append(True)
        except ArtifactError as error:
            assert f"<= {ORTHONORMAL_ATOL:g}" in str(error)
            verdicts.append(False)
    assert verdicts == [accepted, accepted]
    if accepted:
        assert registry.load("tol@1").layers[3].U_pos.dtype == np.float32
        assert load_edit(registry.url + "/tol/versions/1").layers[3].u_pos.shape == (16, 3)


def test_float64_bases_and_means_load(tmp_path: Path) -> None:
    """A wider float is not a wrong dtype: float64 U, S and mean publish and load."""
    fit = write_synthetic_fit(tmp_path / "fit", seed=4)
    _rewrite(fit, lambda a: a.update({k: v.astype(np.float64) for k, v in a.items()}))
    registry = Registry(str(tmp_path / "registry"))
    registry.publish(fit, "wide")
    assert registry.load("wide@1").layers[1].U_neg.dtype == np.float64
    assert load_edit(fit).layers[1].u_neg.dtype.is_floating_point


# -- layout damage through the fit-output readers --------------------------------------------------


def _header_surgery(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(fit: Path) -> None:
        data = (fit / PROJECTIONS).read_bytes()
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + length])
        change(header)
        raw = json.dumps(header).encode()
        (fit / PROJECTIONS).write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length :])

    return damage


def _negative_shape(header: dict[str, Any]) -> None:
    header["layers.3.U_pos"]["shape"] = [-16, -3]


def _negative_offsets(header: dict[str, Any]) -> None:
    begin, end = header["layers.1.mean"]["data_offsets"]
    header["layers.1.mean"]["data_offsets"] = [begin - 2**40, end - 2**40]


def _huge_header_length(fit: Path) -> None:
    data = (fit / PROJECTIONS).read_bytes()
    (fit / PROJECTIONS).write_bytes((2**64 - 8).to_bytes(8, "little") + data[8:])


def _cut_in_tensor_data(fit: Path) -> None:
    data = (fit / PROJECTIONS).read_bytes()
    (fit / PROJECTIONS).write_bytes(data[: len(data) // 2])


LAYOUT_DAMAGE: dict[str, Callable[[Path], None]] = {
    "negative-shape": _header_surgery(_negative_shape),
    "negative-offsets": _header_surgery(_negative_offsets),
    "header-length-2**64-8": _huge_header_length,
    "cut-in-the-tensor-data": _cut_in_tensor_data,
}


@pytest.mark.fault
@pytest.mark.parametrize("damage", sorted(LAYOUT_DAMAGE))
@pytest.mark.parametrize("path", ["publish", "load-edit-fit"])
def test_damaged_safetensors_layout_of_a_fit_output_is_refused(
    damage: str, path: str, tmp_path: Path
) -> None:
    fit = write_synthetic_fit(tmp_path / "fit", seed=6)
    LAYOUT_DAMAGE[damage](fit)
    registry = Registry(str(tmp_path / "registry"))
    with pytest.raises(ArtifactError) as info:
        registry.publish(fit, "lay") if path == "publish" else load_edit(fit)
    assert "\n" not in str(info.value) and PROJECTIONS in str(info.value)
    assert not (tmp_path / "registry").exists() or registry.complete_versions("lay") == []
