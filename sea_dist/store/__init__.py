"""Zarr activation store: layout, shard writes with completion markers, lazy reads."""

from sea_dist.store.zarr_store import (
    ACTIVATION_ARRAYS,
    SCHEMA_VERSION,
    ActivationStore,
    StoreSpec,
)

__all__ = ["ACTIVATION_ARRAYS", "SCHEMA_VERSION", "ActivationStore", "StoreSpec"]
