"""Layer moments (sea_dist/fit/covariance.py): sums, merges, centring afterwards, signature."""

from __future__ import annotations

import numpy as np
import pytest

from sea_dist.errors import FitError
from sea_dist.fit.covariance import LayerMoments


def blocks(seed: int = 0, n: int = 30, d: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=d) * 3
    return [mean + rng.normal(size=(n, d)) for _ in range(3)]


def test_block_accumulation_equals_one_shot_products() -> None:
    x, xp, xn = blocks()
    moments = LayerMoments.empty(6, keep_rows=False)
    scratch = np.empty((6, 6))
    for start in range(0, 30, 7):  # uneven blocks, with and without the scratch buffer
        rows = slice(start, start + 7)
        moments.add_rows(x[rows], xp[rows], xn[rows], scratch=scratch if start % 2 else None)
    assert moments.n_rows == 30
    np.testing.assert_allclose(moments.cross_pos, x.T @ xp, rtol=1e-13)
    np.testing.assert_allclose(moments.cross_neg, x.T @ xn, rtol=1e-13)
    np.testing.assert_allclose(moments.sum_positive, xp.sum(axis=0), rtol=1e-13)


def test_centring_after_the_pass_equals_centring_the_data() -> None:
    x, xp, xn = blocks()
    moments = LayerMoments.from_rows(x, xp, xn, keep_rows=False)
    xc, xpc, xnc = x - x.mean(0), xp - xp.mean(0), xn - xn.mean(0)
    np.testing.assert_allclose(moments.cross_covariance("pos", True), xc.T @ xpc / 30, atol=1e-12)
    np.testing.assert_allclose(moments.cross_covariance("neg", True), xc.T @ xnc / 30, atol=1e-12)
    np.testing.assert_allclose(moments.cross_covariance("pos", False), x.T @ xp / 30, rtol=1e-13)


def test_in_place_consumes_the_product() -> None:
    x, xp, xn = blocks()
    moments = LayerMoments.from_rows(x, xp, xn, keep_rows=False)
    expected = moments.cross_covariance("pos", True)
    omega = moments.cross_covariance("pos", True, in_place=True)
    np.testing.assert_allclose(omega, expected, atol=1e-14)
    assert moments.cross_pos is None and moments.cross_neg is not None
    with pytest.raises(FitError, match="cross products"):
        moments.cross_covariance("pos", True)


def test_merge_accepts_read_only_inputs() -> None:
    # Dask-on-Ray hands tasks read-only arrays from its object store.
    x, xp, xn = blocks()
    first = LayerMoments.from_rows(x[:10], xp[:10], xn[:10], keep_rows=False)
    second = LayerMoments.from_rows(x[10:], xp[10:], xn[10:], keep_rows=False)
    for array in (second.cross_pos, second.cross_neg, second.sum_neutral):
        assert array is not None
        array.flags.writeable = False
    merged = first.merged(second)
    whole = LayerMoments.from_rows(x, xp, xn, keep_rows=False)
    assert merged.n_rows == 30
    np.testing.assert_allclose(merged.cross_pos, whole.cross_pos, rtol=1e-13)
    np.testing.assert_allclose(merged.sum_negative, whole.sum_negative, rtol=1e-13)
    # Consuming a read-only product copies instead of failing.
    np.testing.assert_allclose(
        second.cross_covariance("neg", False, in_place=True), x[10:].T @ xn[10:] / 20, rtol=1e-13
    )


def test_kept_rows_for_the_qr_route() -> None:
    x, xp, xn = blocks()
    moments = LayerMoments.empty(6, keep_rows=True)
    moments.add_rows(x[:12], xp[:12], xn[:12])
    moments.add_rows(x[12:], xp[12:], xn[12:])
    merged = LayerMoments.from_rows(x[:5], xp[:5], xn[:5], keep_rows=True).merged(
        LayerMoments.from_rows(x[5:], xp[5:], xn[5:], keep_rows=True)
    )
    for found in (moments, merged):
        assert found.cross_pos is None
        c, cp, cn = found.centred_rows(centre=True)
        np.testing.assert_allclose(c, x - x.mean(0), atol=1e-12)
        np.testing.assert_allclose(cn, xn - xn.mean(0), atol=1e-12)
        raw = found.centred_rows(centre=False)
        np.testing.assert_array_equal(raw[1], xp)
    with pytest.raises(FitError, match="cross products"):
        moments.cross_covariance("pos", True)
    with pytest.raises(FitError, match="kept rows"):
        LayerMoments.from_rows(x, xp, xn, keep_rows=False).centred_rows(True)


def test_signature_is_the_label_cross_covariance_nuclear_norm() -> None:
    _, xp, xn = blocks()
    moments = LayerMoments.from_rows(blocks()[0], xp, xn, keep_rows=False)
    stacked = np.concatenate([xp, xn])
    labels = np.concatenate([np.ones(30), -np.ones(30)])[:, None]
    cross = (stacked - stacked.mean(0)).T @ (labels - labels.mean()) / 60
    assert moments.signature() == pytest.approx(np.linalg.svd(cross, compute_uv=False).sum())


def test_empty_moments_have_no_means() -> None:
    with pytest.raises(FitError, match="at least one row"):
        LayerMoments.empty(3, keep_rows=False).means()
