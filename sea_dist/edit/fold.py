"""Bake a linear (``average``) SEA edit into the weights of the layer that produces the site.

With ``A = (U+ U+^T + I - U- U-^T) / 2`` the ``average`` edit is affine: ``h' = A (h - m) + m``.
When the site's tensor is the output ``h = W x + b`` of one linear layer (the MLP's down / output
projection for ``mlp``, the attention output projection for ``attn``), the edited output is
``A W x + A b + (I - A) m``: replacing ``W`` by ``A W`` and ``b`` by ``A b + (I - A) m`` gives the
edited model with no hooks and no extra cost at all. ``A W`` is computed as
``(W + U+ (U+^T W) - U- (U-^T W)) / 2`` in float64, so even the fold never forms ``d x d``.

:func:`fold_into` changes the model in memory and returns a handle that restores the original
parameter objects (bit for bit). :func:`export_folded` writes a standard Hugging Face checkpoint
in :mod:`sea_dist.edit.export`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import torch

from sea_dist.config import LayerSpec
from sea_dist.edit.compat import check_compatible, select_layers, unwrap_model
from sea_dist.edit.loader import load_edit
from sea_dist.edit.projections import LayerProjection, SeaEdit
from sea_dist.errors import ArtifactError, ModelError, expected_found
from sea_dist.layers import site_module

# The linear layer whose output *is* the site's tensor, by site, as an attribute of the site
# module (Llama-like down_proj / o_proj, GPT-2 c_proj (Conv1D), GPT-NeoX dense_4h_to_h / dense,
# OPT out_proj; OPT's mlp site is its fc2 linear itself).
OUTPUT_LINEARS: dict[str, tuple[str, ...]] = {
    "mlp": ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "w2", "fc_out"),
    "attn": ("o_proj", "c_proj", "dense", "out_proj"),
}


def is_conv1d(module: torch.nn.Module) -> bool:
    """True for GPT-2's ``Conv1D`` (a linear layer with a transposed ``(in, out)`` weight)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def output_linear(site: torch.nn.Module, site_name: str) -> torch.nn.Module:
    """The ``nn.Linear`` / ``Conv1D`` whose output is the site module's output.

    Raises:
        ModelError: the site is not produced by a single known linear layer.
    """
    if isinstance(site, torch.nn.Linear) or is_conv1d(site):
        return site
    for name in OUTPUT_LINEARS.get(site_name, ()):
        child = getattr(site, name, None)
        if isinstance(child, torch.nn.Linear) or (
            isinstance(child, torch.nn.Module) and is_conv1d(child)
        ):
            return child
    raise ModelError(
        expected_found(
            f"fold at site {site_name!r}",
            "a site produced by one linear layer (mlp or attn output "
            f"projection: {', '.join(OUTPUT_LINEARS['mlp'] + OUTPUT_LINEARS['attn'])})",
            type(site).__name__,
            "apply the edit with hooks (apply_edit) instead",
        )
    )


def _weight(linear: torch.nn.Module) -> torch.nn.Parameter:
    return cast(torch.nn.Parameter, linear.weight)


def _bias(linear: torch.nn.Module) -> torch.nn.Parameter | None:
    return cast("torch.nn.Parameter | None", getattr(linear, "bias", None))


def _apply_a(proj: LayerProjection, mat: torch.Tensor) -> torch.Tensor:
    """``A @ mat`` for ``mat`` of shape ``(d, n)`` (float64), via the low-rank factors."""
    u_pos = proj.u_pos.to(device=mat.device, dtype=torch.float64)
    u_neg = proj.u_neg.to(device=mat.device, dtype=torch.float64)
    return 0.5 * (mat + u_pos @ (u_pos.T @ mat) - u_neg @ (u_neg.T @ mat))


