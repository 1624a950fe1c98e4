"""Check that projections fit the model they are applied to, and choose which layers to edit.

An edit fitted on another model is refused before any hook is installed: the hidden size and the
number of decoder blocks must always match; the model id and architecture must match unless the
caller passes ``allow_model_mismatch=True`` (e.g. a fine-tune of the fitted model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sea_dist.config import LayerSpec
from sea_dist.edit.projections import SeaEdit
from sea_dist.errors import ArtifactError, ConfigError, expected_found
from sea_dist.layers import hidden_size, num_layers, resolve_layers

_MISMATCH_FIX = "use projections fitted on this model, or pass allow_model_mismatch=True"


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


def _names(model_id: str) -> set[str]:
    """An id and its last path component (a folder loaded elsewhere keeps its name)."""
    stripped = model_id.rstrip("/\\")
    return {stripped.lower(), stripped.replace("\\", "/").rsplit("/", 1)[-1].lower()}


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
            the model, or (unless allowed) the model id or architecture differ; one line.
    """
    what = f"projections {edit.source or '(in memory)'}"
    d_model = hidden_size(model)
    if edit.d_model != d_model:
        raise ArtifactError(
            expected_found(
                f"{what}: d_model",
                f"{d_model} (the model's)",
                edit.d_model,
                _MISMATCH_FIX.split(", or")[0],
            )
        )
    n_layers = num_layers(model)
    if edit.n_model_layers != n_layers:
        raise ArtifactError(
            expected_found(
                f"{what}: n_model_layers",
                f"{n_layers} (the model's)",
                edit.n_model_layers,
                _MISMATCH_FIX.split(", or")[0],
            )
        )
    outside = [layer for layer in edit.layer_indices if layer >= n_layers]
    if outside:
        raise ArtifactError(
            expected_found(
                f"{what}: layers",
                f"indices below {n_layers}",
                outside,
                _MISMATCH_FIX.split(", or")[0],
            )
        )
    if allow_model_mismatch:
        return
    architecture = str(getattr(getattr(model, "config", None), "model_type", ""))
    if architecture and edit.architecture != architecture:
        raise ArtifactError(
            expected_found(
                f"{what}: architecture",
                f"{architecture!r} (the model's)",
                edit.architecture,
                _MISMATCH_FIX,
            )
        )
    if model_id and not _names(model_id) & _names(edit.model_id):
        raise ArtifactError(
            expected_found(
                f"{what}: model_id", f"{model_id!r} (the model's)", edit.model_id, _MISMATCH_FIX
            )
        )


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
