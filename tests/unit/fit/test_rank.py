"""The k rule (sea_dist/fit/rank.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sea_dist.errors import FitError
from sea_dist.fit.rank import captured_energy, energy_k, numerical_rank, select_k

S = np.array([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 -> cumulative 16, 20, 21, 22
TOTAL = 22.0


@pytest.mark.parametrize(
    ("ratio", "k"),
    [(0.1, 1), (16 / 22, 1), (0.73, 2), (20 / 22, 2), (0.95, 3), (21 / 22, 3), (0.99, 4)],
)
def test_smallest_k_reaching_the_ratio(ratio: float, k: int) -> None:
    assert select_k(S, TOTAL, ratio) == k


def test_fixed_k_overrides_the_energy_rule() -> None:
    assert select_k(S, TOTAL, 0.1, fixed_k=3) == 3


def test_fixed_k_above_the_spectrum_is_refused() -> None:
    with pytest.raises(FitError, match="fixed_k"):
        select_k(S, TOTAL, 0.9, fixed_k=5)


def test_ratio_one_gives_the_numerical_rank() -> None:
    s = np.array([3.0, 1.0, 1e-3, 1e-17, 0.0])
    assert select_k(s, float(np.sum(s**2)), 1.0, shape=(5, 5)) == 3
    assert numerical_rank(np.zeros(3), (3, 3)) == 1  # k >= 1 always


def test_zero_energy_is_refused() -> None:
    with pytest.raises(FitError, match="energy"):
        select_k(np.zeros(4), 0.0, 0.9)


def test_partial_spectrum_may_fall_short() -> None:
    assert energy_k(S[:2], TOTAL, 0.95) is None
    assert energy_k(S[:3], TOTAL, 0.95) == 3


def test_captured_energy() -> None:
    assert captured_energy(S, 2, TOTAL) == pytest.approx(20 / 22)
    assert captured_energy(S, 4, TOTAL) == pytest.approx(1.0)