def folded_parameters(
    linear: torch.nn.Module, proj: LayerProjection
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """New ``(weight, bias)`` of ``linear`` with the ``average`` edit of ``proj`` baked in.

    Args:
        linear: ``nn.Linear`` (weight ``(d, in)``) or GPT-2 ``Conv1D`` (weight ``(in, d)``).
        proj: the layer's projections (``d`` = the linear's output width).

    Returns:
        Weight in the linear's layout and dtype; bias ``(d,)``, or None when the linear has no
        bias and the edit is uncentred (then ``A b + (I - A) m`` is zero).
    """
    weight = _weight(linear)
    conv = is_conv1d(linear)
    w64 = weight.detach().to(torch.float64)
    w_out_first = w64.T if conv else w64  # (d, in)
    if w_out_first.shape[0] != proj.d_model:
        raise ArtifactError(
            expected_found(
                f"fold layer {proj.layer}",
                f"an output projection of width {proj.d_model}",
                tuple(weight.shape),
                "check the artifact's site",
            )
        )
    new_w = _apply_a(proj, w_out_first)
    new_weight = (new_w.T if conv else new_w).to(weight.dtype).contiguous()
    bias = _bias(linear)
    if bias is None and proj.mean is None:
        return new_weight, None
    b64 = (
        torch.zeros(proj.d_model, dtype=torch.float64, device=weight.device)
        if bias is None
        else bias.detach().to(torch.float64)
    )
    new_b = _apply_a(proj, b64[:, None])[:, 0]
    if proj.mean is not None:
        m64 = proj.mean.to(device=weight.device, dtype=torch.float64)
        new_b = new_b + m64 - _apply_a(proj, m64[:, None])[:, 0]
    dtype = weight.dtype if bias is None else bias.dtype
    return new_weight, new_b.to(dtype)


@dataclass
class _Saved:
    module: torch.nn.Module
    weight: torch.nn.Parameter
    bias: torch.nn.Parameter | None
    added_bias: bool


class FoldHandle:
    """Weights changed by :func:`fold_into`. ``remove()`` (idempotent) or use as a context manager.

    Attributes:
        layers: the folded decoder layers.
        edit: the projections folded in.
        linears: layer -> the linear module whose parameters were replaced.
    """

    def __init__(self, edit: SeaEdit, layers: tuple[int, ...]) -> None:
        self.edit = edit
        self.layers = layers
        self.linears: dict[int, torch.nn.Module] = {}
        self._saved: list[_Saved] = []

    @property
    def active(self) -> bool:
        """True until :meth:`remove` is called."""
        return bool(self._saved)

    @property
    def added_biases(self) -> list[torch.nn.Module]:
        """Linears that had no bias before the fold and have one now."""
        return [saved.module for saved in self._saved if saved.added_bias]

    def remove(self) -> None:
        """Put the original parameter objects back; calling it again does nothing."""
        while self._saved:
            saved = self._saved.pop()
            # setattr with the original Parameter objects re-registers them: bit for bit.
            # The original Parameter objects go back in place: the model is restored bit for bit.
            saved.module.register_parameter("weight", saved.weight)
            saved.module.register_parameter("bias", saved.bias)

    def __enter__(self) -> FoldHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def _check_foldable(edit: SeaEdit) -> None:
    what = f"fold {edit.source or '(in memory)'}"
    if edit.combine != "average":
        raise ArtifactError(
            expected_found(
                f"{what}: combine",
                "'average' (a linear edit)",
                edit.combine,
                "fit with fit.combine: average, or apply the edit with hooks (apply_edit)",
            )
        )
    if edit.feature_map != "linear":
        raise ArtifactError(
            expected_found(
                f"{what}: feature_map",
                "'linear' (Phi-SEA is not linear)",
                edit.feature_map,
                "apply the edit with hooks (apply_edit)",
            )
        )


def fold_into(
    model: Any,
    edit: SeaEdit | str | Path,
    layers: LayerSpec | Sequence[int] = "all",
    allow_model_mismatch: bool = False,
    registry: str | None = None,
) -> FoldHandle:
    """Bake an ``average`` edit into the weights of the linear layers producing its site.

    The folded model's outputs equal the hooked model's (:func:`~sea_dist.edit.hooks.apply_edit`
    without ``skip_first_token``) up to float rounding. A linear without a bias gets one when the
    edit is centred.

    Args:
        model: a Hugging Face causal LM or a ``LoadedModel``.
        edit: loaded projections, a folder or a registry reference.
        layers: which fitted layers to fold (as in ``apply_edit``).
        allow_model_mismatch: accept another model id / architecture of the same shape.
        registry: registry location when ``edit`` is a reference.

    Returns:
        A :class:`FoldHandle`; ``remove()`` restores the original parameters bit for bit.

    Raises:
        ArtifactError: not an ``average``/``linear`` edit, or projections that do not match.
        ModelError: the site is not the output of one linear layer (e.g. ``residual``).
    """
    module, model_id = unwrap_model(model)
    sea = edit if isinstance(edit, SeaEdit) else load_edit(edit, registry=registry)
    check_compatible(module, sea, model_id=model_id, allow_model_mismatch=allow_model_mismatch)
    _check_foldable(sea)
    chosen = select_layers(sea, layers)
    linears = {
        layer: output_linear(site_module(module, layer, sea.site, sea.site_template), sea.site)
        for layer in chosen
    }
    if len({id(linear) for linear in linears.values()}) != len(linears):
        raise ModelError(
            expected_found(
                "fold", "one output linear per layer", "shared modules", "apply the edit with hooks"
            )
        )
    new = {layer: folded_parameters(linear, sea.layers[layer]) for layer, linear in linears.items()}
    handle = FoldHandle(sea, chosen)
    with torch.no_grad():
        for layer, linear in linears.items():
            weight, bias = new[layer]
            old_weight, old_bias = _weight(linear), _bias(linear)
            handle._saved.append(
                _Saved(linear, old_weight, old_bias, old_bias is None and bias is not None)
            )
            linear.register_parameter(
                "weight", torch.nn.Parameter(weight, requires_grad=old_weight.requires_grad)
            )
            if bias is not None:
                grad = old_bias.requires_grad if old_bias is not None else old_weight.requires_grad
                linear.bias = torch.nn.Parameter(bias, requires_grad=grad)
    handle.linears = linears
    return handle


def fold_blockers(edit: Any) -> list[str]:
    """Why ``edit`` (a :class:`~sea_dist.edit.projections.SeaEdit`) cannot fold; empty if it can."""
    reasons = []
    if edit.combine != "average":
        reasons.append(f"combine {edit.combine!r} is not linear (refit with fit.combine: average)")
    if edit.feature_map != "linear":
        reasons.append(f"feature map {edit.feature_map!r} (Phi-SEA) is not linear")
    if edit.site_template is None and edit.site not in OUTPUT_LINEARS:
        reasons.append(f"site {edit.site!r} is not the output of one linear layer (mlp or attn)")
    recipe = edit.recipe
    if recipe is not None and recipe.alpha != 1.0:
        reasons.append(f"recipe alpha {recipe.alpha:g} (weights can only hold the full edit)")
    if recipe is not None and recipe.positions != "all":
        reasons.append(
            f"recipe positions {recipe.positions!r} (weights cannot tell prompt from answer)"
        )
    return reasons
