"""Fitting SEA projections: streaming cross-covariances (Dask), exact / thin-QR / randomized SVD.

Public API::

    from sea_dist.fit import fit_store, FitResult, LayerProjection
    result = fit_store("runs/store.zarr", FitConfig(), out="runs/fit")
    result.layer(12).U_pos            # (d, k_pos)
    FitResult.load("runs/fit")

The names load lazily so that ``sea-dist --help`` does not import numpy, dask or zarr.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sea_dist.fit.pipeline import fit_store
    from sea_dist.fit.result import FitResult, LayerProjection

__all__ = ["FitResult", "LayerProjection", "fit_store"]

_HOMES = {
    "fit_store": "sea_dist.fit.pipeline",
    "FitResult": "sea_dist.fit.result",
    "LayerProjection": "sea_dist.fit.result",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'sea_dist.fit' has no attribute {name!r}")
