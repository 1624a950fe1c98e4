"""The thin-QR SVD path: the exact SVD of Omega = H^T P / N when N < d, from thin QRs.

With ``H^T = Q_h R_h`` and ``P^T = Q_p R_p`` (d x N each), ``Omega = Q_h (R_h R_p^T / N) Q_p^T``,
so the SVD of the N x N core gives the exact left singular vectors ``Q_h U_core`` and all N
singular values in O(d N^2). :func:`sea_dist.fit.svd.choose_path` picks it.
"""

from __future__ import annotations

import numpy as np

from sea_dist.fit.backend import canonical_signs
from sea_dist.fit.rank import captured_energy, select_k
from sea_dist.fit.svd import Spectrum


def thin_qr(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thin QR of ``rows^T``.

    Args:
        rows: (N, d) float64 with N < d.

    Returns:
        ``(Q, R)``: Q (d, N) with orthonormal columns, R (N, N) upper triangular, Q R = rows^T.
    """
    q, r = np.linalg.qr(rows.T, mode="reduced")
    return q, r


def qr_svd(
    left: tuple[np.ndarray, np.ndarray],
    right: tuple[np.ndarray, np.ndarray],
    n_rows: int,
    energy_threshold: float,
    fixed_k: int | None = None,
) -> Spectrum:
    """Exact SVD of ``Omega = H^T P / N`` from thin QRs of ``H^T`` and ``P^T``.

    Args:
        left: ``thin_qr(H)``, H the (N, d) neutral rows (centred / feature-mapped as fitted).
        right: ``thin_qr(P)``, P the (N, d) positive or negative rows.
        n_rows: N, the divisor of the cross-covariance.
        energy_threshold: K in (0, 1].
        fixed_k: keep exactly this many directions instead (<= N).
    """
    q_left, r_left = left
    _, r_right = right
    core = (r_left @ r_right.T) / n_rows
    u_core, s, _ = np.linalg.svd(core, full_matrices=False)
    total = float(np.sum(s * s))
    k = select_k(s, total, energy_threshold, fixed_k, (q_left.shape[0], q_left.shape[0]))
    return Spectrum(
        U=canonical_signs(q_left @ u_core[:, :k]),
        singular_values=s,
        k=k,
        energy=captured_energy(s, k, total),
        total_energy=total,
        path="qr",
    )
