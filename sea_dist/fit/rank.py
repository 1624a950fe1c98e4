"""The k rule: how many singular directions a projection keeps.

``k`` is the smallest number of leading singular values whose squared sum reaches the energy
threshold ``K`` of the total energy ``||Omega||_F^2`` (DESIGN.md section 1), or a fixed integer.
``k >= 1`` always.

``K = 1.0`` asks for every direction with any energy. Rounding makes "cumulative energy >= total"
unreliable there, so ``K = 1.0`` returns the numerical rank instead: the number of singular values
above ``s_max * max(shape) * eps`` (the ``numpy.linalg.matrix_rank`` rule), at least 1. The
randomized path cannot certify full energy and hands ``K = 1.0`` to the exact path.
"""

from __future__ import annotations

import numpy as np

from sea_dist.errors import FitError, expected_found


def numerical_rank(singular_values: np.ndarray, shape: tuple[int, ...]) -> int:
    """Number of singular values above ``s_max * max(shape) * eps(float64)``, at least 1.

    Args:
        singular_values: (m,) float64, descending.
        shape: shape of the matrix they came from.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    if s.size == 0:
        return 1
    tolerance = float(s[0]) * max(shape) * np.finfo(np.float64).eps
    return max(1, int(np.count_nonzero(s > tolerance)))


def energy_k(
    singular_values: np.ndarray, total_energy: float, energy_threshold: float
) -> int | None:
    """Smallest ``k`` with ``sum(s[:k]^2) >= energy_threshold * total_energy``; None when ``s``
    falls short.

    Args:
        singular_values: (m,) float64, descending (possibly only the top of the spectrum).
        total_energy: ``||Omega||_F^2`` (> 0).
        energy_threshold: K in (0, 1).
    """
    cumulative = np.cumsum(np.asarray(singular_values, dtype=np.float64) ** 2)
    if cumulative.size == 0 or cumulative[-1] < energy_threshold * total_energy:
        return None
    return max(
        1, int(np.searchsorted(cumulative, energy_threshold * total_energy, side="left")) + 1
    )


def select_k(
    singular_values: np.ndarray,
    total_energy: float,
    energy_threshold: float,
    fixed_k: int | None = None,
    shape: tuple[int, ...] | None = None,
) -> int:
    """Apply the k rule to a full spectrum.

    Args:
        singular_values: (m,) float64, descending; the whole spectrum of Omega.
        total_energy: ``||Omega||_F^2``.
        energy_threshold: K in (0, 1].
        fixed_k: when set, return it (checked against ``m``).
        shape: shape of Omega, for the numerical rank used when ``energy_threshold == 1``.

    Returns:
        k in ``[1, m]``.

    Raises:
        FitError: zero total energy (nothing to fit), or ``fixed_k`` above ``m``.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    if fixed_k is not None:
        if not 1 <= fixed_k <= s.size:
            raise FitError(
                expected_found(
                    "fixed_k",
                    f"1..{s.size} (the number of singular values)",
                    fixed_k,
                    "lower --fixed-k or collect more rows",
                )
            )
        return fixed_k
    if not total_energy > 0:
        raise FitError(
            expected_found(
                "cross-covariance energy",
                "> 0",
                total_energy,
                "the activations are constant (or all zero); check the store",
            )
        )
    if energy_threshold >= 1.0:
        return numerical_rank(s, shape or (s.size,))
    k = energy_k(s, total_energy, energy_threshold)
    # A full spectrum always reaches a threshold < 1 unless rounding bites right at the threshold.
    return k if k is not None else numerical_rank(s, shape or (s.size,))


def captured_energy(singular_values: np.ndarray, k: int, total_energy: float) -> float:
    """``sum(s[:k]^2) / total_energy``: the share of the energy the first k directions keep."""
    if not total_energy > 0:
        return 0.0
    s = np.asarray(singular_values[:k], dtype=np.float64)
    return float(np.sum(s * s) / total_energy)
