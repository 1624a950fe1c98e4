"""The one artifact reader (sea_dist.format.artifact): layout, sha256, shapes, values, anchors.

Local folders are read with no fsspec; the artifacts loader reads URLs through the same checks
(tests/unit/artifacts and tests/reliability cover those paths).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.anchors import digest_file_bytes, manifest_digest, marker_bytes
from sea_dist.format.artifact import (
    MissingArtifactFileError,
    read_local_artifact,
    verify_artifact,
)
from sea_dist.format.hashing import sha256_hex
from sea_dist.format.tensors import encode

D, K = 8, 2


def _tensors(layers: list[int], centred: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}
    for layer in layers:
        for side in ("pos", "neg"):
            q, _ = np.linalg.qr(rng.standard_normal((D, K)))
            tensors[f"layers.{layer}.U_{side}"] = q.astype(np.float32)
            tensors[f"layers.{layer}.S_{side}"] = np.array([2.0, 1.0, 0.5])
        if centred:
            tensors[f"layers.{layer}.mean"] = rng.standard_normal(D).astype(np.float32)
    return tensors


def _write(folder: Path, layers: list[int] = [0, 2], centred: bool = True) -> Path:  # noqa: B006
    data = encode(_tensors(layers, centred))
    manifest = {
        "schema_version": 1,
        "name": "demo",
        "version": 1,
        "sha256": sha256_hex(data),
        "size_bytes": len(data),
        "model_id": "tiny",
        "architecture": "llama",
        "d_model": D,
        "n_model_layers": 4,
        "site": "residual",
        "layers": layers,
        "combine": "l2",
        "centred": centred,
        "feature_map": {"name": "linear", "scale": 1.0},
        "per_layer": [
            {"layer": L, "k_pos": K, "k_neg": K, "energy_pos": 0.9, "energy_neg": 0.9}
            for L in layers
        ],
        "store": {"fingerprint": "0" * 64},
        "demonstrations_fingerprint": "0" * 64,
        "code_version": "test",
        "created_at": "2025-01-01T00:00:00Z",
    }
    folder.mkdir(parents=True)
    (folder / "projections.safetensors").write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_a_good_folder_reads_with_every_tensor(tmp_path: Path) -> None:
    content = read_local_artifact(_write(tmp_path / "a"))
    assert content.manifest.layers == (0, 2) and content.manifest.centred
    assert content.arrays["layers.2.U_pos"].shape == (D, K)
    assert content.arrays["layers.0.mean"].shape == (D,)
    uncentred = read_local_artifact(_write(tmp_path / "b", centred=False))
    assert "layers.0.mean" not in uncentred.arrays


def test_missing_files_tampered_bytes_and_pickles_are_refused(tmp_path: Path) -> None:
    folder = _write(tmp_path / "a")
    raw = (folder / "manifest.json").read_bytes()
    data = bytearray((folder / "projections.safetensors").read_bytes())
    data[-1] ^= 0xFF
    with pytest.raises(ArtifactError, match="sha256"):
        verify_artifact(raw, bytes(data), "a")
    with pytest.raises(ArtifactError, match="pickle"):
        verify_artifact(raw, b"\x80\x04\x95" + b"\x00" * 32, "a")
    (folder / "projections.safetensors").unlink()
    with pytest.raises(MissingArtifactFileError, match="no projections.safetensors"):
        read_local_artifact(folder)


def test_shapes_and_values_are_checked_not_only_the_hash(tmp_path: Path) -> None:
    folder = _write(tmp_path / "a")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["per_layer"][0]["k_pos"] = K + 1  # the manifest promises another shape
    with pytest.raises(ArtifactError, match=r"layers.0.U_pos.*shape \(8, 3\)"):
        verify_artifact(
            json.dumps(manifest).encode(), (folder / "projections.safetensors").read_bytes(), "a"
        )
    tensors = _tensors([0], True)
    tensors["layers.0.U_pos"] = tensors["layers.0.U_pos"] * 1000  # right shape, not a basis
    data = encode(tensors)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(sha256=sha256_hex(data), layers=[0], per_layer=manifest["per_layer"][:1])
    with pytest.raises(ArtifactError, match="orthonormal"):
        verify_artifact(json.dumps(manifest).encode(), data, "a")


def test_manifest_is_checked_against_its_digest_file_and_registry_marker(tmp_path: Path) -> None:
    folder = _write(tmp_path / "copy")
    raw = (folder / "manifest.json").read_bytes()
    (folder / "manifest.sha256").write_bytes(digest_file_bytes(raw))
    read_local_artifact(folder)
    edited = raw.replace(b'"combine": "l2"', b'"combine": "average"')
    (folder / "manifest.json").write_bytes(edited)
    with pytest.raises(ArtifactError, match=r"manifest.sha256"):
        read_local_artifact(folder)

    version = _write(tmp_path / "registry" / "demo" / "versions" / "1")
    raw = (version / "manifest.json").read_bytes()
    complete = tmp_path / "registry" / "demo" / "complete"
    complete.mkdir()
    sha = json.loads(raw)["sha256"]
    marker = marker_bytes(1, sha, manifest_digest(raw), "2025-01-01T00:00:00Z")
    (complete / "1.json").write_bytes(marker)
    read_local_artifact(version)
    (version / "manifest.json").write_bytes(raw.replace(b'"l2"', b'"average"'))
    with pytest.raises(ArtifactError, match="registry gc --damaged --name demo"):
        read_local_artifact(version)
