"""Loaded SEA projections: a :class:`LayerProjection` per layer, gathered in a :class:`SeaEdit`.

Plain frozen dataclasses of float32 CPU tensors, validated on construction (shapes agree with
``d_model``; ``combine`` and ``feature_map`` are known). :mod:`sea_dist.edit.loader` builds them
from fit outputs, artifact folders and registry references, with the publisher's
:class:`~sea_dist.format.recipe.EditRecipe` when there is one, after
:func:`check_projection_tensors` has checked their values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from sea_dist.errors import ArtifactError, expected_found
from sea_dist.format.recipe import EditRecipe

COMBINES = ("l2", "average")
FEATURE_MAPS = ("linear", "tanh", "elu", "sqexp")
ORTHONORMAL_ATOL = 1e-3
"""Largest allowed ``|U^T U - I|`` entry of a loaded basis (float64 arithmetic); the same value
as :data:`sea_dist.format.values.ORTHONORMAL_ATOL` (this module must import without it)."""
VALUE_DTYPES = (torch.float32, torch.float64)
"""Allowed dtypes of stored ``U_pos``, ``U_neg``, ``S_pos``, ``S_neg`` and ``mean``."""
_FIX = "the projections are unusable; fit again (and publish the new fit output)"


def _tensor_order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    layer = parts[1] if len(parts) == 3 else ""
    return (int(layer) if layer.isdigit() else -1, name)


def check_projection_tensors(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse loaded projection tensors whose values cannot be an SEA edit.

    The rule of :mod:`sea_dist.format.values`, on torch tensors: ``U_pos``, ``U_neg``,
    ``S_pos``, ``S_neg`` and ``mean`` are float32 or float64 and finite; ``U_pos`` and ``U_neg``
    have orthonormal columns (``max |U^T U - I| <= ORTHONORMAL_ATOL``); singular values are
    >= 0. Other names are ignored.

    Args:
        tensors: ``layers.<L>.<kind>`` -> tensor, as read from ``projections.safetensors``.
        what: where they came from, for the message.

    Raises:
        ArtifactError: one line naming the layer and tensor, what was found and the tolerance.
    """
    for name in sorted(tensors, key=_tensor_order):
        parts = name.split(".")
        if len(parts) != 3 or parts[2] not in ("U_pos", "U_neg", "S_pos", "S_neg", "mean"):
            continue
        kind, value = parts[2], tensors[name]
        where = f"{what}: layer {parts[1]} tensor {name}"
        if value.dtype not in VALUE_DTYPES:
            raise ArtifactError(
                expected_found(where, "dtype float32 or float64", str(value.dtype), _FIX)
            )
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            nan = int(torch.isnan(value).sum())
            first = tuple(int(x) for x in torch.nonzero(~finite)[0])
            raise ArtifactError(
                expected_found(
                    where,
                    "finite values",
                    f"{bad} non-finite values ({nan} NaN, {bad - nan} inf), "
                    f"the first at index {first}",
                    _FIX,
                )
            )
        if kind in ("U_pos", "U_neg") and value.dim() == 2 and value.shape[1] > 0:
            basis = value.detach().to(torch.float64)
            deviation = (basis.T @ basis - torch.eye(basis.shape[1], dtype=torch.float64)).abs()
            flat = int(torch.argmax(deviation))
            i, j = divmod(flat, deviation.shape[1])
            worst = float(deviation[i, j])
            if worst > ORTHONORMAL_ATOL:
                detail = (
                    f"column {i} has norm {float(basis[:, i].norm()):.6g}"
                    if i == j
                    else f"columns {i} and {j} have inner product "
                    f"{float(basis[:, i] @ basis[:, j]):.6g}"
                )
                raise ArtifactError(
                    expected_found(
                        where,
                        f"orthonormal columns (max |U^T U - I| <= {ORTHONORMAL_ATOL:g})",
                        f"{worst:.6g} ({detail})",
                        _FIX,
                    )
                )
        if kind in ("S_pos", "S_neg") and value.numel() and float(value.min()) < 0:
            raise ArtifactError(
                expected_found(where, "singular values >= 0", f"{float(value.min()):.6g}", _FIX)
            )


