"""Property-based tests (hypothesis) of the fit and edit invariants SEA relies on.

Fit: the kept bases are orthonormal and their projectors idempotent and symmetric; k never
decreases as the energy ratio K grows; the exact, thin-QR and randomized paths choose the same k
and the same subspace. Edit: the ``l2`` combine preserves every token's (centred) norm; keeping
every direction in and none out is the identity, for both combines, centred or not.

Examples are small and few (2 shared cores); ``deadline=None`` because a cold LAPACK call can take
longer than hypothesis's default deadline without anything being wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sea_dist.config import FitConfig
from sea_dist.edit import LayerProjection, edit_activations
from sea_dist.errors import FitError
from sea_dist.fit.covariance import LayerMoments
from sea_dist.fit.projections import fit_layer
from sea_dist.fit.qr import qr_svd, thin_qr
from sea_dist.fit.rank import select_k
from sea_dist.fit.svd import exact_svd, randomized_svd

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine: a CI failure reproduces
    suppress_health_check=[HealthCheck.too_slow],
)
RATIO = st.floats(0.05, 0.999, allow_nan=False)
FINITE = st.floats(-8.0, 8.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def activation_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three (N, d) float64 row blocks: neutral, positive, negative."""
    n = draw(st.integers(2, 10))
    d = draw(st.integers(3, 10))
    block = arrays(np.float64, (n, d), elements=FINITE)
    return draw(block), draw(block), draw(block)


def _projector(u: np.ndarray) -> np.ndarray:
    return u @ u.T


def _fit(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray], ratio: float, centre: bool, path: str
) -> object:
    moments = LayerMoments.from_rows(*rows, keep_rows=path == "qr")
    config = FitConfig(
        positive_energy=ratio,
        negative_energy=ratio,
        centre=centre,
        svd=path,  # type: ignore[arg-type]
    )
    return fit_layer(0, moments, config, path)  # type: ignore[arg-type]


@SETTINGS
@given(
    rows=activation_rows(), ratio=RATIO, centre=st.booleans(), path=st.sampled_from(["exact", "qr"])
)
def test_fitted_bases_are_orthonormal_and_projectors_idempotent(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray], ratio: float, centre: bool, path: str
) -> None:
    n, d = rows[0].shape
    assume(path != "qr" or n < d)
    try:
        fitted = _fit(rows, ratio, centre, path)
    except FitError as error:  # constant activations carry no energy: refused, and said so
        assert "energy" in str(error)
        return
    for u, k in ((fitted.U_pos, fitted.k_pos), (fitted.U_neg, fitted.k_neg)):  # type: ignore[attr-defined]
        u = np.asarray(u, dtype=np.float64)
        assert u.shape == (d, k) and 1 <= k <= d
        np.testing.assert_allclose(u.T @ u, np.eye(k), atol=1e-5)  # stored as float32
        p = _projector(u)
        np.testing.assert_allclose(p @ p, p, atol=1e-5)
        np.testing.assert_allclose(p, p.T, atol=1e-6)


@SETTINGS
@given(rows=activation_rows(), ratios=st.lists(RATIO, min_size=2, max_size=5, unique=True))
def test_k_never_decreases_as_K_grows(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray], ratios: list[float]
) -> None:
    omega = rows[0].T @ rows[1] / rows[0].shape[0]
    assume(np.sum(omega * omega) > 1e-12)
    ks = [exact_svd(omega.copy(), ratio).k for ratio in sorted(ratios)]
    assert ks == sorted(ks)
    s = np.linalg.svd(omega, compute_uv=False)
    total = float(np.sum(s * s))
    ks = [select_k(s, total, ratio) for ratio in sorted([*ratios, 1.0])]
    assert ks == sorted(ks) and ks[-1] <= omega.shape[0]


def _clear_of_threshold(s: np.ndarray, ratio: float) -> bool:
    """K is not within rounding of a cumulative energy, and s_k is separated from s_(k+1)."""
    energy = np.cumsum(s * s) / np.sum(s * s)
    if np.min(np.abs(energy - ratio)) < 1e-6:
        return False
    k = int(np.searchsorted(energy, ratio)) + 1
    return k >= len(s) or s[k - 1] > 1.02 * s[k]


