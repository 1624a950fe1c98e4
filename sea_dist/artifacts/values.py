"""Moved to :mod:`sea_dist.format.values` (the value rule of projection tensors); re-exported."""

from sea_dist.format.values import (
    BASIS_DTYPES,
    ORTHONORMAL_ATOL,
    check_projection_values,
    describe_worst,
    orthonormality_error,
)

__all__ = [
    "BASIS_DTYPES",
    "ORTHONORMAL_ATOL",
    "check_projection_values",
    "describe_worst",
    "orthonormality_error",
]
