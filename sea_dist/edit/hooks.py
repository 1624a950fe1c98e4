"""Apply SEA projections to a Hugging Face model with removable forward hooks.

:func:`apply_edit` installs one forward hook per edited layer on the projections' site module
(``residual`` = decoder block, ``mlp``, ``attn``; see :mod:`sea_dist.layers`). The hook replaces
the site's hidden state by its edit (:mod:`sea_dist.edit.transform`), token by token, so a
sequence's edited outputs do not depend on the other sequences of a padded batch or on whether the
KV cache is used. The model's parameters and buffers are never touched: removing the handle
restores the model bit for bit.

``skip_first_token``: the first real token of each sequence (the "attention sink", whose
activations are outliers) is left unedited. The hooks need to know which positions that is, so a
forward pre-hook on the top-level model stashes the call's ``attention_mask``:

- with a 2D attention mask ``(batch, past + seq)`` (what ``generate`` and tokenizers give), a
  position is the first real token when the mask is 1 there and the running count of ones up to it
  is 1; this handles left and right padding, and in KV-cache decoding steps no position is first;
- without a mask, there is no padding: the token with ``position_ids == 0`` is the first (what
  ``generate`` passes when it drops an all-ones mask); without position ids either, position 0 of
  the call is the first token unless a cache is already filled (``cache_position`` or the cache's
  ``get_seq_length()`` say how many tokens came before).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from sea_dist.config import LayerSpec
from sea_dist.edit.compat import check_compatible, select_layers, unwrap_model
from sea_dist.edit.loader import load_edit
from sea_dist.edit.projections import SeaEdit
from sea_dist.edit.transform import LayerOperator, layer_operators
from sea_dist.errors import ModelError, expected_found
from sea_dist.layers import output_tensor, replace_output, site_modules


class EditHandle:
    """Installed edit hooks. ``remove()`` (idempotent) or use as a context manager.

    Attributes:
        layers: the edited decoder layers, ascending.
        edit: the projections applied.
    """

    def __init__(self, edit: SeaEdit, layers: tuple[int, ...]) -> None:
        self.edit = edit
        self.layers = layers
        self._handles: list[RemovableHandle] = []

    @property
    def active(self) -> bool:
        """True until :meth:`remove` is called."""
        return bool(self._handles)

    def remove(self) -> None:
        """Remove every hook; calling it again does nothing."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> EditHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"EditHandle({self.edit.source or 'in-memory'}, layers={list(self.layers)}, {state})"


