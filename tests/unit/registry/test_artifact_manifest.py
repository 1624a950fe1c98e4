"""Manifest: built from a fit output with full provenance, JSON round trip, strict parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sea_dist.errors import ArtifactError
from sea_dist.format.manifest import MANIFEST_SCHEMA_VERSION, manifest_from_dict, manifest_from_json
from sea_dist.format.tensors import sha256_hex
from sea_dist.registry import manifest as manifest_module
from sea_dist.registry.fitdir import build_manifest, read_fit_output
from sea_dist.registry.manifest import code_version, fingerprint

FitFactory = Callable[..., Path]


def test_manifest_records_full_provenance(make_fit: FitFactory) -> None:
    folder = make_fit(layers=(0, 2, 3), k_pos=(3, 4, 5), k_neg=(2, 2, 1), demonstrations="d1")
    fit_output = read_fit_output(str(folder))
    config = {"model": {"id": "tiny-random-llama"}, "fit": {"ignored": True}}
    manifest = build_manifest(fit_output, "sea-demo", config=config)
    data = manifest.to_dict()
    fit = json.loads((folder / "fit.json").read_text())
    attrs = fit["store"]["attrs"]
    assert data["schema_version"] == MANIFEST_SCHEMA_VERSION
    assert data["name"] == "sea-demo" and data["version"] is None
    assert data["sha256"] == sha256_hex((folder / "projections.safetensors").read_bytes())
    for key in ("model_id", "model_revision", "architecture", "d_model", "n_model_layers", "site"):
        assert data[key] == attrs[key]
    assert data["layers"] == [0, 2, 3]
    assert [e["k_pos"] for e in data["per_layer"]] == [3, 4, 5]
    assert [e["k_neg"] for e in data["per_layer"]] == [2, 2, 1]
    assert data["per_layer"][0]["energy_pos"] == fit["layers"][0]["energy_pos"]
    assert data["per_layer"][0]["svd_path"] == "exact"
    assert data["combine"] == "l2" and data["feature_map"] == {"name": "linear", "scale": 1.0}
    assert data["positive_energy"] == 0.99 and data["negative_energy"] == 0.99
    assert data["store"]["fingerprint"] == fingerprint(attrs)
    assert data["store"]["attrs"] == attrs
    assert data["demonstrations_fingerprint"] == fingerprint("d1")
    # The fit settings actually used win over the YAML's; the rest of the config is kept.
    assert data["config"]["fit"] == fit["config"]
    assert data["config"]["model"] == {"id": "tiny-random-llama"}
    assert data["code_version"].startswith("0.")
    assert data["created_at"].endswith("+00:00")
    assert data["fitted_at"] == fit["created_at"]
    assert manifest_from_json(manifest.to_json()) == manifest


def test_fixed_k_has_no_energy_thresholds(make_fit: FitFactory) -> None:
    folder = make_fit(fit_config={"fixed_k": 3})
    manifest = build_manifest(read_fit_output(str(folder)), "x")
    assert manifest.fixed_k == 3
    assert manifest.positive_energy is None and manifest.negative_energy is None


def test_unknown_schema_and_missing_fields_are_refused(make_fit: FitFactory) -> None:
    data = build_manifest(read_fit_output(str(make_fit())), "x").to_dict()
    with pytest.raises(ArtifactError, match="schema_version"):
        manifest_from_dict({**data, "schema_version": 99})
    without = {k: v for k, v in data.items() if k != "d_model"}
    with pytest.raises(ArtifactError, match="d_model"):
        manifest_from_dict(without)
    with pytest.raises(ArtifactError, match="d_model"):
        manifest_from_dict({**data, "d_model": True})
    with pytest.raises(ArtifactError, match="version"):
        manifest_from_dict({**data, "version": 0})
    with pytest.raises(ArtifactError, match="JSON"):
        manifest_from_json(b"{not json")
    with pytest.raises(ArtifactError, match="JSON object"):
        manifest_from_dict([1, 2])


def test_code_version_without_git(monkeypatch: pytest.MonkeyPatch) -> None:
    # No git on PATH (as in a serving image): the package version alone, no failure.
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(manifest_module, "_CODE_VERSION", None)
    from sea_dist import __version__

    assert code_version() == __version__


def test_code_version_in_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_module, "_CODE_VERSION", None)
    version = code_version()
    is_checkout = (Path(manifest_module.__file__).parents[2] / ".git").exists()
    assert ("+g" in version) == is_checkout
