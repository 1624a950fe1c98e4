"""The three SVD paths for a cross-covariance Omega (d x d, float64), all plain numpy.

- ``exact``: LAPACK ``gesdd`` on the dense Omega; the full spectrum. O(d^3).
- ``qr``: when N < d, the exact SVD from thin QRs of the rows, O(d N^2) (:mod:`sea_dist.fit.qr`).
- ``randomized``: a blocked randomized range finder with power iterations (randQB_EI, Yu, Gu & Li,
  SIAM J. Matrix Anal. Appl. 2018). The basis grows (the sketch width doubles) until the leading
  singular values of ``B = Q^T Omega`` hold the energy threshold K of ``||Omega||_F^2``, which is
  computed exactly; the last ``oversample`` directions are never used for k. Block Krylov steps
  then refine the basis until ``U_k U_k^T`` settles (to ``RANDOMIZED_TOLERANCE``). The singular
  values of B are lower bounds of Omega's (``s_i(Q^T A) <= s_i(A)``), so k can only come out too
  large, never too small, and the energy reported is exactly ``||U_k^T Omega||_F^2 /
  ||Omega||_F^2`` for the returned ``U_k``. When k is a large fraction of d (the sketch would
  exceed ``max_rank_fraction * d`` columns), or the refinement does not settle, it hands over to
  ``exact``; the recorded path then says ``exact``.

:func:`choose_path` picks one automatically; see its docstring for the thresholds and
benchmarks/fit_scaling.py for the measurements behind them.

Devices. ``exact`` and ``randomized`` are written against a small set of array operations
(:class:`sea_dist.fit.backend.ArrayOps`): numpy on the host by default, or
:class:`sea_dist.fit.torch_ops.TorchOps` (float64 on a torch device) when a device is passed or
set with :func:`use_device`. Inputs and results are numpy either way; the Gaussian test matrices
come from the same numpy streams, so both devices compute the same thing up to rounding.
``qr`` stays on the host (its N x N cores are small). Every returned ``U`` has the same sign
convention: each column's entry of largest magnitude is positive (``canonical_signs``), so
results from different devices and LAPACK builds compare entry by entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sea_dist.errors import FitError, expected_found
from sea_dist.fit.backend import (
    NUMPY_OPS,
    ArrayOps,
    array_ops,
    canonical_signs,
    use_device,
)
from sea_dist.fit.rank import captured_energy, energy_k, select_k

if TYPE_CHECKING:
    import torch

__all__ = ["ArrayOps", "canonical_signs", "use_device"]  # re-exported from fit.backend

log = logging.getLogger(__name__)

SvdPath = Literal["exact", "qr", "randomized"]
SVD_CHOICES = ("auto", "exact", "qr", "randomized")

EXACT_MAX_D = 1024
"""``auto`` uses the exact SVD up to this d. Measured (benchmarks/fit_scaling.py, one BLAS
thread): d=576 exact is as fast as the reference; at d=2048, N=4000 exact takes 22 s against 7 s
for randomized with the same k and projections equal to 1e-11."""
RANDOMIZED_TOLERANCE = 1e-7
"""Randomized path: refine until the estimated relative Frobenius error of ``U_k U_k^T`` is below
this, about the float32 precision the projections are stored with."""
QR_MAX_ROWS = 1024
"""``auto`` takes the thin-QR route when N < d and N is at most this: its two N x N core SVDs grow
as N^3 (measured: N=1000 takes about 7 s at d=2048 and at d=4096, against 250 s for the
reference at d=4096; randomized takes 5 s at d=2048)."""


@dataclass(frozen=True)
class Spectrum:
    """Top-k left singular vectors of one cross-covariance and its diagnostic spectrum.

    Attributes:
        U: (d, k) float64, orthonormal columns.
        singular_values: (m,) float64 descending, m >= k; the full spectrum for ``exact`` (d
            values) and ``qr`` (N values), the sketch's top values for ``randomized``.
        k: number of kept directions.
        energy: captured energy share ``sum(s[:k]^2) / total_energy``.
        total_energy: ``||Omega||_F^2``.
        path: the path that produced the result (``exact`` when randomized handed over).
    """

    U: np.ndarray
    singular_values: np.ndarray
    k: int
    energy: float
    total_energy: float
    path: SvdPath


def choose_path(requested: str, d: int, n_rows: int) -> SvdPath:
    """Resolve ``FitConfig.svd`` for a layer of width ``d`` fitted on ``n_rows`` rows.

    ``auto``: ``qr`` when ``N < d`` and ``N <= QR_MAX_ROWS``; else ``exact`` when
    ``d <= EXACT_MAX_D``; else ``randomized``.

    Raises:
        FitError: unknown choice, or ``qr`` requested with ``N >= d`` (it would hold N x d
            matrices larger than Omega and cost more than the exact path).
    """
    if requested not in SVD_CHOICES:
        raise FitError(expected_found("svd", "one of " + ", ".join(SVD_CHOICES), requested))
    if requested == "auto":
        if n_rows < d and n_rows <= QR_MAX_ROWS:
            return "qr"
        return "exact" if d <= EXACT_MAX_D else "randomized"
    if requested == "qr" and n_rows >= d:
        raise FitError(
            expected_found(
                "svd 'qr'", f"fewer rows than d={d}", n_rows, "use --svd exact, randomized or auto"
            )
        )
    return requested  # type: ignore[return-value]


def frobenius_energy(omega: np.ndarray) -> float:
    """``||Omega||_F^2`` in float64, without a d x d temporary."""
    flat = omega.reshape(-1)
    return float(np.dot(flat, flat))


def exact_svd(
    omega: np.ndarray,
    energy_threshold: float,
    fixed_k: int | None = None,
    *,
    device: torch.device | None = None,
) -> Spectrum:
    """Dense SVD of Omega (LAPACK on the host, or float64 on a torch device).

    Args:
        omega: (d, d) float64 cross-covariance.
        energy_threshold: K in (0, 1].
        fixed_k: keep exactly this many directions instead.
        device: torch device to run on; None uses :func:`use_device`'s (default: numpy).
    """
    ops = array_ops(device)
    u, s = ops.svd(ops.put(omega))
    total = float(np.sum(s * s))
    k = select_k(s, total, energy_threshold, fixed_k, omega.shape)
    return Spectrum(
        U=canonical_signs(ops.get(u[:, :k])),
        singular_values=s,
        k=k,
        energy=captured_energy(s, k, total),
        total_energy=total,
        path="exact",
    )


def _orth(a: Any, ops: ArrayOps = NUMPY_OPS) -> Any:
    """Orthonormal basis of the columns of a tall (d, w) matrix.

    CholeskyQR2 (two passes of ``Q = A R^-1`` with ``R^T R = A^T A``): a few large BLAS-3 calls
    instead of Householder's many panel updates, which is several times faster for d >> w and
    far less sensitive to a busy machine. It is accurate while cond(A) < ~1e6 (checked on the
    first pass); rank-deficient or worse-conditioned inputs take Householder QR instead.
    """
    q = a
    for attempt in range(2):
        upper = ops.cholesky_upper(q.T @ q)
        if upper is None:
            break
        diagonal = np.abs(ops.diagonal(upper))
        if attempt == 0 and not diagonal.min() > 1e-6 * diagonal.max():
            break
        q = q @ ops.inv(upper)
    else:
        return q
    return ops.qr_q(a)


def randomized_svd(
    omega: np.ndarray,
    energy_threshold: float,
    fixed_k: int | None = None,
    *,
    oversample: int = 10,
    power_iterations: int = 2,
    seed: int | np.random.SeedSequence = 0,
    initial_rank: int = 32,
    max_rank_fraction: float = 0.5,
    tolerance: float = RANDOMIZED_TOLERANCE,
    max_refinements: int = 12,
    device: torch.device | None = None,
) -> Spectrum:
    """Randomized SVD whose rank grows until the captured energy reaches K.

    Two phases. (1) Grow an orthonormal basis Q block by block (randQB_EI with
    ``power_iterations`` per block), doubling the usable rank until the top singular values of
    ``B = Q^T Omega`` hold K of the energy; this fixes k. (2) Refine with block Krylov steps: each
    appends ``(I - Q Q^T) Omega Omega^T Q_last`` (a block as wide as phase 1's basis) and redoes
    the Rayleigh-Ritz step on the whole basis, until ``U_k U_k^T`` moves by less than
    ``tolerance`` (relative Frobenius) in one step. Krylov refinement converges much faster than
    plain subspace iteration when the spectrum beyond k decays slowly into a noise floor (the
    usual case at K = 0.99), for the same two d x d x w products per step.

    Args:
        omega: (d, d) float64 cross-covariance.
        energy_threshold: K in (0, 1]; ``1.0`` hands over to :func:`exact_svd`.
        fixed_k: keep exactly this many directions instead of the energy rule.
        oversample: extra sketch columns never used for k.
        power_iterations: power iterations per phase-1 block, each re-orthonormalised.
        seed: seed of the Gaussian test matrices.
        initial_rank: usable rank of the first sketch; each growth step doubles it.
        max_rank_fraction: hand over to the exact path once phase 1 would exceed this fraction of
            d columns (k is then too large for a sketch to pay off); phase 2 may use up to twice
            as many.
        tolerance: convergence threshold on the relative change of ``U_k U_k^T``.
        max_refinements: cap on phase-2 steps.
        device: torch device to run on; None uses :func:`use_device`'s (default: numpy). The
            test matrices come from the same numpy stream on every device.

    Returns:
        The spectrum; ``path`` is ``exact`` when it handed over.
    """
    d = min(omega.shape)
    total = frobenius_energy(omega)
    if not total > 0:
        raise FitError(
            expected_found(
                "cross-covariance energy",
                "> 0",
                total,
                "the activations are constant (or all zero); check the store",
            )
        )
    if fixed_k is not None and not 1 <= fixed_k <= d:
        raise FitError(expected_found("fixed_k", f"1..{d}", fixed_k, "lower --fixed-k"))
    if fixed_k is None and energy_threshold >= 1.0:
        log.info("randomized SVD: K = 1.0 needs the whole spectrum; using the exact path")
        return exact_svd(omega, energy_threshold, fixed_k, device=device)
    limit = max(1, int(max_rank_fraction * d))
    ops = array_ops(device)
    sketch = _Sketch(ops.put(omega), np.random.default_rng(seed), power_iterations, ops)

    def choose_k() -> int | None:
        usable = sketch.width if sketch.width == d else sketch.width - oversample
        return (
            fixed_k if fixed_k is not None else energy_k(sketch.s[:usable], total, energy_threshold)
        )

    target = fixed_k if fixed_k is not None else initial_rank
    while True:  # phase 1
        width = min(target + oversample, d)
        if width > limit:
            log.info(
                "randomized SVD: sketch of %d > %d columns; using the exact path", width, limit
            )
            return exact_svd(omega, energy_threshold, fixed_k, device=device)
        sketch.grow(width - sketch.width)
        k = choose_k()
        if k is not None:
            break
        target *= 2
    u_k = sketch.vectors(k)
    change = np.inf
    for _ in range(max_refinements):  # phase 2
        if sketch.width >= d or not sketch.extend_krylov(max_width=min(d, 2 * limit)):
            break
        k_new = choose_k() or k
        u_new = sketch.vectors(k_new)
        change = _projection_change(u_k, u_new, ops) if k_new == k else np.inf
        k, u_k = k_new, u_new
        if change <= tolerance:
            break
    if change > tolerance and sketch.width < d:
        log.info(
            "randomized SVD: U U^T still moved by %.2g at %d columns; using the exact path",
            change,
            sketch.width,
        )
        return exact_svd(omega, energy_threshold, fixed_k, device=device)
    return Spectrum(
        U=canonical_signs(ops.get(u_k)),
        singular_values=sketch.s[: max(k, sketch.width - oversample)],
        k=k,
        energy=captured_energy(sketch.s, k, total),
        total_energy=total,
        path="randomized",
    )


class _Sketch:
    """An orthonormal basis Q (d x w) of Omega's dominant range, with ``B = Q^T Omega``.

    ``s`` and ``u_small`` are the singular values and left vectors of B: lower bounds of Omega's
    singular values, and ``U = Q U_B`` captures exactly ``sum(s[:k]^2)`` of the energy.
    """

    def __init__(
        self, omega: Any, rng: np.random.Generator, power_iterations: int, ops: ArrayOps
    ) -> None:
        self.omega, self.rng, self.power_iterations = omega, rng, power_iterations
        self.ops = ops
        self.basis = ops.empty(omega.shape[0], 0)
        self.projected = ops.empty(0, omega.shape[1])
        self.gram = ops.empty(0, 0)  # B B^T, kept up to date block by block
        self.last = slice(0, 0)  # rows of B of the newest block (the Krylov seed)
        self.s = np.empty(0)  # on the host: the k rule reads it
        self.u_small = ops.empty(0, 0)

    @property
    def width(self) -> int:
        return int(self.basis.shape[1])

    def grow(self, columns: int) -> None:
        """Add a randQB_EI block: the dominant range of the residual ``Omega - Q B``.

        The residual is never formed: ``(Omega - Q B) X = Omega X - Q (B X)``. The block seeds
        the Krylov refinement on its own only if later blocks follow; phase 2 starts from the
        whole phase-1 basis.
        """
        omega, basis, projected, ops = self.omega, self.basis, self.projected, self.ops
        test = ops.put(self.rng.standard_normal((omega.shape[1], columns)))
        block = _orth(omega @ test - basis @ (projected @ test), ops)
        for _ in range(self.power_iterations):
            right = _orth(omega.T @ block - projected.T @ (basis.T @ block), ops)
            block = _orth(omega @ right - basis @ (projected @ right), ops)
        self._append(block)
        self.last = slice(0, self.width)

    def extend_krylov(self, max_width: int) -> bool:
        """Append ``orth((I - Q Q^T) Omega Omega^T Q_last)``; False if it would exceed max_width."""
        seed = self.projected[self.last]  # Q_last^T Omega, i.e. (Omega^T Q_last)^T
        if self.width + seed.shape[0] > max_width:
            return False
        start = self.width
        self._append(_orth(self.omega @ _orth(seed.T, self.ops), self.ops))
        self.last = slice(start, self.width)
        return True

    def vectors(self, k: int) -> Any:
        """(d, k) approximate top-k left singular vectors of Omega (backend array)."""
        return self.basis @ self.u_small[:, :k]

    def _append(self, block: Any) -> None:
        basis, ops = self.basis, self.ops
        # Twice is enough (Kahan): the block ends orthogonal to the basis to working precision.
        for _ in range(2):
            block = _orth(block - basis @ (basis.T @ block), ops)
        new_rows = block.T @ self.omega
        cross = self.projected @ new_rows.T
        self.gram = ops.vstack(
            [ops.hstack([self.gram, cross]), ops.hstack([cross.T, new_rows @ new_rows.T])]
        )
        self.basis = ops.hstack([basis, block])
        self.projected = ops.vstack([self.projected, new_rows])
        # B is w x d with w << d: the eigenpairs of the w x w Gram B B^T give B's left vectors
        # and squared singular values (exactly the energies the k rule needs) far faster than
        # an SVD of B. Squaring only blurs singular values below sqrt(eps) * s_1: nil energy.
        energies, self.u_small = ops.eigh_descending(self.gram)
        self.s = np.sqrt(np.clip(energies, 0.0, None))


def _projection_change(old: Any, new: Any, ops: ArrayOps = NUMPY_OPS) -> float:
    """``||P_new - P_old||_F / ||P_old||_F`` for orthonormal (d, k) bases, without cancellation."""
    residual = new - old @ (old.T @ new)  # (I - P_old) U_new: the sines of the principal angles
    return float(np.sqrt(2.0) * ops.norm(residual) / np.sqrt(old.shape[1]))
