"""What the projection tensors must hold, not only their shapes: the value checks of an artifact.

A safetensors file can have the right layout, sha256 and shapes and still be unusable: a NaN in a
``U_pos`` turns every edited activation into NaN (perplexity nan, exit 0), and a ``U_pos``
multiplied by 1000 is not a projection at all. :func:`check_projection_values` refuses such
tensors when a fit output is published and whenever an artifact is loaded. The rule, per layer L:

- dtypes: ``U_pos``, ``U_neg`` and ``mean`` are float32 or float64 (sea-dist writes float32);
  ``S_pos`` and ``S_neg`` float32 or float64 (written as float64). Integers and float16 are
  refused: nothing sea-dist writes has them, and float16 overflows at 65504.
- every value of every tensor is finite (no NaN, no +-inf), means included;
- ``U_pos`` and ``U_neg`` have orthonormal columns: ``max |U^T U - I| <= ORTHONORMAL_ATOL``
  (1e-3), computed in float64. A fitted basis stored as float32 is off by about 1e-7, so the
  tolerance has four orders of magnitude of room, while a scaled, zero or duplicated column is
  off by about 1 or more;
- singular values are >= 0.

:mod:`sea_dist.edit.projections` applies the same rule to torch tensors (this module is numpy
only); the reliability tests run every case through both.

Only numpy (the loader runs in a serving image).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sea_dist.errors import ArtifactError, expected_found

ORTHONORMAL_ATOL = 1e-3
"""Largest allowed ``|U^T U - I|`` entry of a stored basis (float64 arithmetic)."""
BASIS_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""Allowed dtypes of ``U_pos``, ``U_neg``, ``mean``, ``S_pos`` and ``S_neg``."""
_FIX = "the projections are unusable; fit again and publish the new fit output"


def _layer_and_kind(name: str) -> tuple[str, str]:
    parts = name.split(".")
    return (parts[1], parts[2]) if len(parts) == 3 else ("?", name)


def _order(name: str) -> tuple[int, str]:
    layer, kind = _layer_and_kind(name)
    return (int(layer) if layer.isdigit() else -1, kind)


def orthonormality_error(u: np.ndarray) -> tuple[float, int, int]:
    """``(max |U^T U - I|, i, j)`` of a ``(d, k)`` basis, with the worst entry's position.

    Args:
        u: (d, k) float array; k may be 0 (then the error is 0).
    """
    if u.shape[1] == 0:
        return 0.0, 0, 0
    basis = np.asarray(u, dtype=np.float64)
    gram = basis.T @ basis
    gram[np.diag_indices_from(gram)] -= 1.0
    deviation = np.abs(gram)
    i, j = np.unravel_index(int(np.argmax(deviation)), deviation.shape)
    return float(deviation[i, j]), int(i), int(j)


def describe_worst(u: np.ndarray, i: int, j: int) -> str:
    """What the worst ``U^T U`` entry says in words (a column's norm, or two columns' overlap)."""
    basis = np.asarray(u, dtype=np.float64)
    if i == j:
        return f"column {i} has norm {float(np.linalg.norm(basis[:, i])):.6g}"
    return f"columns {i} and {j} have inner product {float(basis[:, i] @ basis[:, j]):.6g}"


def _non_finite(array: np.ndarray) -> str | None:
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    first = tuple(int(x) for x in np.argwhere(bad)[0])
    n_nan = int(np.isnan(array).sum())
    return (
        f"{int(bad.sum())} non-finite values ({n_nan} NaN, {int(bad.sum()) - n_nan} inf), "
        f"the first at index {first}"
    )


def check_projection_values(arrays: Mapping[str, np.ndarray], what: str) -> None:
    """Refuse projection tensors whose values break the rule in the module doc.

    Args:
        arrays: ``layers.<L>.{U_pos,U_neg,S_pos,S_neg,mean}`` -> numpy array (decoded
            safetensors); names were checked before.
        what: where they came from (file or folder), for the message.

    Raises:
        ArtifactError: one line naming the layer, the tensor, what was found and the tolerance.
    """
    for name in sorted(arrays, key=_order):
        array = np.asarray(arrays[name])
        layer, kind = _layer_and_kind(name)
        where = f"{what}: layer {layer} tensor {name}"
        if array.dtype not in BASIS_DTYPES:
            raise ArtifactError(
                expected_found(where, "dtype float32 or float64", str(array.dtype), _FIX)
            )
        problem = _non_finite(array)
        if problem is not None:
            raise ArtifactError(expected_found(where, "finite values", problem, _FIX))
        if kind in ("U_pos", "U_neg") and array.ndim == 2:
            error, i, j = orthonormality_error(array)
            if error > ORTHONORMAL_ATOL:
                raise ArtifactError(
                    expected_found(
                        where,
                        f"orthonormal columns (max |U^T U - I| <= {ORTHONORMAL_ATOL:g})",
                        f"{error:.6g} ({describe_worst(array, i, j)})",
                        _FIX,
                    )
                )
        if kind in ("S_pos", "S_neg") and array.size and float(array.min()) < 0:
            raise ArtifactError(
                expected_found(where, "singular values >= 0", f"{float(array.min()):.6g}", _FIX)
            )
