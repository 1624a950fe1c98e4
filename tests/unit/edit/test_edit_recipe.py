"""The publisher's recipe (layers, alpha, positions) travels with the projections and is applied."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from synthetic_projections import in_memory_edit, write_artifact_folder, write_fit_folder
from tiny_models import build_tiny_model

from sea_dist.config import CollectConfig
from sea_dist.edit import apply_edit, load_edit, select_layers
from sea_dist.edit.loader import edit_from_fields
from sea_dist.errors import ArtifactError, ConfigError
from sea_dist.format.recipe import EditRecipe
from sea_dist.layers import resolve_layers

IDS = torch.tensor([[1, 80, 81, 82, 83], [1, 90, 91, 92, 93]])
RECIPE = EditRecipe(layers="last-2", alpha=0.5, positions="skip-first", name="test")


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _add_to_manifest(folder: Path, recipe: Any) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["recipe"] = recipe
    path.write_text(json.dumps(manifest), encoding="utf-8")


def _assert_applies_recipe(model: torch.nn.Module, source: Any) -> None:
    """``source``'s recipe is RECIPE: used when the caller sets nothing, each part overridable."""
    bare = dataclasses.replace(load_edit(source), recipe=None)
    with apply_edit(model, bare, layers="last-2", alpha=0.5, positions="skip-first"):
        spelled_out = _logits(model)
    with apply_edit(model, bare):
        defaults = _logits(model)
    with apply_edit(model, source) as handle:
        assert (handle.layers, handle.alpha, handle.positions) == ((1, 2), 0.5, "skip-first")
        assert torch.equal(_logits(model), spelled_out)
    with apply_edit(model, source, layers="all", alpha=1.0, positions="all") as handle:
        assert (handle.layers, handle.alpha, handle.positions) == ((0, 1, 2), 1.0, "all")
        assert torch.equal(_logits(model), defaults)
    with apply_edit(model, source, layers=[0], alpha=0.0, skip_first_token=False) as handle:
        assert (handle.layers, handle.alpha, handle.positions) == ((0,), 0.0, "all")
    assert not torch.equal(spelled_out, defaults)


def test_fit_folder_recipe_is_applied_unless_overridden(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    folder = write_fit_folder(tmp_path / "fit", model, site="mlp")
    (folder / "recipe.json").write_text(json.dumps(RECIPE.to_dict()), encoding="utf-8")
    edit = load_edit(folder)
    assert edit.recipe == RECIPE
    _assert_applies_recipe(model, str(folder))


def test_artifact_manifest_recipe_is_applied_unless_overridden(tmp_path: Path) -> None:
    model, _ = build_tiny_model("gpt2")
    folder = write_artifact_folder(tmp_path / "artifact", model)
    _add_to_manifest(folder, RECIPE.to_dict())  # the sha256 covers the tensors, not the manifest
    assert load_edit(folder).recipe == RECIPE
    _assert_applies_recipe(model, folder)


def test_recipe_from_manifest_fields_without_the_artifacts_package(tmp_path: Path) -> None:
    """The reader a serving image without fsspec uses: manifest fields plus tensors."""
    from safetensors.torch import load_file

    model, _ = build_tiny_model("llama")
    folder = write_artifact_folder(tmp_path / "artifact", model)
    fields = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "projections.safetensors"))
    assert edit_from_fields(fields, tensors, "test").recipe is None
    edit = edit_from_fields(fields | {"recipe": RECIPE.to_dict()}, tensors, "test")
    assert edit.recipe == RECIPE
    assert edit_from_fields(fields | {"recipe": None}, tensors, "test").recipe is None


def test_recipe_from_a_manifest_object_that_carries_it(tmp_path: Path) -> None:
    """An artifact whose Manifest.to_dict() has ``recipe`` (the artifacts package adds it)."""
    from sea_dist.edit.loader import _from_artifact_object
    from sea_dist.registry.access import load_artifact

    model, _ = build_tiny_model("llama")
    artifact = load_artifact(str(write_artifact_folder(tmp_path / "a", model)), framework="torch")

    class WithRecipe:  # stands in for the Manifest of a concurrent change, not merged here
        def to_dict(self) -> dict[str, Any]:
            return artifact.manifest.to_dict() | {"recipe": RECIPE.to_dict()}

    carrying = dataclasses.replace(artifact, manifest=WithRecipe())  # type: ignore[arg-type]
    assert _from_artifact_object(carrying, "ref@1").recipe == RECIPE
    assert _from_artifact_object(artifact, "ref@1").recipe is None


