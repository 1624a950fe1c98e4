"""Apply SEA projections to a Hugging Face model with removable forward hooks.

:func:`apply_edit` installs one forward hook per edited layer on the projections' site module
(``residual`` = decoder block, ``mlp``, ``attn``; see :mod:`sea_dist.layers`). The hook replaces
the site's hidden state by its edit (:mod:`sea_dist.edit.transform`) at strength ``alpha``, token
by token, so a sequence's edited outputs do not depend on the other sequences of a padded batch or
on whether the KV cache is used. The model's parameters and buffers are never touched: removing
the handle restores the model bit for bit; ``alpha = 0`` leaves every output object untouched.

Which tokens are edited is the ``positions`` mode (``all``, ``skip-first``, ``generated``):
see :mod:`sea_dist.edit.positions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from sea_dist.config import LayerSpec
from sea_dist.edit.compat import check_compatible, select_layers, unwrap_model
from sea_dist.edit.loader import load_edit
from sea_dist.edit.positions import Positions, PromptLengths, as_lengths
from sea_dist.edit.projections import SeaEdit
from sea_dist.edit.transform import LayerOperator, check_alpha, layer_operators
from sea_dist.errors import ConfigError, ModelError, expected_found
from sea_dist.format.recipe import POSITIONS
from sea_dist.layers import output_tensor, replace_output, site_modules


class EditHandle:
    """Installed edit hooks. ``remove()`` (idempotent) or use as a context manager.

    Attributes:
        layers: the edited decoder layers, ascending.
        edit: the projections applied.
        alpha: the edit strength in [0, 1].
        positions: which tokens are edited (one of :data:`~sea_dist.format.recipe.POSITIONS`).
    """

    def __init__(
        self,
        edit: SeaEdit,
        layers: tuple[int, ...],
        *,
        alpha: float = 1.0,
        positions: str = "all",
    ) -> None:
        self.edit = edit
        self.layers = layers
        self.alpha = alpha
        self.positions = positions
        self._tokens = Positions(positions)
        self._handles: list[RemovableHandle] = []

    @property
    def active(self) -> bool:
        """True until :meth:`remove` is called."""
        return bool(self._handles)

    def set_prompt_lengths(self, lengths: PromptLengths | None) -> None:
        """Mark where each sequence's prompt ends, for ``positions="generated"``.

        Args:
            lengths: ``(batch,)`` number of real (non-pad) prompt tokens of each sequence of the
                batches that follow, or None to clear (then a call with an empty cache counts as
                prompt, see the module doc). Other position modes ignore it.

        Raises:
            ConfigError: not a 1-D integer tensor / sequence of counts >= 0.
        """
        self._tokens.prompt_lengths = None if lengths is None else as_lengths(lengths)

    @contextmanager
    def prompt_lengths(self, lengths: PromptLengths) -> Iterator[EditHandle]:
        """``with handle.prompt_lengths(lengths):`` sets them for the block, then restores.

        Example::

            with apply_edit(model, ref, positions="generated") as handle:
                with handle.prompt_lengths(batch["attention_mask"].sum(-1)):
                    out = model.generate(**batch, max_new_tokens=32)
        """
        previous = self._tokens.prompt_lengths
        self.set_prompt_lengths(lengths)
        try:
            yield self
        finally:
            self._tokens.prompt_lengths = previous

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
        return (
            f"EditHandle({self.edit.source or 'in-memory'}, layers={list(self.layers)}, "
            f"alpha={self.alpha:g}, positions={self.positions!r}, {state})"
        )


def _module_device(module: torch.nn.Module, fallback: torch.nn.Module) -> torch.device:
    for source in (module, fallback):
        for tensor in source.parameters():
            return tensor.device
    return torch.device("cpu")


def _make_hook(operator: LayerOperator, tokens: Positions | None, layer: int) -> Any:
    state = {"op": operator}

    def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if operator.is_identity:
            return None  # alpha = 0: the site's output object itself, bit for bit
        where: torch.Tensor | bool | None = True
        if tokens is not None:
            where = tokens.edit
            if where is None:
                raise ModelError(
                    expected_found(
                        f"edit hook at layer {layer}",
                        f"a call of the model passed to apply_edit (positions={tokens.mode!r} "
                        "needs its input_ids and attention mask)",
                        "a call of a sub-module",
                        "call the top-level model, or apply the edit with positions='all'",
                    )
                )
        if where is False:
            return None  # no token of this call is edited
        h = output_tensor(output)
        op = state["op"]
        if op.device != h.device:  # a model dispatched across devices after apply_edit
            op = state["op"] = op.to(h.device)
        edited = op(h)
        if isinstance(where, torch.Tensor):
            keep = where.to(h.device).reshape(-1)
            if keep.numel() != h.numel() // h.shape[-1]:
                raise ModelError(
                    expected_found(
                        f"edit hook at layer {layer}",
                        f"{keep.numel()} tokens (from input_ids)",
                        h.numel() // h.shape[-1],
                        "pass input_ids and attention_mask to the model",
                    )
                )
            flat = torch.where(
                keep[:, None], edited.reshape(-1, h.shape[-1]), h.reshape(-1, h.shape[-1])
            )
            edited = flat.reshape(h.shape)
        return replace_output(output, edited)

    return hook


def _resolve_positions(
    positions: str | None, skip_first_token: bool | None, recipe_positions: str | None
) -> str:
    """Explicit ``positions`` (or its alias ``skip_first_token``), else the recipe's, else all."""
    if skip_first_token is not None:
        alias = "skip-first" if skip_first_token else "all"
        if positions is not None and (positions == "skip-first") != skip_first_token:
            raise ConfigError(
                expected_found(
                    "positions",
                    f"a mode that agrees with skip_first_token={skip_first_token}",
                    positions,
                    "pass only positions",
                )
            )
        positions = positions if positions is not None else alias
    chosen = positions if positions is not None else (recipe_positions or "all")
    if chosen not in POSITIONS:
        raise ConfigError(expected_found("positions", " / ".join(POSITIONS), chosen))
    return chosen


