"""Distributed activation collection: Ray actors record shards into a chunked Zarr store.

``record`` is the pure core (a batch of demonstrations -> activations, with hooks), ``actor``
the Ray collector that writes its shards into the store, ``driver`` the shard scheduler and the
public :func:`collect`. Names are imported lazily so ``sea-dist --help`` does not load torch/ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sea_dist.collect.driver import CollectError, collect
    from sea_dist.collect.record import (
        ActivationRecorder,
        Recorded,
        RecordOptions,
        record_demonstrations,
    )
    from sea_dist.collect.summary import CollectSummary

_LAZY = {
    "collect": "sea_dist.collect.driver",
    "CollectSummary": "sea_dist.collect.summary",
    "CollectError": "sea_dist.collect.driver",
    "ActivationRecorder": "sea_dist.collect.record",
    "RecordOptions": "sea_dist.collect.record",
    "Recorded": "sea_dist.collect.record",
    "record_demonstrations": "sea_dist.collect.record",
}

__all__ = [
    "ActivationRecorder",
    "CollectError",
    "CollectSummary",
    "RecordOptions",
    "Recorded",
    "collect",
    "record_demonstrations",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sea_dist.collect' has no attribute {name!r}")
