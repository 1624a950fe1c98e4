"""Where the SVD paths compute: the array operations they are written against, numpy by default.

:class:`ArrayOps` is the small set of operations the exact and randomized paths of
:mod:`sea_dist.fit.svd` use; :class:`NumpyOps` implements it on the host,
:class:`sea_dist.fit.torch_ops.TorchOps` in float64 on a torch device. :func:`use_device` sets the
device for the paths called inside a block (so :mod:`sea_dist.fit.projections` need not pass it
through), and :func:`canonical_signs` fixes the sign of singular vectors so that devices and
LAPACK builds give the same ``U`` entry by entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch


class ArrayOps(Protocol):
    """The array operations of the exact and randomized paths. Arrays are the backend's own
    (numpy or torch, float64) and support ``@``, ``.T``, ``.shape`` and slicing with steps >= 1;
    whatever picks k (singular values, diagonals, norms) comes back to the host."""

    def put(self, a: np.ndarray) -> Any:
        """Host array -> backend float64 array."""
        ...

    def get(self, a: Any) -> np.ndarray:
        """Backend array -> host float64 numpy array (C-contiguous)."""
        ...

    def empty(self, rows: int, cols: int) -> Any: ...

    def svd(self, a: Any) -> tuple[Any, np.ndarray]:
        """Thin SVD: left vectors (backend) and singular values (host), descending."""
        ...

    def cholesky_upper(self, a: Any) -> Any | None:
        """Upper R with ``R^T R = a``; None when ``a`` is not numerically positive definite."""
        ...

    def inv(self, a: Any) -> Any: ...

    def qr_q(self, a: Any) -> Any:
        """Q of the reduced Householder QR."""
        ...

    def eigh_descending(self, a: Any) -> tuple[np.ndarray, Any]:
        """Eigenvalues (host) and eigenvectors (columns) of a symmetric matrix, descending."""
        ...

    def hstack(self, blocks: list[Any]) -> Any: ...

    def vstack(self, blocks: list[Any]) -> Any: ...

    def diagonal(self, a: Any) -> np.ndarray: ...

    def norm(self, a: Any) -> float:
        """Frobenius norm."""
        ...


class NumpyOps:
    """:class:`ArrayOps` in numpy on the host (the default; what the paths always did)."""

    def put(self, a: np.ndarray) -> np.ndarray:
        return a

    def get(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a)

    def empty(self, rows: int, cols: int) -> np.ndarray:
        return np.empty((rows, cols))

    def svd(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, s, _ = np.linalg.svd(a, full_matrices=False)
        return u, s

    def cholesky_upper(self, a: np.ndarray) -> np.ndarray | None:
        try:
            return np.linalg.cholesky(a).T
        except np.linalg.LinAlgError:
            return None

    def inv(self, a: np.ndarray) -> np.ndarray:
        return np.linalg.inv(a)

    def qr_q(self, a: np.ndarray) -> np.ndarray:
        return np.linalg.qr(a, mode="reduced")[0]

    def eigh_descending(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, vectors = np.linalg.eigh(a)
        return values[::-1], vectors[:, ::-1]

    def hstack(self, blocks: list[np.ndarray]) -> np.ndarray:
        return np.hstack(blocks)

    def vstack(self, blocks: list[np.ndarray]) -> np.ndarray:
        return np.vstack(blocks)

    def diagonal(self, a: np.ndarray) -> np.ndarray:
        return np.diag(a)

    def norm(self, a: np.ndarray) -> float:
        return float(np.linalg.norm(a))


NUMPY_OPS = NumpyOps()
_DEVICE: ContextVar[torch.device | None] = ContextVar("sea_dist_fit_svd_device", default=None)


@contextmanager
def use_device(device: torch.device | None) -> Iterator[None]:
    """Run the exact and randomized paths called inside the block on ``device`` (None: numpy).

    ``device`` is a resolved torch device (:func:`sea_dist.fit.torch_ops.resolve_device`); an
    explicit ``device=`` argument of a path function takes precedence.
    """
    token = _DEVICE.set(device)
    try:
        yield
    finally:
        _DEVICE.reset(token)


def array_ops(device: torch.device | None = None) -> ArrayOps:
    """The operations for ``device``, or for the one set by :func:`use_device` when None."""
    chosen = device if device is not None else _DEVICE.get()
    if chosen is None:
        return NUMPY_OPS

    from sea_dist.fit.torch_ops import TorchOps  # torch loads only when a device is used

    return TorchOps(chosen)


def canonical_signs(u: np.ndarray) -> np.ndarray:
    """``u`` with each column's entry of largest magnitude made positive (a new array).

    Singular vectors are defined up to sign; fixing it makes devices and LAPACK builds agree.

    Args:
        u: (d, k) float64.
    """
    if u.size == 0:
        return u
    rows = np.argmax(np.abs(u), axis=0)
    signs = np.where(u[rows, np.arange(u.shape[1])] < 0, -1.0, 1.0)
    return np.ascontiguousarray(u * signs)
