"""load_edit from fit-output and artifact folders, and refusal of projections for another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic_projections import in_memory_edit, write_artifact_folder, write_fit_folder
from tiny_models import build_tiny_model, tiny_loaded_model

from sea_dist.edit import apply_edit, fold_into, load_edit, select_layers
from sea_dist.errors import ArtifactError, ConfigError


def test_fit_folder_loads_every_tensor(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    folder = write_fit_folder(
        tmp_path / "fit", model, layers=[0, 2], site="mlp", combine="average", k_pos=4, k_neg=0
    )
    edit = load_edit(folder)
    tensors = load_file(str(folder / "projections.safetensors"))
    assert edit.layer_indices == (0, 2)
    assert (edit.site, edit.combine, edit.centred, edit.feature_map) == (
        "mlp",
        "average",
        True,
        "linear",
    )
    assert (edit.d_model, edit.n_model_layers, edit.architecture) == (32, 3, "llama")
    for layer in (0, 2):
        proj = edit.layers[layer]
        assert torch.equal(proj.u_pos, tensors[f"layers.{layer}.U_pos"])
        assert proj.u_neg.shape == (32, 0)
        assert proj.mean is not None and torch.equal(proj.mean, tensors[f"layers.{layer}.mean"])
    assert edit.nbytes == sum(
        t.numel() * 4 for k, t in tensors.items() if not k.split(".")[-1].startswith("S_")
    )


def test_uncentred_fit_has_no_mean(tmp_path: Path) -> None:
    model, _ = build_tiny_model("gpt2")
    edit = load_edit(write_fit_folder(tmp_path / "fit", model, centred=False))
    assert not edit.centred
    assert all(proj.mean is None for proj in edit.layers.values())


def test_artifact_folder_is_verified(tmp_path: Path) -> None:
    model, tokenizer = build_tiny_model("llama")
    folder = write_artifact_folder(tmp_path / "artifact", model, layers=[1, 2])
    edit = load_edit(folder)
    assert edit.layer_indices == (1, 2) and edit.centred
    with apply_edit(model, edit):
        model(torch.tensor([[1, 40, 41]]))

    data = bytearray((folder / "projections.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "projections.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_edit(folder)


def test_pickle_projections_are_refused(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    folder = write_fit_folder(tmp_path / "fit", model)
    (folder / "projections.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 32)
    with pytest.raises(ArtifactError, match="pickle"):
        load_edit(folder)


def test_folder_without_projections_metadata_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="manifest.json or fit.json"):
        load_edit(tmp_path / "empty")


def test_unknown_fit_schema_is_refused(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    folder = write_fit_folder(tmp_path / "fit", model)
    fit = json.loads((folder / "fit.json").read_text())
    fit["schema_version"] = 99
    (folder / "fit.json").write_text(json.dumps(fit))
    with pytest.raises(ArtifactError, match="schema_version"):
        load_edit(folder)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"d_model": 48}, "d_model"),
        ({"n_model_layers": 4}, "n_model_layers"),
        ({"architecture": "mistral"}, "architecture"),
    ],
)
def test_mismatched_model_is_refused_in_one_line(
    tmp_path: Path, fields: dict[str, object], match: str
) -> None:
    model, _ = build_tiny_model("llama")
    d = 48 if "d_model" in fields else 32
    folder = write_fit_folder(
        tmp_path / "fit", model, fields=dict(fields), layers=[0], tensors=_tensors(d, [0])
    )
    with pytest.raises(ArtifactError, match=match) as error:
        apply_edit(model, str(folder))
    assert "\n" not in str(error.value)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ArtifactError, match=match):
        fold_into(model, str(folder))


def _tensors(d: int, layers: list[int]) -> dict[str, torch.Tensor]:
    from synthetic_projections import random_tensors

    return random_tensors(d, layers, 2, 2)


def test_model_id_mismatch_refused_unless_allowed(tmp_path: Path) -> None:
    loaded = tiny_loaded_model("llama")
    folder = write_fit_folder(tmp_path / "fit", loaded.model, model_id="some/other-model")
    with pytest.raises(ArtifactError, match="model_id"):
        apply_edit(loaded, str(folder))
    with apply_edit(loaded, str(folder), allow_model_mismatch=True) as handle:
        assert handle.layers == (0, 1, 2)
    same = write_fit_folder(tmp_path / "same", loaded.model, model_id=loaded.model_id)
    apply_edit(loaded, str(same)).remove()


def test_architecture_mismatch_allowed_on_request(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    folder = write_fit_folder(tmp_path / "fit", model, fields={"architecture": "mistral"})
    apply_edit(model, str(folder), allow_model_mismatch=True).remove()


def test_fitted_layer_beyond_the_model_is_refused(tmp_path: Path) -> None:
    model, _ = build_tiny_model("llama")
    folder = write_fit_folder(tmp_path / "fit", model, layers=[5], tensors=_tensors(32, [5]))
    with pytest.raises(ArtifactError, match="layers"):
        apply_edit(model, str(folder))


def test_layer_selection() -> None:
    model, _ = build_tiny_model("llama")
    edit = in_memory_edit(model, layers=[0, 1, 2])
    assert select_layers(edit, "all") == (0, 1, 2)
    assert select_layers(edit, "last-2") == (1, 2)
    assert select_layers(edit, "first-1") == (0,)
    assert select_layers(edit, [2, 0]) == (0, 2)
    partial = in_memory_edit(model, layers=[1, 2])
    with pytest.raises(ArtifactError, match="layers it holds"):
        select_layers(partial, [0])
    with pytest.raises(ConfigError):
        select_layers(partial, "last-3")
    with pytest.raises(ConfigError):
        select_layers(partial, "bogus")


def test_registry_reference_loads_the_published_version(tmp_path: Path) -> None:
    from sea_dist.registry import Registry

    model, tokenizer = build_tiny_model("llama")
    fit = write_fit_folder(
        tmp_path / "fit",
        model,
        layers=[1, 2],
        site="mlp",
        fields={"demonstrations_fingerprint": "0" * 64},
    )
    registry = Registry(str(tmp_path / "registry"))
    registry.publish(fit, "tiny-edit")
    from_registry = load_edit("tiny-edit@1", registry=str(tmp_path / "registry"))
    from_folder = load_edit(fit)
    assert from_registry.layer_indices == (1, 2) and from_registry.site == "mlp"
    for layer in (1, 2):
        a, b = from_registry.layers[layer], from_folder.layers[layer]
        assert torch.equal(a.u_pos, b.u_pos) and torch.equal(a.u_neg, b.u_neg)
        assert a.mean is not None and b.mean is not None and torch.equal(a.mean, b.mean)
    ids = torch.tensor([[1, 50, 51, 52]])
    with torch.no_grad():
        with apply_edit(model, "tiny-edit@latest", registry=str(tmp_path / "registry")):
            via_ref = model(ids).logits
        with apply_edit(model, from_folder):
            via_folder = model(ids).logits
    assert torch.equal(via_ref, via_folder)