def test_recipe_published_to_a_registry_is_applied_by_reference(tmp_path: Path) -> None:
    from sea_dist.format.manifest import Manifest
    from sea_dist.registry import Registry

    if "recipe" not in {f.name for f in dataclasses.fields(Manifest)}:
        pytest.skip("this checkout's artifact manifest has no recipe field yet")
    model, _ = build_tiny_model("llama")
    fit = write_fit_folder(
        tmp_path / "fit", model, site="mlp", fields={"demonstrations_fingerprint": "0" * 64}
    )
    (fit / "recipe.json").write_text(json.dumps(RECIPE.to_dict()), encoding="utf-8")
    Registry(str(tmp_path / "registry")).publish(fit, "tiny-edit")
    edit = load_edit("tiny-edit@1", registry=str(tmp_path / "registry"))
    assert edit.recipe == RECIPE
    _assert_applies_recipe(model, edit)


def test_old_manifests_and_fit_folders_load_without_a_recipe(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    fit = load_edit(write_fit_folder(tmp_path / "fit", model))
    artifact = load_edit(write_artifact_folder(tmp_path / "artifact", model))
    plain = _logits(model)
    for edit in (fit, artifact):
        assert edit.recipe is None
        with apply_edit(model, edit) as handle:
            assert (handle.layers, handle.alpha, handle.positions) == ((0, 1, 2), 1.0, "all")
            assert not torch.allclose(_logits(model), plain, atol=1e-3)
    with apply_edit(model, fit):
        via_defaults = _logits(model)
    with apply_edit(model, fit, layers="all", alpha=1.0, positions="all"):
        assert torch.equal(_logits(model), via_defaults)


def test_a_malformed_recipe_is_refused_on_load(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    folder = write_artifact_folder(tmp_path / "artifact", model)
    _add_to_manifest(folder, RECIPE.to_dict() | {"alpha": 2.0})
    with pytest.raises(ArtifactError, match="alpha"):
        load_edit(folder)
    fit = write_fit_folder(tmp_path / "fit", model)
    (fit / "recipe.json").write_text(json.dumps({"positions": "sometimes"}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="positions"):
        load_edit(fit)


def test_recipe_with_a_fraction_of_layers(tmp_path: Path) -> None:
    model, _ = build_tiny_model("qwen2")
    edit = dataclasses.replace(
        in_memory_edit(model), recipe=EditRecipe(layers="last-66%", positions="generated")
    )
    with apply_edit(model, edit) as handle:
        assert (handle.layers, handle.alpha, handle.positions) == ((1, 2), 1.0, "generated")


@pytest.mark.parametrize(
    ("spec", "n", "expected"),
    [
        ("last-66%", 32, tuple(range(11, 32))),
        ("last-66%", 30, tuple(range(10, 30))),
        ("first-50%", 8, (0, 1, 2, 3)),
        ("first-50%", 5, (0, 1, 2)),  # 2.5 rounds half up
        ("last-1%", 3, (2,)),  # at least one layer
        ("first-100%", 3, (0, 1, 2)),
        ("last-100%", 1, (0,)),
    ],
)
def test_fraction_layer_specs(spec: str, n: int, expected: tuple[int, ...]) -> None:
    assert resolve_layers(spec, n) == expected
    assert CollectConfig(layers=spec).layers == spec


@pytest.mark.parametrize("spec", ["last-0%", "last-101%", "first-5.5%", "last-%", "mid-50%"])
def test_malformed_fraction_specs_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="'all', 'last-L'"):
        resolve_layers(spec, 10)
    with pytest.raises(ConfigError, match="layers"):
        CollectConfig(layers=spec)


def test_select_layers_takes_the_fraction_of_the_fitted_layers() -> None:
    model, _ = build_tiny_model("llama")
    assert select_layers(in_memory_edit(model), "last-66%") == (1, 2)
    assert select_layers(in_memory_edit(model, layers=[1, 2]), "last-50%") == (2,)
    assert select_layers(in_memory_edit(model, layers=[0, 2]), "first-100%") == (0, 2)
