"""Zarr activation store: layout, shard writes with completion markers and content digests,
checked reads and verification.

Names are imported lazily, so ``sea-dist --help`` (which registers ``sea-dist store``) does not
import zarr.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sea_dist.store.markers import ShardMarkers
    from sea_dist.store.spec import ACTIVATION_ARRAYS, SCHEMA_VERSION, StoreSpec
    from sea_dist.store.zarr_store import ActivationStore

_LAZY = {
    "ACTIVATION_ARRAYS": "sea_dist.store.spec",
    "SCHEMA_VERSION": "sea_dist.store.spec",
    "StoreSpec": "sea_dist.store.spec",
    "ActivationStore": "sea_dist.store.zarr_store",
    "ShardMarkers": "sea_dist.store.markers",
}

__all__ = ["ACTIVATION_ARRAYS", "SCHEMA_VERSION", "ActivationStore", "ShardMarkers", "StoreSpec"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sea_dist.store' has no attribute {name!r}")
