"""Fit-output validation: anything but a well-formed fit output is refused before publish."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.tensors import decode, encode
from sea_dist.registry.fitdir import read_fit_output

FitFactory = Callable[..., Path]


def _edit_fit(folder: Path, **changes: object) -> None:
    fit = json.loads((folder / "fit.json").read_text())
    fit.update(changes)
    (folder / "fit.json").write_text(json.dumps(fit))


def _edit_tensors(
    folder: Path, drop: str | None = None, replace: dict[str, Any] | None = None
) -> None:
    path = folder / "projections.safetensors"
    tensors = decode(path.read_bytes(), "x")
    if drop:
        del tensors[drop]
    tensors.update(replace or {})
    path.write_bytes(encode(tensors))


def test_valid_fit_output(make_fit: FitFactory) -> None:
    out = read_fit_output(str(make_fit(layers=(0, 3))))
    assert out.fit["schema_version"] == 1
    assert out.tensors["layers.3.U_pos"].shape == (16, 3)


def test_missing_folder_or_files(tmp_path: Path, make_fit: FitFactory) -> None:
    with pytest.raises(ArtifactError, match="fit.json"):
        read_fit_output(str(tmp_path / "nope"))
    folder = make_fit()
    (folder / "projections.safetensors").unlink()
    with pytest.raises(ArtifactError, match="projections.safetensors"):
        read_fit_output(str(folder))


def test_bad_json_and_schema(make_fit: FitFactory) -> None:
    folder = make_fit()
    _edit_fit(folder, schema_version=2)
    with pytest.raises(ArtifactError, match="schema_version"):
        read_fit_output(str(folder))
    (folder / "fit.json").write_text("{")
    with pytest.raises(ArtifactError, match="valid JSON"):
        read_fit_output(str(folder))


def test_missing_store_attrs(make_fit: FitFactory) -> None:
    folder = make_fit()
    fit = json.loads((folder / "fit.json").read_text())
    del fit["store"]["attrs"]["d_model"]
    (folder / "fit.json").write_text(json.dumps(fit))
    with pytest.raises(ArtifactError, match="d_model"):
        read_fit_output(str(folder))


def test_shape_mismatch(make_fit: FitFactory) -> None:
    folder = make_fit(layers=(1,), k_pos=3)
    _edit_tensors(folder, replace={"layers.1.U_pos": np.zeros((16, 4), dtype=np.float32)})
    with pytest.raises(ArtifactError, match=r"layers.1.U_pos.*\(16, 3\)"):
        read_fit_output(str(folder))


def test_missing_mean_when_centred(make_fit: FitFactory) -> None:
    folder = make_fit(layers=(1,))
    _edit_tensors(folder, drop="layers.1.mean")
    with pytest.raises(ArtifactError, match="mean"):
        read_fit_output(str(folder))


def test_tensors_of_unlisted_layers(make_fit: FitFactory) -> None:
    folder = make_fit(layers=(1,))
    _edit_tensors(folder, replace={"layers.2.S_pos": np.ones(3)})
    with pytest.raises(ArtifactError, match="only the layers"):
        read_fit_output(str(folder))


def test_layer_out_of_range(make_fit: FitFactory) -> None:
    folder = make_fit(layers=(1,), n_model_layers=4)
    fit = json.loads((folder / "fit.json").read_text())
    fit["store"]["attrs"]["n_model_layers"] = 1
    (folder / "fit.json").write_text(json.dumps(fit))
    with pytest.raises(ArtifactError, match="layer"):
        read_fit_output(str(folder))


def test_pickled_projections_are_refused(make_fit: FitFactory) -> None:
    folder = make_fit()
    (folder / "projections.safetensors").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ArtifactError, match="pickle"):
        read_fit_output(str(folder))