def _first_token_mask(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``(batch, seq)`` bool, True at the first real token of each sequence (see module doc)."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    if not isinstance(ids, torch.Tensor):
        ids = kwargs.get("inputs_embeds")
    if not isinstance(ids, torch.Tensor) or ids.dim() < 2:
        return None
    batch, seq = int(ids.shape[0]), int(ids.shape[1])
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    if isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[-1] >= seq:
        real = mask != 0
        count = real.to(torch.int32).cumsum(dim=-1)
        return (real & (count == 1))[:, -seq:]
    positions = kwargs.get("position_ids")
    if isinstance(positions, torch.Tensor) and positions.shape[-1] == seq:
        # generate() drops an all-ones mask but passes position ids: 0 marks the first token
        return (positions == 0).expand(batch, seq)
    past = 0
    cache_position = kwargs.get("cache_position")
    cache = kwargs.get("past_key_values", kwargs.get("cache"))
    if isinstance(cache_position, torch.Tensor) and cache_position.numel():
        past = int(cache_position.reshape(-1)[0])
    elif cache is not None and hasattr(cache, "get_seq_length"):
        past = int(cache.get_seq_length())
    first = torch.zeros(batch, seq, dtype=torch.bool, device=ids.device)
    if past == 0:
        first[:, 0] = True
    return first


class _FirstTokens:
    """Forward (pre-)hooks on the top-level model that stash the current call's first tokens."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None
        self.depth = 0

    def before(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.depth += 1
        if self.depth == 1:  # a model that calls itself (rare) keeps the outer call's mask
            self.mask = _first_token_mask(args, kwargs)

    def after(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.mask = None


def _module_device(module: torch.nn.Module, fallback: torch.nn.Module) -> torch.device:
    for source in (module, fallback):
        for tensor in source.parameters():
            return tensor.device
    return torch.device("cpu")


def _make_hook(operator: LayerOperator, first: _FirstTokens | None, layer: int) -> Any:
    state = {"op": operator}

    def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        h = output_tensor(output)
        op = state["op"]
        if op.device != h.device:  # a model dispatched across devices after apply_edit
            op = state["op"] = op.to(h.device)
        edited = op(h)
        if first is not None:
            if first.mask is None:
                raise ModelError(
                    expected_found(
                        f"edit hook at layer {layer}",
                        "a call of the model passed to apply_edit "
                        "(skip_first_token needs its attention mask)",
                        "a call of a sub-module",
                        "call the top-level model, or apply the edit with skip_first_token=False",
                    )
                )
            keep = first.mask.to(h.device).reshape(-1)
            if keep.numel() != h.numel() // h.shape[-1]:
                raise ModelError(
                    expected_found(
                        f"edit hook at layer {layer}",
                        f"{keep.numel()} tokens (from input_ids)",
                        h.numel() // h.shape[-1],
                        "pass input_ids and attention_mask to the model",
                    )
                )
            flat = edited.reshape(-1, h.shape[-1])
            flat = torch.where(keep[:, None], h.reshape(-1, h.shape[-1]), flat)
            edited = flat.reshape(h.shape)
        return replace_output(output, edited)

    return hook


def apply_edit(
    model: Any,
    edit: SeaEdit | str | Path,
    layers: LayerSpec | Sequence[int] = "all",
    skip_first_token: bool = False,
    allow_model_mismatch: bool = False,
    registry: str | None = None,
) -> EditHandle:
    """Edit ``model``'s activations with SEA projections until the handle is removed.

    Example::

        with apply_edit(model, "runs/fit", layers="last-8"):
            out = model.generate(**batch, max_new_tokens=32)

    Args:
        model: a Hugging Face causal LM, or a :class:`sea_dist.models.LoadedModel` (then its
            ``model_id`` is checked against the projections too).
        edit: loaded projections, or a fit output / artifact folder / registry reference
            (see :func:`~sea_dist.edit.loader.load_edit`).
        layers: which fitted layers to edit: ``"all"``, ``"last-L"`` / ``"first-L"`` of the
            fitted layers, or explicit decoder layer indices (each must be fitted).
        skip_first_token: leave the first real token of each sequence unedited (see module doc).
        allow_model_mismatch: accept projections fitted on another model id / architecture of the
            same shape.
        registry: registry location when ``edit`` is a reference.

    Returns:
        An :class:`EditHandle`; ``remove()`` it or use it in a ``with`` block.

    Raises:
        ArtifactError: the projections do not match the model (d_model, layer count, fitted
            layers, and unless allowed the model id and architecture).
        ModelError: the model's layout has no module for the projections' site.
    """
    module, model_id = unwrap_model(model)
    sea = edit if isinstance(edit, SeaEdit) else load_edit(edit, registry=registry)
    check_compatible(module, sea, model_id=model_id, allow_model_mismatch=allow_model_mismatch)
    chosen = select_layers(sea, layers)
    sites = site_modules(module, chosen, sea.site, sea.site_template)
    devices = {layer: _module_device(site, module) for layer, site in sites.items()}
    operators = layer_operators(sea, chosen, devices)
    handle = EditHandle(sea, chosen)
    first = _FirstTokens() if skip_first_token else None
    if first is not None:
        handle._handles.append(module.register_forward_pre_hook(first.before, with_kwargs=True))
        handle._handles.append(
            module.register_forward_hook(first.after, with_kwargs=True, always_call=True)
        )
    for layer, site in sites.items():
        handle._handles.append(
            site.register_forward_hook(_make_hook(operators[layer], first, layer))
        )
    return handle
