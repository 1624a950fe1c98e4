"""Mixed-precision moments (float32 products summed in float64) and row partitions of one layer
(sea_dist/fit/covariance.py, sea_dist/fit/streaming.py, FitConfig.precision)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sea_dist.config import FitConfig
from sea_dist.errors import FitError
from sea_dist.fit import fit_store
from sea_dist.fit.covariance import LayerMoments, block_shifts
from sea_dist.fit.schedulers import open_scheduler
from sea_dist.fit.streaming import compute_moments
from sea_dist.store import ActivationStore

MIXED_TOLERANCE = 1e-6
"""Centred Omega, max |error| / max |Omega|, mixed vs float64, on rows whose shared mean is
100x their spread: measured about 1e-7 (float32 rounding of the shifted rows); without the
shift the same data gives about 1e-3."""


def large_mean_rows(seed: int, n: int = 400, d: int = 24) -> list[np.ndarray]:
    """Three (n, d) float32-valued float64 arrays: a shared mean of norm ~100 sqrt(d), spread ~1."""
    rng = np.random.default_rng(seed)
    mean = 100.0 * rng.standard_normal(d)
    z = rng.standard_normal((n, 4))
    rows = []
    for role in range(3):
        basis = rng.standard_normal((4, d))
        values = mean + role * 0.5 + z @ basis + 0.1 * rng.standard_normal((n, d))
        rows.append(values.astype(np.float32).astype(np.float64))
    return rows


def mixed_moments(x: np.ndarray, xp: np.ndarray, xn: np.ndarray, block: int) -> LayerMoments:
    moments = LayerMoments.empty(x.shape[1], keep_rows=False)
    shifts = block_shifts(x[:block], xp[:block], xn[:block])
    scratch = np.empty((x.shape[1], x.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], block):
        rows = slice(start, start + block)
        moments.add_rows(x[rows], xp[rows], xn[rows], scratch=scratch, shifts=shifts)
    moments.unshift()
    return moments


def relative_error(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(found - expected).max() / np.abs(expected).max())


def test_mixed_agrees_with_float64_on_rows_with_a_large_mean() -> None:
    x, xp, xn = large_mean_rows(0)
    exact = LayerMoments.from_rows(x, xp, xn, keep_rows=False)
    mixed = mixed_moments(x, xp, xn, block=64)
    np.testing.assert_array_equal(mixed.sum_positive, exact.sum_positive)  # float64 sums
    for sign in ("pos", "neg"):
        expected = exact.cross_covariance(sign, centre=True)
        assert relative_error(mixed.cross_covariance(sign, centre=True), expected) < MIXED_TOLERANCE
    # Without the shift float32 products lose the digits the centring needs (why it exists).
    unshifted = (x.astype(np.float32).T @ xp.astype(np.float32)).astype(np.float64) / len(x)
    naive = unshifted - np.outer(x.mean(0), xp.mean(0))
    assert relative_error(naive, exact.cross_covariance("pos", centre=True)) > 100 * MIXED_TOLERANCE


def test_unshift_is_exact_when_the_float32_products_are() -> None:
    # Small integers: every float32 product and sum is exact, so only the unshifting formula
    # ``X^T X+ = A^T B + c (s+ - n c+)^T + s c+^T`` can make a difference.
    rng = np.random.default_rng(1)
    x, xp, xn = (rng.integers(-8, 9, size=(50, 7)).astype(np.float64) for _ in range(3))
    moments = LayerMoments.empty(7, keep_rows=False)
    shifts = (np.full(7, 2.0), np.arange(7.0), np.full(7, -3.0))
    for start in range(0, 50, 20):
        rows = slice(start, start + 20)
        moments.add_rows(x[rows], xp[rows], xn[rows], shifts=shifts)
    with pytest.raises(FitError, match="unshifted"):
        moments.cross_covariance("pos", centre=True)
    with pytest.raises(FitError, match="same shifts"):  # a float64 block would corrupt the sums
        moments.add_rows(x[:5], xp[:5], xn[:5])
    moments.unshift()
    np.testing.assert_array_equal(moments.cross_pos, x.T @ xp)
    np.testing.assert_array_equal(moments.cross_neg, x.T @ xn)


def test_in_place_merge_equals_a_copying_merge_and_spares_read_only_inputs() -> None:
    x, xp, xn = large_mean_rows(2, n=60, d=5)
    parts = [
        LayerMoments.from_rows(x[r], xp[r], xn[r], False) for r in (slice(0, 25), slice(25, 60))
    ]
    copied = parts[0].merged(parts[1])
    for array in (parts[0].cross_pos, parts[0].cross_neg):
        assert array is not None
        array.flags.writeable = False  # as Ray's object store hands them out
    also_copied = parts[0].merged(parts[1], in_place=True)
    assert also_copied is not parts[0]
    fresh = [
        LayerMoments.from_rows(x[r], xp[r], xn[r], False) for r in (slice(0, 25), slice(25, 60))
    ]
    in_place = fresh[0].merged(fresh[1], in_place=True)
    assert in_place is fresh[0] and in_place.n_rows == 60
    for found in (also_copied, in_place):
        np.testing.assert_array_equal(found.cross_pos, copied.cross_pos)
        np.testing.assert_array_equal(found.sum_negative, copied.sum_negative)


@pytest.mark.parametrize("partitions", [2, 5])
def test_partitions_of_one_layer_give_the_same_moments(make_store, partitions: int) -> None:
    store = make_store(n=160, d=10, layers=(0,), rows_per_shard=16, mean_scale=20.0)
    spec = ActivationStore.open(store.url).spec
    with open_scheduler("threads") as opened:
        whole = compute_moments(store.url, spec, opened, chunk_rows=16, partitions=1)[0]
        split = compute_moments(store.url, spec, opened, chunk_rows=16, partitions=partitions)[0]
    assert split.n_rows == whole.n_rows == 160
    for name in ("cross_pos", "cross_neg", "sum_neutral", "sum_positive"):
        np.testing.assert_allclose(getattr(split, name), getattr(whole, name), rtol=1e-13)
    np.testing.assert_allclose(
        split.cross_covariance("pos", True), whole.cross_covariance("pos", True), atol=1e-10
    )


def test_mixed_pass_over_a_store_agrees_with_float64(make_store) -> None:
    store = make_store(n=200, d=16, layers=(0, 2), rows_per_shard=20, mean_scale=30.0)
    spec = ActivationStore.open(store.url).spec
    with open_scheduler("threads") as opened:
        exact = compute_moments(store.url, spec, opened, chunk_rows=40, partitions=2)
        mixed = compute_moments(
            store.url, spec, opened, chunk_rows=40, partitions=3, precision="mixed"
        )
    for layer in (0, 2):
        for sign in ("pos", "neg"):
            expected = exact[layer].cross_covariance(sign, centre=True)
            found = mixed[layer].cross_covariance(sign, centre=True)
            assert relative_error(found, expected) < MIXED_TOLERANCE


def test_unknown_precision_is_refused(make_store) -> None:
    store = make_store(n=20, d=8)
    spec = ActivationStore.open(store.url).spec
    with open_scheduler("synchronous") as opened, pytest.raises(FitError, match="precision"):
        compute_moments(store.url, spec, opened, precision="float16")


def test_config_precision_reaches_the_pass(make_store, caplog: pytest.LogCaptureFixture) -> None:
    store = make_store(n=64, d=8, layers=(1,), mean_scale=10.0)
    caplog.set_level(logging.DEBUG, logger="sea_dist.fit.streaming")
    results = {}
    for precision in ("float64", "mixed"):
        caplog.clear()
        config = FitConfig(precision=precision, positive_energy=0.9, negative_energy=0.9)
        results[precision] = fit_store(store.url, config)
        passes = [r.getMessage() for r in caplog.records if "statistics pass:" in r.getMessage()]
        assert len(passes) == 1 and f"{precision} products" in passes[0]
    exact, mixed = (results[p].layers[0] for p in ("float64", "mixed"))
    assert (mixed.k_pos, mixed.k_neg) == (exact.k_pos, exact.k_neg)
    np.testing.assert_allclose(mixed.U_pos @ mixed.U_pos.T, exact.U_pos @ exact.U_pos.T, atol=1e-4)