@dataclass(frozen=True)
class LayerProjection:
    """The fitted projections of one decoder layer.

    Attributes:
        layer: 0-based decoder layer index in the model.
        u_pos: ``(d, k_pos)`` float32, orthonormal columns: directions kept (positive-covarying).
        u_neg: ``(d, k_neg)`` float32, orthonormal columns: directions removed.
        mean: ``(d,)`` float32 neutral mean in feature space, or None when the fit was uncentred.
    """

    layer: int
    u_pos: torch.Tensor
    u_neg: torch.Tensor
    mean: torch.Tensor | None = None

    @property
    def d_model(self) -> int:
        """Width ``d`` of the site's hidden state."""
        return int(self.u_pos.shape[0])


@dataclass(frozen=True)
class SeaEdit:
    """SEA projections for one model, site and set of layers, ready to apply.

    Attributes:
        layers: decoder layer index -> :class:`LayerProjection`, ascending.
        site: ``residual``, ``mlp`` or ``attn``.
        site_template: module path with ``{layer}`` overriding ``site``, or None.
        combine: ``l2`` (norm restored per token) or ``average``.
        feature_map: ``linear``, ``tanh``, ``elu`` or ``sqexp`` (Phi-SEA when not linear).
        feature_map_scale: the feature map's scale (tanh/elu input scale, sqexp length scale).
        model_id: id of the model the projections were fitted on.
        architecture: its ``config.model_type``.
        d_model: its hidden size.
        n_model_layers: its number of decoder blocks.
        centred: whether the fit subtracted the neutral mean (then every layer has ``mean``).
        source: where the projections came from (folder or registry reference).
        manifest: the raw manifest (artifact) or fit.json data, for provenance.
        recipe: how the publisher meant the projections to be applied (layers, strength
            ``alpha``, positions), or None (manifests and fit outputs written before recipes):
            :func:`~sea_dist.edit.hooks.apply_edit` uses it for every argument the caller leaves
            unset.
    """

    layers: Mapping[int, LayerProjection]
    site: str
    site_template: str | None
    combine: str
    feature_map: str
    feature_map_scale: float
    model_id: str
    architecture: str
    d_model: int
    n_model_layers: int
    centred: bool
    source: str = ""
    manifest: Mapping[str, Any] = field(default_factory=dict, repr=False)
    recipe: EditRecipe | None = None

    def __post_init__(self) -> None:
        what = f"projections {self.source or '(in memory)'}"
        if self.combine not in COMBINES:
            raise ArtifactError(
                expected_found(f"{what}: combine", "'l2' or 'average'", self.combine)
            )
        if self.feature_map not in FEATURE_MAPS:
            raise ArtifactError(
                expected_found(
                    f"{what}: feature_map", f"one of {', '.join(FEATURE_MAPS)}", self.feature_map
                )
            )
        if not self.layers:
            raise ArtifactError(expected_found(f"{what}: layers", "at least one layer", "none"))
        for index, proj in self.layers.items():
            shapes = [tuple(proj.u_pos.shape), tuple(proj.u_neg.shape)]
            if proj.mean is not None:
                shapes.append(tuple(proj.mean.shape))
            ok = (
                proj.u_pos.dim() == 2
                and proj.u_neg.dim() == 2
                and proj.u_pos.shape[0] == self.d_model
                and proj.u_neg.shape[0] == self.d_model
                and (proj.mean is None or tuple(proj.mean.shape) == (self.d_model,))
            )
            if not ok or index != proj.layer:
                raise ArtifactError(
                    expected_found(
                        f"{what}: layer {index} tensors",
                        f"U_pos (d, k), U_neg (d, k), mean (d,) with d = d_model = {self.d_model}",
                        shapes,
                        "re-run the fit or publish step that wrote them",
                    )
                )

    @property
    def layer_indices(self) -> tuple[int, ...]:
        """The fitted decoder layers, ascending."""
        return tuple(sorted(self.layers))

    @property
    def is_linear(self) -> bool:
        """True when the edit is an affine map of the activation (``average`` + ``linear``)."""
        return self.combine == "average" and self.feature_map == "linear"

    @property
    def nbytes(self) -> int:
        """Bytes of the stored low-rank factors and means (what the edit keeps in memory)."""
        total = 0
        for proj in self.layers.values():
            for tensor in (proj.u_pos, proj.u_neg, proj.mean):
                if tensor is not None:
                    total += tensor.numel() * tensor.element_size()
        return total
