"""Synthetic SEA projections for a given model, written as a fit output or an artifact folder.

Random orthonormal U+ / U- (QR of a Gaussian matrix) and a random mean, in the layouts of
docs/formats.md (sections 2 and 3), so the edit tests need no fit and no registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from sea_dist.edit import LayerProjection, SeaEdit
from sea_dist.layers import hidden_size, num_layers


def orthonormal(d: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``(d, k)`` float32 with orthonormal columns (k = 0 gives an empty matrix)."""
    if k == 0:
        return torch.zeros(d, 0)
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=generator, dtype=torch.float64))
    return q.to(torch.float32).contiguous()


def random_tensors(
    d: int,
    layers: Sequence[int],
    k_pos: int,
    k_neg: int,
    centred: bool = True,
    seed: int = 0,
    mean_scale: float = 0.5,
) -> dict[str, torch.Tensor]:
    """``layers.L.U_pos`` / ``U_neg`` / ``S_pos`` / ``S_neg`` (/ ``mean``) for each layer."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for layer in layers:
        tensors[f"layers.{layer}.U_pos"] = orthonormal(d, k_pos, generator)
        tensors[f"layers.{layer}.U_neg"] = orthonormal(d, k_neg, generator)
        tensors[f"layers.{layer}.S_pos"] = torch.linspace(
            2.0, 1.0, max(k_pos, 1), dtype=torch.float64
        )
        tensors[f"layers.{layer}.S_neg"] = torch.linspace(
            2.0, 1.0, max(k_neg, 1), dtype=torch.float64
        )
        if centred:
            tensors[f"layers.{layer}.mean"] = mean_scale * torch.randn(d, generator=generator)
    return tensors


def model_fields(model: torch.nn.Module, model_id: str = "tiny") -> dict[str, Any]:
    """The model fields a fit output / manifest records for ``model``."""
    return {
        "model_id": model_id,
        "architecture": str(model.config.model_type),  # type: ignore[union-attr]
        "d_model": hidden_size(model),
        "n_model_layers": num_layers(model),
    }


def write_fit_folder(
    folder: Path,
    model: torch.nn.Module,
    *,
    layers: Sequence[int] | None = None,
    k_pos: int = 5,
    k_neg: int = 4,
    site: str = "residual",
    combine: str = "l2",
    centred: bool = True,
    feature_map: str = "linear",
    scale: float = 1.0,
    seed: int = 0,
    model_id: str = "tiny",
    tensors: dict[str, torch.Tensor] | None = None,
    fields: dict[str, Any] | None = None,
) -> Path:
    """Write ``fit.json`` + ``projections.safetensors`` for ``model`` (docs/formats.md 2)."""
    attrs = model_fields(model, model_id) | {"site": site, "site_template": None}
    attrs |= fields or {}
    layers = list(layers if layers is not None else range(attrs["n_model_layers"]))
    tensors = (
        tensors
        if tensors is not None
        else random_tensors(attrs["d_model"], layers, k_pos, k_neg, centred, seed)
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(folder / "projections.safetensors")
    )
    fit = {
        "schema_version": 1,
        "store": {"url": "memory://synthetic", "attrs": attrs | {"layers": layers}},
        "config": {},
        "svd_path": {str(layer): "exact" for layer in layers},
        "feature_map": {"name": feature_map, "scale": scale},
        "combine": combine,
        "centred": centred,
        "layers": [
            {
                "layer": layer,
                "k_pos": int(tensors[f"layers.{layer}.U_pos"].shape[1]),
                "k_neg": int(tensors[f"layers.{layer}.U_neg"].shape[1]),
                "energy_pos": 0.99,
                "energy_neg": 0.99,
            }
            for layer in layers
        ],
        "created_at": "2025-01-01T00:00:00Z",
    }
    (folder / "fit.json").write_text(json.dumps(fit), encoding="utf-8")
    return folder


def write_artifact_folder(
    folder: Path,
    model: torch.nn.Module,
    *,
    layers: Sequence[int] | None = None,
    k_pos: int = 5,
    k_neg: int = 4,
    site: str = "residual",
    combine: str = "l2",
    centred: bool = True,
    seed: int = 0,
    model_id: str = "tiny",
) -> Path:
    """Write ``manifest.json`` + ``projections.safetensors`` (docs/formats.md 3)."""
    fields = model_fields(model, model_id)
    layers = list(layers if layers is not None else range(fields["n_model_layers"]))
    tensors = random_tensors(fields["d_model"], layers, k_pos, k_neg, centred, seed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "projections.safetensors"
    save_file(tensors, str(path))
    data = path.read_bytes()
    manifest = fields | {
        "schema_version": 1,
        "name": "synthetic",
        "version": 1,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "model_revision": None,
        "site": site,
        "site_template": None,
        "layers": layers,
        "combine": combine,
        "centred": centred,
        "feature_map": {"name": "linear", "scale": 1.0},
        "positive_energy": 0.99,
        "negative_energy": 0.99,
        "per_layer": [
            {"layer": layer, "k_pos": k_pos, "k_neg": k_neg, "energy_pos": 0.99, "energy_neg": 0.99}
            for layer in layers
        ],
        "store": {"url": "memory://synthetic", "fingerprint": "0" * 64, "attrs": {}},
        "demonstrations_fingerprint": "0" * 64,
        "code_version": "test",
        "created_at": "2025-01-01T00:00:00Z",
        "config": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def in_memory_edit(
    model: torch.nn.Module,
    *,
    layers: Sequence[int] | None = None,
    k_pos: int = 5,
    k_neg: int = 4,
    site: str = "residual",
    combine: str = "l2",
    centred: bool = True,
    feature_map: str = "linear",
    scale: float = 1.0,
    seed: int = 0,
    mean_scale: float = 0.5,
    projections: Mapping[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] | None = None,
) -> SeaEdit:
    """A :class:`SeaEdit` for ``model`` without any file."""
    fields = model_fields(model)
    d = fields["d_model"]
    layers = list(layers if layers is not None else range(fields["n_model_layers"]))
    if projections is None:
        tensors = random_tensors(d, layers, k_pos, k_neg, centred, seed, mean_scale)
        projections = {
            layer: (
                tensors[f"layers.{layer}.U_pos"],
                tensors[f"layers.{layer}.U_neg"],
                tensors.get(f"layers.{layer}.mean"),
            )
            for layer in layers
        }
    return SeaEdit(
        layers={
            layer: LayerProjection(layer, u_pos, u_neg, mean)
            for layer, (u_pos, u_neg, mean) in projections.items()
        },
        site=site,
        site_template=None,
        combine=combine,
        feature_map=feature_map,
        feature_map_scale=scale,
        centred=centred,
        source="synthetic",
        **fields,
    )


def reference_edit(
    h: torch.Tensor,
    u_pos: torch.Tensor,
    u_neg: torch.Tensor,
    mean: torch.Tensor | None,
    combine: str,
) -> torch.Tensor:
    """The DESIGN.md formulas written out plainly with dense projections (float64), per token."""
    d = h.shape[-1]
    x = h.double() - (0 if mean is None else mean.double())
    p_pos = u_pos.double() @ u_pos.double().T
    p_neg = u_neg.double() @ u_neg.double().T
    p = x @ p_pos.T
    n = x - x @ p_neg.T
    if combine == "l2":
        s = p + n
        out = s * x.norm(dim=-1, keepdim=True) / s.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    else:
        out = (p + n) / 2
    assert out.shape[-1] == d
    return out + (0 if mean is None else mean.double())