@SETTINGS
@given(
    d=st.integers(16, 48),
    spectrum=st.lists(st.floats(0.05, 20.0), min_size=1, max_size=6),
    ratio=RATIO,
    seed=st.integers(0, 2**16),
)
def test_exact_and_randomized_paths_agree(
    d: int, spectrum: list[float], ratio: float, seed: int
) -> None:
    s = np.sort(np.asarray(spectrum))[::-1]
    assume(_clear_of_threshold(s, ratio))
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((d, len(s))))[0]
    v = np.linalg.qr(rng.standard_normal((d, len(s))))[0]
    omega = (u * s) @ v.T
    exact = exact_svd(omega.copy(), ratio)
    sketch = randomized_svd(omega, ratio, initial_rank=2, oversample=4, seed=seed)
    # a sketch that would outgrow max_rank_fraction * d hands over to the exact path (documented;
    # e.g. d=16 with five equal singular values): either way the result must equal the exact one
    assert sketch.path in ("randomized", "exact")
    assert sketch.k == exact.k
    assert np.linalg.norm(_projector(sketch.U) - _projector(exact.U)) < 1e-6
    assert sketch.energy == pytest.approx(exact.energy, abs=1e-9)


@SETTINGS
@given(rows=activation_rows(), ratio=RATIO)
def test_exact_and_thin_qr_paths_agree(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray], ratio: float
) -> None:
    neutral, positive, _ = rows
    n, d = neutral.shape
    assume(n < d)
    omega = neutral.T @ positive / n
    s = np.linalg.svd(omega, compute_uv=False)[:n]
    assume(s[0] > 1e-6 and _clear_of_threshold(s[s > 1e-9 * s[0]], ratio))
    exact = exact_svd(omega.copy(), ratio)
    qr = qr_svd(thin_qr(neutral), thin_qr(positive), n, ratio)
    assert qr.k == exact.k
    gap = np.linalg.norm(_projector(qr.U) - _projector(exact.U))
    assert gap < 1e-6 * max(1.0, exact.k)


# -- edit ------------------------------------------------------------------------------------------


@st.composite
def edit_case(draw: st.DrawFn) -> tuple[torch.Tensor, LayerProjection]:
    """Activations (tokens, d) and a projection with random orthonormal U+ (d, k+), U- (d, k-)."""
    d = draw(st.integers(2, 16))
    tokens = draw(st.integers(1, 6))
    k_pos = draw(st.integers(0, d))
    k_neg = draw(st.integers(0, d))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
    other = np.linalg.qr(rng.standard_normal((d, d)))[0]
    h = draw(arrays(np.float32, (tokens, d), elements=st.floats(-50, 50, width=32)))
    mean = rng.standard_normal(d).astype(np.float32) if draw(st.booleans()) else None
    proj = LayerProjection(
        layer=0,
        u_pos=torch.from_numpy(basis[:, :k_pos].astype(np.float32)),
        u_neg=torch.from_numpy(other[:, :k_neg].astype(np.float32)),
        mean=None if mean is None else torch.from_numpy(mean),
    )
    return torch.from_numpy(h), proj


@SETTINGS
@given(case=edit_case())
def test_l2_combine_preserves_each_tokens_norm(case: tuple[torch.Tensor, LayerProjection]) -> None:
    h, proj = case
    out = edit_activations(h, proj, combine="l2")
    assert out.shape == h.shape and out.dtype == h.dtype
    mean = proj.mean if proj.mean is not None else torch.zeros(h.shape[-1])
    x, y = (h - mean).double(), (out - mean).double()
    # p + n = 0 only when x lies in span(U-) and is orthogonal to U+: nothing left to rescale.
    u_pos, u_neg = proj.u_pos.double(), proj.u_neg.double()
    s = x + (x @ u_pos) @ u_pos.T - (x @ u_neg) @ u_neg.T
    kept = s.norm(dim=-1) > 1e-3 * x.norm(dim=-1)
    expected = x.norm(dim=-1)[kept]
    torch.testing.assert_close(y.norm(dim=-1)[kept], expected, rtol=1e-4, atol=1e-3)


@SETTINGS
@given(case=edit_case(), combine=st.sampled_from(["l2", "average"]))
def test_everything_kept_in_nothing_kept_out_is_identity(
    case: tuple[torch.Tensor, LayerProjection], combine: str
) -> None:
    h, proj = case
    d = h.shape[-1]
    rng = np.random.default_rng(d)
    full = torch.from_numpy(np.linalg.qr(rng.standard_normal((d, d)))[0].astype(np.float32))
    identity = LayerProjection(0, u_pos=full, u_neg=torch.zeros(d, 0), mean=proj.mean)
    out = edit_activations(h, identity, combine=combine)
    torch.testing.assert_close(out, h, rtol=1e-4, atol=1e-3)
