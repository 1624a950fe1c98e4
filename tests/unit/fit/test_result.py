"""The fit folder (sea_dist/fit/result.py): formats.md layout, atomic writes, load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from sea_dist.config import FitConfig
from sea_dist.errors import FitError
from sea_dist.feature_maps import FeatureMap
from sea_dist.fit import FitResult, LayerProjection


def projection(layer: int, d: int = 8, centred: bool = True) -> LayerProjection:
    rng = np.random.default_rng(layer)
    u_pos = np.linalg.qr(rng.normal(size=(d, 3)))[0]
    u_neg = np.linalg.qr(rng.normal(size=(d, 2)))[0]
    return LayerProjection(
        layer=layer,
        U_pos=u_pos,
        U_neg=u_neg,
        S_pos=np.linspace(3, 1, d),
        S_neg=np.linspace(2, 1, d),
        k_pos=3,
        k_neg=2,
        energy_pos=0.95,
        energy_neg=0.91,
        total_energy_pos=12.5,
        total_energy_neg=7.0,
        mean=rng.normal(size=d) if centred else None,
        signature=0.25,
        svd_path="exact",
    )


def result(centred: bool = True) -> FitResult:
    return FitResult(
        layers=(projection(2, centred=centred), projection(5, centred=centred)),
        config=FitConfig(centre=centred, feature_map="tanh", feature_map_scale=2.0),
        store_url="/data/store.zarr",
        store_attrs={"d_model": 8, "layers": [2, 5]},
        feature_map=FeatureMap("tanh", 2.0),
        created_at="2026-01-01T00:00:00+00:00",
    )


def test_layout_follows_formats_md(tmp_path: Path) -> None:
    out = result().save(tmp_path / "fit")
    data = json.loads((out / "fit.json").read_text())
    assert data["schema_version"] == 1
    assert data["svd_path"] == {"2": "exact", "5": "exact"}
    assert data["feature_map"] == {"name": "tanh", "scale": 2.0}
    assert data["centred"] is True and data["combine"] == "l2"
    assert data["config"]["feature_map"] == "tanh"
    assert data["layers"][0] == {
        "layer": 2,
        "k_pos": 3,
        "k_neg": 2,
        "energy_pos": 0.95,
        "energy_neg": 0.91,
        "total_energy_pos": 12.5,
        "total_energy_neg": 7.0,
        "signature": 0.25,
    }
    tensors = load_file(str(out / "projections.safetensors"))
    assert (
        tensors["layers.5.U_pos"].shape == (8, 3) and tensors["layers.5.U_pos"].dtype == np.float32
    )
    assert tensors["layers.5.U_neg"].shape == (8, 2)
    assert tensors["layers.2.S_neg"].dtype == np.float64
    assert tensors["layers.2.mean"].dtype == np.float32
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_uncentred_fit_stores_no_means(tmp_path: Path) -> None:
    out = result(centred=False).save(tmp_path / "fit")
    tensors = load_file(str(out / "projections.safetensors"))
    assert not [name for name in tensors if name.endswith(".mean")]
    assert FitResult.load(out).layer(2).mean is None


def test_load_round_trip(tmp_path: Path) -> None:
    original = result()
    loaded = FitResult.load(original.save(tmp_path / "fit"))
    assert loaded.config == original.config and loaded.feature_map == original.feature_map
    assert loaded.store_attrs == original.store_attrs and loaded.centred
    for a, b in zip(original.layers, loaded.layers):
        assert (a.layer, a.k_pos, a.k_neg, a.svd_path) == (b.layer, b.k_pos, b.k_neg, b.svd_path)
        np.testing.assert_allclose(b.U_pos, a.U_pos, atol=1e-7)
        np.testing.assert_array_equal(b.S_pos, a.S_pos)
        assert b.mean is not None and a.mean is not None
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-6)
        assert b.summary() == a.summary()


def test_existing_folder_rules(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result().save(empty)  # an empty folder is fine
    with pytest.raises(FitError, match="non-empty"):
        result().save(empty)
    replaced = result(centred=False).save(empty, overwrite=True)
    assert FitResult.load(replaced).layer(5).mean is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FitError, match="folder path"):
        result().save(a_file)


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    real_write = Path.write_bytes

    def broken(self: Path, data: bytes) -> int:
        if self.name == "projections.safetensors":
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", broken)  # boundary: a disk that fills up
    with pytest.raises(FitError, match="expected a writable folder, found .OSError: No space"):
        result().save(tmp_path / "fit")
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_missing_or_unknown(tmp_path: Path) -> None:
    with pytest.raises(FitError, match="fit.json"):
        FitResult.load(tmp_path)
    out = result().save(tmp_path / "fit")
    data = json.loads((out / "fit.json").read_text())
    data["schema_version"] = 99
    (out / "fit.json").write_text(json.dumps(data))
    with pytest.raises(FitError, match="schema_version"):
        FitResult.load(out)


def test_layer_lookup() -> None:
    assert result().layer(5).layer == 5
    with pytest.raises(FitError, match="layer"):
        result().layer(3)
