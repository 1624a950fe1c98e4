"""SVD paths (sea_dist/fit/svd.py) against a dense numpy reference: same k, same U U^T."""

from __future__ import annotations

import numpy as np
import pytest
from fit_reference import projection_gap, reference_k, relative_projection_gap

from sea_dist.errors import FitError
from sea_dist.fit.qr import qr_svd, thin_qr
from sea_dist.fit.svd import (
    EXACT_MAX_D,
    QR_MAX_ROWS,
    choose_path,
    exact_svd,
    frobenius_energy,
    randomized_svd,
)


def planted_omega(d: int, spectrum: np.ndarray, seed: int = 0) -> np.ndarray:
    """d x d matrix with singular values ``spectrum`` (padded with zeros) and random vectors."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((d, d)))[0]
    v = np.linalg.qr(rng.standard_normal((d, d)))[0]
    s = np.zeros(d)
    s[: len(spectrum)] = spectrum
    return (u * s) @ v.T


def power_law(d: int, rank: int, floor: float = 1e-3, seed: int = 1) -> np.ndarray:
    """Power-law decaying planted part plus a small flat noise floor."""
    rng = np.random.default_rng(seed)
    spectrum = np.concatenate(
        [10.0 * np.arange(1, rank + 1) ** -1.0, floor * rng.uniform(0.5, 1.0, d - rank)]
    )
    return planted_omega(d, np.sort(spectrum)[::-1], seed)


def dense_reference(omega: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray, int]:
    u, s, _ = np.linalg.svd(omega)
    k, _ = reference_k(s, ratio)
    return u[:, :k], s, k


@pytest.mark.parametrize("ratio", [0.5, 0.9, 0.99])
def test_exact_matches_the_reference(ratio: float) -> None:
    omega = power_law(120, rank=30)
    u_ref, s_ref, k_ref = dense_reference(omega, ratio)
    found = exact_svd(omega, ratio)
    assert found.path == "exact" and found.k == k_ref
    assert projection_gap(found.U, u_ref) < 1e-8
    np.testing.assert_allclose(found.singular_values, s_ref, rtol=1e-10, atol=1e-12)
    assert found.total_energy == pytest.approx(frobenius_energy(omega), rel=1e-12)
    assert found.energy >= ratio


@pytest.mark.parametrize(("n", "d"), [(12, 40), (30, 200), (1, 16)])
def test_qr_route_equals_the_dense_path(n: int, d: int) -> None:
    rng = np.random.default_rng(n)
    # Rows with a decaying spectrum so k sits strictly inside the rank bound.
    scales = np.geomspace(5.0, 0.05, d)
    h, p = rng.standard_normal((n, d)) * scales, rng.standard_normal((n, d)) * scales
    omega = h.T @ p / n
    u_ref, s_ref, k_ref = dense_reference(omega, 0.8)
    found = qr_svd(thin_qr(h), thin_qr(p), n, 0.8)
    assert found.path == "qr" and found.k == k_ref
    assert projection_gap(found.U, u_ref) < 1e-8
    np.testing.assert_allclose(found.singular_values, s_ref[:n], rtol=1e-9, atol=1e-12)
    assert found.total_energy == pytest.approx(frobenius_energy(omega), rel=1e-10)


def test_qr_route_with_fixed_k() -> None:
    rng = np.random.default_rng(5)
    h, p = rng.standard_normal((10, 30)), rng.standard_normal((10, 30))
    found = qr_svd(thin_qr(h), thin_qr(p), 10, 0.9, fixed_k=4)
    u_ref = np.linalg.svd(h.T @ p / 10)[0][:, :4]
    assert found.k == 4 and projection_gap(found.U, u_ref) < 1e-8


@pytest.mark.parametrize(("rank", "ratio"), [(8, 0.9), (40, 0.95), (120, 0.99)])
def test_randomized_matches_the_exact_k_and_projection(rank: int, ratio: float) -> None:
    omega = power_law(600, rank=rank, seed=rank)
    u_ref, s_ref, k_ref = dense_reference(omega, ratio)
    found = randomized_svd(omega, ratio, oversample=10, power_iterations=2, seed=0, initial_rank=8)
    assert found.path == "randomized"
    assert found.k == k_ref
    assert relative_projection_gap(found.U, u_ref) < 1e-3
    # The sketch's singular values never exceed the true ones (lower bounds) ...
    assert np.all(found.singular_values <= s_ref[: found.singular_values.size] * (1 + 1e-12))
    # ... and the energy reported is exactly what the returned U captures.
    captured = frobenius_energy(found.U.T @ omega) / frobenius_energy(omega)
    assert found.energy == pytest.approx(captured, rel=1e-9)
    assert found.energy >= ratio
    assert found.total_energy == pytest.approx(float(np.sum(s_ref**2)), rel=1e-12)
    np.testing.assert_allclose(found.U.T @ found.U, np.eye(found.k), atol=1e-10)


def test_randomized_is_reproducible_and_seeded() -> None:
    omega = power_law(300, rank=20)
    first = randomized_svd(omega, 0.9, seed=7)
    again = randomized_svd(omega, 0.9, seed=7)
    other = randomized_svd(omega, 0.9, seed=8)
    np.testing.assert_array_equal(first.U, again.U)
    assert first.k == other.k
    assert not np.array_equal(first.U, other.U)


def test_randomized_with_fixed_k() -> None:
    omega = power_law(300, rank=20)
    u_ref = np.linalg.svd(omega)[0][:, :6]
    found = randomized_svd(omega, 0.9, fixed_k=6, seed=0)
    assert found.path == "randomized" and found.k == 6
    assert relative_projection_gap(found.U, u_ref) < 1e-3


def test_randomized_hands_full_energy_to_the_exact_path() -> None:
    omega = power_law(200, rank=10)
    found = randomized_svd(omega, 1.0, seed=0)
    assert found.path == "exact" and found.k == 200  # the noise floor is full rank


def test_randomized_hands_large_k_to_the_exact_path() -> None:
    # A flat spectrum needs most directions: the sketch outgrows half of d.
    omega = planted_omega(100, np.linspace(1.0, 0.9, 100))
    u_ref, _, k_ref = dense_reference(omega, 0.9)
    found = randomized_svd(omega, 0.9, seed=0, initial_rank=8)
    assert found.path == "exact" and found.k == k_ref
    assert projection_gap(found.U, u_ref) < 1e-8


def test_zero_matrix_is_refused() -> None:
    with pytest.raises(FitError, match="energy"):
        randomized_svd(np.zeros((50, 50)), 0.9)
    with pytest.raises(FitError, match="energy"):
        exact_svd(np.zeros((5, 5)), 0.9)


@pytest.mark.parametrize(
    ("requested", "d", "n", "path"),
    [
        ("auto", 576, 1000, "exact"),
        ("auto", 576, 100, "qr"),
        ("auto", EXACT_MAX_D, 20000, "exact"),
        ("auto", 2048, 1000, "qr"),
        ("auto", 2048, 4000, "randomized"),
        ("auto", 8192, QR_MAX_ROWS + 1, "randomized"),
        ("auto", 8192, QR_MAX_ROWS, "qr"),
        ("exact", 8192, 100, "exact"),
        ("randomized", 64, 1000, "randomized"),
        ("qr", 64, 10, "qr"),
    ],
)
def test_choose_path(requested: str, d: int, n: int, path: str) -> None:
    assert choose_path(requested, d, n) == path


def test_choose_path_refuses_qr_without_fewer_rows_and_unknown_names() -> None:
    with pytest.raises(FitError, match="fewer rows"):
        choose_path("qr", 64, 64)
    with pytest.raises(FitError, match="svd"):
        choose_path("lanczos", 64, 10)


@pytest.mark.parametrize("condition", [1.0, 1e3, 1e9])
def test_orthonormalisation_is_accurate_or_falls_back(condition: float) -> None:
    from sea_dist.fit.svd import _orth

    rng = np.random.default_rng(0)
    left = np.linalg.qr(rng.standard_normal((300, 20)))[0]
    right = np.linalg.qr(rng.standard_normal((20, 20)))[0]
    a = (left * np.geomspace(1.0, 1.0 / condition, 20)) @ right
    q = _orth(a)
    np.testing.assert_allclose(q.T @ q, np.eye(20), atol=1e-12)
    np.testing.assert_allclose(q @ (q.T @ a), a, atol=1e-12)  # same column space


def test_orthonormalisation_of_a_rank_deficient_block() -> None:
    from sea_dist.fit.svd import _orth

    a = np.random.default_rng(1).standard_normal((100, 3)) @ np.ones((3, 8))
    q = _orth(a)
    assert q.shape == (100, 8)
    np.testing.assert_allclose(q @ (q.T @ a), a, atol=1e-10)


def test_randomized_hands_over_when_refinement_cannot_settle() -> None:
    omega = power_law(300, rank=20)
    found = randomized_svd(omega, 0.9, seed=0, max_refinements=0)
    assert found.path == "exact"
    assert found.k == dense_reference(omega, 0.9)[2]
