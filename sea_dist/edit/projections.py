"""Loaded SEA projections: a :class:`LayerProjection` per layer, gathered in a :class:`SeaEdit`.

Plain frozen dataclasses of float32 CPU tensors, validated on construction (shapes agree with
``d_model``; ``combine`` and ``feature_map`` are known). :mod:`sea_dist.edit.loader` builds them
from fit outputs, artifact folders and registry references, with the publisher's
:class:`~sea_dist.format.recipe.EditRecipe` when there is one.
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
