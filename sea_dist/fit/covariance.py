"""Streaming cross-covariance statistics of one layer, as plain numpy.

A pass over the store accumulates *uncentred* sums in float64 (DESIGN.md section 1, with
``X = phi(H)`` etc. when a feature map is used):

    cross_pos = X^T X+        cross_neg = X^T X-        (d x d)
    sum_neutral = 1^T X       sum_positive = 1^T X+      sum_negative = 1^T X-   (d,)

Centring is applied afterwards, ``Omega_c = X^T X+ / N - mu mu+^T``, so one pass serves both the
centred and the uncentred fit (fine numerically for activations in float64). For the thin-QR
route (N < d) the moments carry the feature-mapped rows themselves instead of the d x d products.

Mixed precision (``fit.precision: mixed``, :meth:`LayerMoments.add_rows` with ``shifts``): the
block products are float32 GEMMs summed into the float64 totals, and the row sums stay float64.
Residual-stream rows share a mean much larger than their spread, so float32 products of the raw
rows lose the digits that centring needs (relative error ~1e-5 on the benchmark data). The rows
are therefore shifted by fixed per-role vectors ``c`` (a block's column means, rounded to
float32 so the shift is exact in both precisions) before the float32 product, which yields
``(X - 1c^T)^T (X+ - 1c+^T)``; :meth:`LayerMoments.unshift` turns it back into the uncentred
``X^T X+ = A^T B + c (s+ - n c+)^T + s c+^T`` in float64 (``s`` the float64 row sums), so merging
and centring are the same as for the float64 path.

The signature of a layer, a cheap score to help choose layers, is the sum of singular values of
the cross-covariance between the stacked activations ``[X+; X-]`` (2N x d) and their labels
``y = [+1; -1]``, both centred. ``y`` has zero mean, so that d x 1 cross-covariance is
``X+^T 1 / (2N) - X-^T 1 / (2N) = (mu+ - mu-) / 2`` and its only singular value is
``||mu+ - mu-|| / 2``; it needs nothing beyond the sums above.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sea_dist.errors import FitError


@dataclass
class LayerMoments:
    """Sums over a set of rows of one layer (float64).

    Attributes:
        n_rows: number of rows summed.
        sum_neutral, sum_positive, sum_negative: (d,) column sums of X, X+, X-.
        cross_pos, cross_neg: (d, d) ``X^T X+`` and ``X^T X-``; None when ``rows`` is kept.
        rows: ``(X, X+, X-)``, each (n_rows, d), kept for the thin-QR route instead of the products.
        shifts: ``(c, c+, c-)``, each (d,) float64, while the products are of shifted rows (mixed
            precision, before :meth:`unshift`); None otherwise.
    """

    n_rows: int
    sum_neutral: np.ndarray
    sum_positive: np.ndarray
    sum_negative: np.ndarray
    cross_pos: np.ndarray | None = None
    cross_neg: np.ndarray | None = None
    rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    shifts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def d(self) -> int:
        """Feature width."""
        return int(self.sum_neutral.shape[0])

    @classmethod
    def empty(cls, d: int, keep_rows: bool) -> LayerMoments:
        """Zero moments of width ``d``; with ``keep_rows`` the products are not allocated."""
        if keep_rows:
            rows = (np.empty((0, d)), np.empty((0, d)), np.empty((0, d)))
            return cls(0, np.zeros(d), np.zeros(d), np.zeros(d), rows=rows)
        return cls(0, np.zeros(d), np.zeros(d), np.zeros(d), np.zeros((d, d)), np.zeros((d, d)))

    @classmethod
    def from_rows(
        cls, neutral: np.ndarray, positive: np.ndarray, negative: np.ndarray, keep_rows: bool
    ) -> LayerMoments:
        """Moments of one block of (n, d) float64 rows (feature map already applied)."""
        moments = cls.empty(neutral.shape[1], keep_rows)
        moments.add_rows(neutral, positive, negative)
        return moments

    def add_rows(
        self,
        neutral: np.ndarray,
        positive: np.ndarray,
        negative: np.ndarray,
        scratch: np.ndarray | None = None,
        shifts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Accumulate a block of rows in place.

        Args:
            neutral, positive, negative: (n, d) float64, feature map already applied.
            scratch: optional (d, d) buffer reused for the products, so a long pass does not
                allocate (and page-fault) a d x d temporary per block: float64, or float32 with
                ``shifts``.
            shifts: mixed precision: ``(c, c+, c-)``, each (d,) float64 holding float32 values
                (:func:`block_shifts`); the products become float32 GEMMs of the shifted rows,
                summed in float64. Every block of these moments must use the same shifts, and
                :meth:`unshift` must follow the last one.
        """
        first = self.n_rows == 0
        if not first and shifts is not self.shifts:
            raise FitError("moments: expected the same shifts for every block, found others")
        self.shifts = shifts
        self.n_rows += neutral.shape[0]
        self.sum_neutral += neutral.sum(axis=0)
        self.sum_positive += positive.sum(axis=0)
        self.sum_negative += negative.sum(axis=0)
        if self.rows is not None:
            old_neutral, old_positive, old_negative = self.rows
            self.rows = (
                np.concatenate([old_neutral, neutral]),
                np.concatenate([old_positive, positive]),
                np.concatenate([old_negative, negative]),
            )
            return
        assert self.cross_pos is not None and self.cross_neg is not None
        if shifts is not None:
            self._add_mixed(neutral, positive, negative, shifts, scratch)
            return
        for total, other in ((self.cross_pos, positive), (self.cross_neg, negative)):
            if first and total.flags.writeable:
                np.matmul(neutral.T, other, out=total)  # the zeros need no add
            elif scratch is None:
                total += neutral.T @ other
            else:
                np.matmul(neutral.T, other, out=scratch)
                total += scratch

    def _add_mixed(
        self,
        neutral: np.ndarray,
        positive: np.ndarray,
        negative: np.ndarray,
        shifts: tuple[np.ndarray, np.ndarray, np.ndarray],
        scratch: np.ndarray | None,
    ) -> None:
        """float32 products of the shifted block, added to the float64 totals."""
        assert self.cross_pos is not None and self.cross_neg is not None
        d = neutral.shape[1]
        if scratch is None or scratch.dtype != np.float32:
            scratch = np.empty((d, d), dtype=np.float32)
        # float32 - float32 is correctly rounded, so each entry is round32(x - c) exactly (for
        # float32-valued x: the linear map of a float32 store).
        shifted = np.subtract(neutral, shifts[0].astype(np.float32), dtype=np.float32)
        for total, other, shift in (
            (self.cross_pos, positive, shifts[1]),
            (self.cross_neg, negative, shifts[2]),
        ):
            np.matmul(
                shifted.T,
                np.subtract(other, shift.astype(np.float32), dtype=np.float32),
                out=scratch,
            )
            total += scratch  # cast to float64 as it is added

    def unshift(self) -> None:
        """Turn mixed-precision products of shifted rows into the uncentred ``X^T X+`` (float64,
        in place): ``X^T X+ = A^T B + c (s+ - n c+)^T + s c+^T``. A no-op without shifts."""
        if self.shifts is None or self.cross_pos is None or self.cross_neg is None:
            self.shifts = None
            return
        c, c_pos, c_neg = self.shifts
        n = float(self.n_rows)
        step = 1024  # row blocks: no d x d temporary
        for total, other_sum, other_shift in (
            (self.cross_pos, self.sum_positive, c_pos),
            (self.cross_neg, self.sum_negative, c_neg),
        ):
            left = other_sum - n * other_shift
            for start in range(0, total.shape[0], step):
                rows = slice(start, start + step)
                total[rows] += np.outer(c[rows], left)
                total[rows] += np.outer(self.sum_neutral[rows], other_shift)
        self.shifts = None

    def merged(self, other: LayerMoments, in_place: bool = False) -> LayerMoments:
        """Sum of two moments over disjoint rows.

        Args:
            other: moments of other rows (same d; products unshifted).
            in_place: add into this object's arrays and return it, where they are writable (a
                local pass: saves 2 d^2 float64 per merge); read-only inputs (e.g. Ray's object
                store) always get new arrays.
        """
        if self.shifts is not None or other.shifts is not None:
            raise FitError("moments: expected unshifted products to merge, found shifted ones")
        arrays = (
            self.sum_neutral,
            self.sum_positive,
            self.sum_negative,
            self.cross_pos,
            self.cross_neg,
        )
        if (
            in_place
            and self.rows is None
            and all(a is not None and a.flags.writeable for a in arrays)
        ):
            self.n_rows += other.n_rows
            for mine, theirs in zip(
                arrays,
                (
                    other.sum_neutral,
                    other.sum_positive,
                    other.sum_negative,
                    other.cross_pos,
                    other.cross_neg,
                ),
                strict=True,
            ):
                assert mine is not None and theirs is not None
                mine += theirs
            return self
        rows = None
        if self.rows is not None and other.rows is not None:
            rows = tuple(np.concatenate(pair) for pair in zip(self.rows, other.rows))
        cross = [
            None if a is None or b is None else a + b
            for a, b in ((self.cross_pos, other.cross_pos), (self.cross_neg, other.cross_neg))
        ]
        return LayerMoments(
            self.n_rows + other.n_rows,
            self.sum_neutral + other.sum_neutral,
            self.sum_positive + other.sum_positive,
            self.sum_negative + other.sum_negative,
            cross[0],
            cross[1],
            rows,  # type: ignore[arg-type]
        )

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mu, mu+, mu-)``, each (d,) float64 feature means over the rows."""
        if self.n_rows == 0:
            raise FitError("moments: expected at least one row, found 0; the store is empty")
        n = float(self.n_rows)
        return self.sum_neutral / n, self.sum_positive / n, self.sum_negative / n

    def signature(self) -> float:
        """Sum of singular values of Cov([X+; X-], [+1; -1]) = ``||mu+ - mu-|| / 2``."""
        _, mu_pos, mu_neg = self.means()
        return float(np.linalg.norm(mu_pos - mu_neg) / 2.0)

    def cross_covariance(self, sign: str, centre: bool, in_place: bool = False) -> np.ndarray:
        """Omega+ (``sign="pos"``) or Omega- (``"neg"``), (d, d) float64.

        Args:
            sign: ``pos`` or ``neg``.
            centre: subtract the feature means (``Omega = X^T X+ / N - mu mu+^T``).
            in_place: reuse the stored product's memory (it is consumed); saves a d x d copy.
        """
        if self.shifts is not None:
            raise FitError("moments: expected unshifted products, found shifted ones; unshift()")
        cross = self.cross_pos if sign == "pos" else self.cross_neg
        if cross is None:
            raise FitError("moments: expected cross products, found rows only (thin-QR moments)")
        mu, mu_pos, mu_neg = self.means()
        other_mean = mu_pos if sign == "pos" else mu_neg
        if in_place and cross.flags.writeable:
            omega = cross
            omega /= self.n_rows
        else:
            omega = cross / self.n_rows
        if centre:
            # Row blocks keep the rank-1 correction from allocating a second d x d array.
            step = 1024
            for start in range(0, omega.shape[0], step):
                omega[start : start + step] -= np.outer(mu[start : start + step], other_mean)
        if in_place:
            if sign == "pos":
                self.cross_pos = None
            else:
                self.cross_neg = None
        return omega

    def centred_rows(self, centre: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, X+, X-)`` (each (N, d) float64), minus their means when ``centre``."""
        if self.rows is None:
            raise FitError("moments: expected kept rows (thin-QR route), found products only")
        if not centre:
            return self.rows
        mu, mu_pos, mu_neg = self.means()
        neutral, positive, negative = self.rows
        return neutral - mu, positive - mu_pos, negative - mu_neg


def block_shifts(
    neutral: np.ndarray, positive: np.ndarray, negative: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixed-precision shifts from one block: each role's column means, rounded to float32 and
    held as float64 (so the same value is subtracted in float32 and added back in float64).

    Args:
        neutral, positive, negative: (n, d) float64 rows, feature map applied.

    Returns:
        ``(c, c+, c-)``, each (d,) float64.
    """
    c, c_pos, c_neg = (
        rows.mean(axis=0).astype(np.float32).astype(np.float64)
        for rows in (neutral, positive, negative)
    )
    return c, c_pos, c_neg
