"""Shard completion markers: a done flag (``shard_done``) and the shard's content digests
(``shard_digests``), one chunk each per shard, written after the shard's data, flag last.

A shard is done when its flag is set and, in a store created with digests, its digest record is
valid for that shard. A set flag without a valid record (a digest chunk lost, damaged or never
written) is a *damaged* marker: the shard counts as pending, so a resumed collection redoes it.
A store written before digests existed has flags only; its done shards are *unchecked*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from sea_dist.store.integrity import ShardDigest
from sea_dist.store.layout import DIGEST_ARRAY, MARKER_ARRAY
from sea_dist.store.spec import StoreSpec


@dataclass(frozen=True)
class ShardMarkers:
    """The completion markers of a store, as read.

    Attributes:
        done: shards whose marker is complete (flag set and, where the store records digests,
            a valid digest record).
        damaged: shard -> why its set flag does not count (digest missing or invalid, flag
            unreadable); such shards are pending, so a resumed collection redoes them.
        digests: shard -> its recorded content digests.
        unchecked: done shards without digests (written before digests existed).
    """

    done: frozenset[int]
    damaged: Mapping[int, str] = field(default_factory=dict)
    digests: Mapping[int, ShardDigest] = field(default_factory=dict)
    unchecked: frozenset[int] = frozenset()


def _read_each(group: zarr.Group, name: str, n_shards: int) -> list[Any]:
    """All values of a one-chunk-per-shard array; None where a chunk cannot be decoded."""
    array = group.get(name)
    if not isinstance(array, zarr.Array):
        return [None] * n_shards
    try:
        return list(np.asarray(array[:]).tolist())
    except Exception:  # noqa: BLE001 - a damaged chunk: find it, keep the others
        values: list[Any] = []
        for shard in range(n_shards):
            try:
                values.append(np.asarray(array[shard]).tolist())
            except Exception:  # noqa: BLE001 - counted as a damaged marker
                values.append(None)
        return values


def read_markers(group: zarr.Group, spec: StoreSpec, has_digests: bool) -> ShardMarkers:
    """Read every shard's completion marker.

    Args:
        group: the store's group.
        spec: its spec.
        has_digests: the store was created with digests (a done shard must have a record).
    """
    flags = _read_each(group, MARKER_ARRAY, spec.n_shards)
    texts = _read_each(group, DIGEST_ARRAY, spec.n_shards)
    done: set[int] = set()
    unchecked: set[int] = set()
    damaged: dict[int, str] = {}
    digests: dict[int, ShardDigest] = {}
    for shard, (flag, text) in enumerate(zip(flags, texts, strict=True)):
        if flag is None:
            damaged[shard] = "its completion flag cannot be decoded"
            continue
        if not flag:
            continue
        if not text and not has_digests:
            done.add(shard)
            unchecked.add(shard)
            continue
        if not text:
            damaged[shard] = "its completion marker records no content digests"
            continue
        try:
            digests[shard] = ShardDigest.from_json(
                str(text), shard, spec.shard_rows(shard), len(spec.layers)
            )
        except ValueError as error:
            damaged[shard] = f"its content digests are damaged ({error})"
            continue
        done.add(shard)
    return ShardMarkers(frozenset(done), damaged, digests, frozenset(unchecked))


def mark_pending(group: zarr.Group, shards: Iterable[int]) -> None:
    """Clear the markers of ``shards`` (flag first: a set flag never outlives its digests)."""
    flags = group[MARKER_ARRAY]
    digests = group.get(DIGEST_ARRAY)
    for shard in shards:
        flags[shard] = 0  # type: ignore[index]
        if isinstance(digests, zarr.Array):
            digests[shard] = ""
