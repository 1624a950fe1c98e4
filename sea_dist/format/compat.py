"""Whether projections fit a model: the one compatibility check (numbers and names, no torch).

Projections fitted on another model are refused before anything touches the model: the hidden
size and the number of decoder blocks must always match, and every fitted layer must exist; the
model id and architecture must match unless the caller allows a mismatch (e.g. a fine-tune of
the fitted model). :func:`sea_dist.edit.compat.check_compatible` reads the facts off a torch
model and calls :func:`check_model_compatible`; anything holding a manifest can call it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sea_dist.errors import ArtifactError, expected_found

MISMATCH_FIX = "use projections fitted on this model"
ALLOW_FIX = MISMATCH_FIX + ", or pass allow_model_mismatch=True"


class FittedFor(Protocol):
    """What projections record about the model they were fitted on (a manifest, a SeaEdit)."""

    @property
    def model_id(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def d_model(self) -> int: ...
    @property
    def n_model_layers(self) -> int: ...


@dataclass(frozen=True)
class ModelFacts:
    """The facts of the model an edit is applied to.

    Attributes:
        d_model: hidden size.
        n_layers: number of decoder blocks.
        architecture: ``config.model_type`` (``""``: unknown, not compared).
        model_id: the id the model was loaded by (None: not compared).
    """

    d_model: int
    n_layers: int
    architecture: str = ""
    model_id: str | None = None


def _names(model_id: str) -> set[str]:
    """An id and its last path component (a folder loaded elsewhere keeps its name)."""
    stripped = model_id.rstrip("/\\")
    return {stripped.lower(), stripped.replace("\\", "/").rsplit("/", 1)[-1].lower()}


def check_model_compatible(
    fitted: FittedFor,
    layers: Sequence[int],
    model: ModelFacts,
    what: str,
    allow_model_mismatch: bool = False,
) -> None:
    """Refuse projections that were not fitted on ``model``.

    Args:
        fitted: the model facts the projections record (manifest or edit).
        layers: the decoder layers the projections hold.
        model: the model they are to be applied to.
        what: the projections, for messages (e.g. ``projections <folder>``).
        allow_model_mismatch: accept another model id / architecture of the same shape.

    Raises:
        ArtifactError: d_model or the number of layers differ, a fitted layer does not exist in
            the model, or (unless allowed) the model id or architecture differ; one line.
    """
    if fitted.d_model != model.d_model:
        raise ArtifactError(
            expected_found(
                f"{what}: d_model", f"{model.d_model} (the model's)", fitted.d_model, MISMATCH_FIX
            )
        )
    if fitted.n_model_layers != model.n_layers:
        raise ArtifactError(
            expected_found(
                f"{what}: n_model_layers",
                f"{model.n_layers} (the model's)",
                fitted.n_model_layers,
                MISMATCH_FIX,
            )
        )
    outside = [layer for layer in layers if layer >= model.n_layers]
    if outside:
        raise ArtifactError(
            expected_found(
                f"{what}: layers", f"indices below {model.n_layers}", outside, MISMATCH_FIX
            )
        )
    if allow_model_mismatch:
        return
    if model.architecture and fitted.architecture != model.architecture:
        raise ArtifactError(
            expected_found(
                f"{what}: architecture",
                f"{model.architecture!r} (the model's)",
                fitted.architecture,
                ALLOW_FIX,
            )
        )
    if model.model_id and not _names(model.model_id) & _names(fitted.model_id):
        raise ArtifactError(
            expected_found(
                f"{what}: model_id", f"{model.model_id!r} (the model's)", fitted.model_id, ALLOW_FIX
            )
        )