def apply_edit(
    model: Any,
    edit: SeaEdit | str | Path,
    layers: LayerSpec | Sequence[int] | None = None,
    *,
    alpha: float | None = None,
    positions: str | None = None,
    skip_first_token: bool | None = None,
    allow_model_mismatch: bool = False,
    registry: str | None = None,
) -> EditHandle:
    """Edit ``model``'s activations with SEA projections until the handle is removed.

    ``layers``, ``alpha`` and ``positions`` each take, in this order: the argument when given,
    else the value of the projections' recipe (:attr:`SeaEdit.recipe`, from the artifact or fit
    output), else the default (``"all"``, ``1.0``, ``"all"``).

    Example::

        with apply_edit(model, "runs/fit", layers="last-8", alpha=0.5):
            out = model.generate(**batch, max_new_tokens=32)

    Args:
        model: a Hugging Face causal LM, or a :class:`sea_dist.models.LoadedModel` (then its
            ``model_id`` is checked against the projections too).
        edit: loaded projections, or a fit output / artifact folder / registry reference
            (see :func:`~sea_dist.edit.loader.load_edit`).
        layers: which fitted layers to edit: ``"all"``, ``"last-L"`` / ``"first-L"`` /
            ``"last-P%"`` / ``"first-P%"`` of the fitted layers, or explicit decoder layer
            indices (each must be fitted).
        alpha: edit strength in [0, 1]; 1 is the full SEA edit, 0 leaves the model's outputs
            unchanged bit for bit (see :mod:`sea_dist.edit.transform`).
        positions: ``"all"``, ``"skip-first"`` or ``"generated"`` (see the module doc; for
            ``"generated"`` set prompt lengths on the handle to edit answers scored in one
            forward pass or generated without the KV cache).
        skip_first_token: alias kept for older callers: True is ``positions="skip-first"``,
            False is ``positions="all"``; None (default) defers to ``positions`` / the recipe.
        allow_model_mismatch: accept projections fitted on another model id / architecture of the
            same shape.
        registry: registry location when ``edit`` is a reference.

    Returns:
        An :class:`EditHandle`; ``remove()`` it or use it in a ``with`` block.

    Raises:
        ArtifactError: the projections do not match the model (d_model, layer count, fitted
            layers, and unless allowed the model id and architecture).
        ConfigError: ``alpha`` outside [0, 1], an unknown ``positions``, or ``positions``
            contradicting ``skip_first_token``.
        ModelError: the model's layout has no module for the projections' site.
    """
    module, model_id = unwrap_model(model)
    sea = edit if isinstance(edit, SeaEdit) else load_edit(edit, registry=registry)
    recipe = sea.recipe
    strength = check_alpha(alpha if alpha is not None else (recipe.alpha if recipe else 1.0))
    mode = _resolve_positions(positions, skip_first_token, recipe.positions if recipe else None)
    check_compatible(module, sea, model_id=model_id, allow_model_mismatch=allow_model_mismatch)
    chosen = select_layers(
        sea, layers if layers is not None else (recipe.layers if recipe else "all")
    )
    sites = site_modules(module, chosen, sea.site, sea.site_template)
    devices = {layer: _module_device(site, module) for layer, site in sites.items()}
    operators = layer_operators(sea, chosen, devices, strength)
    handle = EditHandle(sea, chosen, alpha=strength, positions=mode)
    tokens = handle._tokens if mode != "all" else None
    if tokens is not None:
        handle._handles.append(module.register_forward_pre_hook(tokens.before, with_kwargs=True))
        handle._handles.append(
            module.register_forward_hook(tokens.after, with_kwargs=True, always_call=True)
        )
    for layer, site in sites.items():
        handle._handles.append(
            site.register_forward_hook(_make_hook(operators[layer], tokens, layer))
        )
    return handle
