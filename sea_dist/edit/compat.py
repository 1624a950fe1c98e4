"""Check that projections fit the model they are applied to, and choose which layers to edit.

An edit fitted on another model is refused before any hook is installed; the rule is
:func:`sea_dist.format.compat.check_model_compatible` (the one compatibility check), applied here
to the facts of a torch model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sea_dist.config import LayerSpec
from sea_dist.edit.projections import SeaEdit
from sea_dist.errors import ArtifactError, ConfigError, expected_found
from sea_dist.format.compat import ModelFacts, check_model_compatible
from sea_dist.layers import hidden_size, num_layers, resolve_layers


def unwrap_model(model: Any) -> tuple[torch.nn.Module, str | None]:
    """Return ``(module, model_id)`` for a Hugging Face model or a ``LoadedModel``.

    ``model_id`` is the id the model was loaded by (``LoadedModel.model_id``), else
    ``config.name_or_path`` when set, else None (a model built from a config).
    """
    if not isinstance(model, torch.nn.Module) and isinstance(
        getattr(model, "model", None), torch.nn.Module
    ):
        return model.model, str(getattr(model, "model_id", "") or "") or None
    if not isinstance(model, torch.nn.Module):
        raise ArtifactError(
            expected_found(
                "model", "a torch / Hugging Face model or LoadedModel", type(model).__name__
            )
        )
    name = getattr(getattr(model, "config", None), "name_or_path", "") or ""
    return model, str(name) or None


def check_compatible(
    model: torch.nn.Module,
    edit: SeaEdit,
    model_id: str | None = None,
    allow_model_mismatch: bool = False,
) -> None:
    """Refuse projections that were not fitted on ``model``.

    Args:
        model: the Hugging Face causal LM to edit.
        edit: the projections.
        model_id: the id ``model`` was loaded by; when None the model id is not compared.
        allow_model_mismatch: accept another model id / architecture of the same shape.

    Raises:
        ArtifactError: d_model or the number of layers differ, a fitted layer does not exist in
            the model, or (unless allowed) the model id or architecture differ; one line
            (:func:`sea_dist.format.compat.check_model_compatible`).
    """
    facts = ModelFacts(
        d_model=hidden_size(model),
        n_layers=num_layers(model),
        architecture=str(getattr(getattr(model, "config", None), "model_type", "")),
        model_id=model_id,
    )
    what = f"projections {edit.source or '(in memory)'}"
    check_model_compatible(edit, edit.layer_indices, facts, what, allow_model_mismatch)


def select_layers(edit: SeaEdit, layers: LayerSpec | Sequence[int]) -> tuple[int, ...]:
    """Choose which of the edit's fitted layers to apply.

    Args:
        edit: the projections.
        layers: ``"all"`` (every fitted layer), ``"last-L"`` / ``"first-L"`` (the last / first
            L of the *fitted* layers, ascending), or explicit decoder layer indices, each of which
            must be fitted.

    Returns:
        Ascending decoder layer indices.

    Raises:
        ArtifactError: an explicit layer that the projections do not hold.
        ConfigError: a malformed spec, or L larger than the number of fitted layers.
    """
    fitted = edit.layer_indices
    if isinstance(layers, str):
        positions = resolve_layers(layers, len(fitted))
        return tuple(fitted[i] for i in positions)
    chosen = list(layers)
    if not chosen:
        raise ConfigError(expected_found("layers", "a non-empty list of layer indices", chosen))
    missing = [layer for layer in chosen if layer not in edit.layers]
    if missing:
        raise ArtifactError(
            expected_found(
                f"projections {edit.source or '(in memory)'}: layers",
                f"layers it holds ({list(fitted)})",
                missing,
                "edit only fitted layers",
            )
        )
    return tuple(sorted(set(chosen)))
