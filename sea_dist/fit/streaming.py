"""One Dask pass over the activation store: all layers' moments, memory independent of N.

Graph shape. For each layer the rows are cut into ``partitions`` contiguous ranges; one task per
range opens the Zarr arrays *by path* (so the graph holds only plain data, strings, integers and
the expected digests, and pickles on every scheduler, Dask-on-Ray included, which cannot pickle
``da.from_zarr`` arrays of zarr v3), reads its rows block by block, checks each block as it is
read (finite values, and every shard's chunk against the sha256 its completion marker records:
:mod:`sea_dist.store.integrity`), converts it to float64, applies the feature map and folds it
into a running :class:`~sea_dist.fit.covariance.LayerMoments`. A pairwise tree merges the
partitions. Each task therefore holds one accumulator (2 d^2 float64, plus one d^2 scratch) and
one block of rows, whatever N is. The thin-QR route (N < d, so N x d < d^2) instead reads the
layer as a lazy Dask array (:func:`lazy_activations`, checked the same way) and materialises its
rows. Everything is computed by a single ``dask.compute``.

Block size: ``min(chunk_rows, max(256, d // 2, 32 MiB / (24 d)))`` rows rounded to whole store
chunks, so a block buffer is O(d^2) (or 32 MiB for small d) and GEMMs see hundreds of rows.

Partitions: row partitions per layer, :func:`sea_dist.fit.partitions.auto_partitions`.

Precision: ``float64`` (default) or ``mixed``, float32 GEMMs of rows shifted by a per-partition
vector (its first block's column means), summed into float64 accumulators and unshifted exactly
in float64 before the merge (:mod:`sea_dist.fit.covariance`). The thin-QR route keeps float64 rows.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from dask.diagnostics import ProgressBar

from sea_dist.errors import FitError, SeaDistError, expected_found
from sea_dist.feature_maps import phi
from sea_dist.fit.covariance import LayerMoments, block_shifts
from sea_dist.fit.partitions import auto_partitions
from sea_dist.fit.schedulers import Scheduler
from sea_dist.store import ActivationStore, StoreSpec
from sea_dist.store.integrity import LayerCheck, read_checked
from sea_dist.store.opening import open_group

log = logging.getLogger(__name__)

MIN_BLOCK_ROWS = 256
BLOCK_FLOOR_BYTES = 32 * 2**20
"""Small d: blocks may hold this much float64 (3 roles) even when that exceeds d/2 rows."""
ROLES = ("neutral", "positive", "negative")
PRECISIONS = ("float64", "mixed")
"""Share of physical memory the running partitions of a local pass may hold together."""


def read_rows(url: str, name: str, check: LayerCheck, start: int, stop: int) -> np.ndarray:
    """Read rows ``[start, stop)`` of one layer of a store array, opening it by path, and check
    them against the shards' digests and for finiteness as they are read (no second read).

    Returns:
        (stop - start, d) array in the store's dtype.

    Raises:
        StoreError: a damaged, missing or changed chunk, or a non-finite value.
    """
    array = zarr.open_array(store=url, path=name, mode="r")
    return read_checked(array, name, check, start, stop)


def _mapped(block: np.ndarray, map_name: str, scale: float) -> np.ndarray:
    return phi(np.asarray(block, dtype=np.float64), map_name, scale)


def block_ranges(
    n_rows: int, rows_per_shard: int, d: int, chunk_rows: int
) -> list[tuple[int, int]]:
    """Row ranges read one at a time: whole store chunks of about ``min(chunk_rows, d/2)`` rows,
    or more when d is small (up to 32 MiB of float64 rows, where d/2 rows would make the GEMMs
    short and the per-block overhead dominate)."""
    wanted = min(chunk_rows, max(MIN_BLOCK_ROWS, d // 2, BLOCK_FLOOR_BYTES // (24 * d)))
    block = max(1, round(wanted / rows_per_shard)) * rows_per_shard
    return [(start, min(start + block, n_rows)) for start in range(0, n_rows, block)]


def split_ranges(ranges: Sequence[tuple[int, int]], partitions: int) -> list[list[tuple[int, int]]]:
    """Split consecutive ranges into at most ``partitions`` non-empty groups of near-equal size."""
    parts = max(1, min(partitions, len(ranges)))
    bounds = [round(i * len(ranges) / parts) for i in range(parts + 1)]
    return [list(ranges[bounds[i] : bounds[i + 1]]) for i in range(parts)]


def lazy_activations(
    url: str,
    name: str,
    layer_index: int,
    spec: StoreSpec,
    chunk_rows: int,
    check: LayerCheck | None = None,
) -> da.Array:
    """One layer of a store array as a lazy (N, d) Dask array whose tasks open the store by path.

    Args:
        url: store URL (local folder or fsspec URL).
        name: ``neutral``, ``positive`` or ``negative``.
        layer_index: position of the layer on the arrays' axis 1 (not the model layer number).
        spec: the store's spec.
        chunk_rows: upper bound on rows per Dask chunk.
        check: the layer's digests (default: read from the store's markers).
    """
    d = spec.d_model
    if check is None:
        check = layer_checks(url, spec)[spec.layers[layer_index]]
    read = dask.delayed(read_rows, pure=True)
    blocks = [
        da.from_delayed(
            read(url, name, check.restricted([(start, stop)]), start, stop),
            (stop - start, d),
            dtype=np.dtype(spec.dtype),
        )
        for start, stop in block_ranges(spec.n_rows, spec.rows_per_shard, d, chunk_rows)
    ]
    return da.concatenate(blocks, axis=0)


def layer_checks(url: str, spec: StoreSpec) -> dict[int, LayerCheck]:
    """What the readers of each layer check: the digests recorded in the store's markers."""
    store = ActivationStore(url, open_group(url), spec)
    return store.layer_checks()


def moments_task(
    url: str,
    check: LayerCheck,
    ranges: list[tuple[int, int]],
    map_name: str,
    scale: float,
    precision: str = "float64",
) -> LayerMoments:
    """Accumulate the moments of one layer over ``ranges`` (one block in memory at a time).

    Every block is checked as it is read (:func:`~sea_dist.store.integrity.read_checked`). With
    ``precision="mixed"`` the products are float32 GEMMs of rows shifted by the first block's
    column means, summed in float64 and unshifted (float64) before returning.
    """
    arrays = [zarr.open_array(store=url, path=role, mode="r") for role in ROLES]
    moments: LayerMoments | None = None
    scratch: np.ndarray | None = None
    shifts = None
    for start, stop in ranges:
        neutral, positive, negative = (
            _mapped(read_checked(array, role, check, start, stop), map_name, scale)
            for role, array in zip(ROLES, arrays, strict=True)
        )
        if moments is None:
            d = neutral.shape[1]
            mixed = precision == "mixed"
            moments = LayerMoments.empty(d, keep_rows=False)
            scratch = np.empty((d, d), dtype=np.float32 if mixed else np.float64)
            shifts = block_shifts(neutral, positive, negative) if mixed else None
        moments.add_rows(neutral, positive, negative, scratch=scratch, shifts=shifts)
        del neutral, positive, negative
    assert moments is not None, "a partition always holds at least one range"
    del scratch
    moments.unshift()
    return moments


def merge_task(first: LayerMoments, second: LayerMoments) -> LayerMoments:
    """Sum the moments of two disjoint row sets (into ``first`` where its arrays are writable:
    each partial result is consumed by exactly one merge)."""
    return first.merged(second, in_place=True)


def rows_task(neutral: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> LayerMoments:
    """Moments that keep the (N, d) rows, for the thin-QR route."""
    return LayerMoments.from_rows(neutral, positive, negative, keep_rows=True)


def moments_graph(
    url: str,
    spec: StoreSpec,
    *,
    map_name: str = "linear",
    scale: float = 1.0,
    keep_rows: bool = False,
    chunk_rows: int = 4096,
    partitions: int = 1,
    layers: Sequence[int] | None = None,
    checks: Mapping[int, LayerCheck] | None = None,
    precision: str = "float64",
) -> dict[int, Any]:
    """The lazy statistics of every layer (Dask ``Delayed`` objects, not yet computed).

    Args:
        url: store URL.
        spec: the store's spec (layers, N, d, chunking).
        map_name, scale: feature map applied to every row before the sums.
        keep_rows: keep the (N, d) rows (thin-QR route) instead of the d x d products.
        chunk_rows: upper bound on rows read per block.
        partitions: row partitions per layer (each one accumulator task).
        layers: the recorded layers to include (model layer numbers); None means all.
        checks: model layer number -> the digests its reads are checked against (default: read
            from the store's completion markers, :func:`layer_checks`).
        precision: ``float64`` or ``mixed`` (float32 products summed in float64).

    Returns:
        Model layer number -> ``Delayed`` of its :class:`LayerMoments` over all N rows.
    """
    checks = checks if checks is not None else layer_checks(url, spec)
    groups = split_ranges(
        block_ranges(spec.n_rows, spec.rows_per_shard, spec.d_model, chunk_rows), partitions
    )
    graph: dict[int, Any] = {}
    mapper: Any = _mapped  # dask's stubs type map_blocks' function argument too narrowly
    for layer in spec.layers if layers is None else layers:
        index = spec.layers.index(layer)  # position on the arrays' axis 1
        if keep_rows:
            arrays = [
                lazy_activations(url, role, index, spec, chunk_rows, checks[layer]).map_blocks(
                    mapper, map_name, scale, dtype=np.float64
                )
                for role in ROLES
            ]
            graph[layer] = dask.delayed(rows_task, pure=True)(*arrays)
            continue
        partials = [
            dask.delayed(moments_task, pure=True)(
                url, checks[layer].restricted(group), group, map_name, scale, precision
            )
            for group in groups
        ]
        while len(partials) > 1:  # pairwise tree: depth log2(partitions)
            pairs = [
                dask.delayed(merge_task, pure=True)(partials[i], partials[i + 1])
                for i in range(0, len(partials) - 1, 2)
            ]
            partials = pairs + ([partials[-1]] if len(partials) % 2 else [])
        graph[layer] = partials[0]
    return graph


def compute_moments(
    url: str,
    spec: StoreSpec,
    scheduler: Scheduler,
    *,
    map_name: str = "linear",
    scale: float = 1.0,
    keep_rows: bool = False,
    chunk_rows: int = 4096,
    partitions: int | None = None,
    progress: bool = False,
    layers: Sequence[int] | None = None,
    checks: Mapping[int, LayerCheck] | None = None,
    precision: str = "float64",
) -> dict[int, LayerMoments]:
    """Compute every layer's moments in one ``dask.compute``.

    Args:
        url: store URL.
        spec: the store's spec.
        scheduler: an open scheduler (:func:`~sea_dist.fit.schedulers.open_scheduler`).
        map_name, scale, keep_rows, chunk_rows: see :func:`moments_graph`.
        partitions: row partitions per layer; None picks :func:`auto_partitions`.
        progress: show Dask's progress bar (local schedulers).
        layers: the recorded layers to include; None means all.
        checks: what each layer's reads are checked against; see :func:`moments_graph`.
        precision: ``float64`` (default) or ``mixed``: float32 products of shifted rows summed
            into float64 (``FitConfig.precision``; ignored by the thin-QR route).

    Returns:
        Model layer number -> moments over all N rows.

    Raises:
        FitError: an unknown ``precision``.
        StoreError: a chunk is damaged, missing or changed since it was written, or holds a
            non-finite value (raised by the task that read it).
    """
    if precision not in PRECISIONS:
        raise FitError(expected_found("precision", " or ".join(PRECISIONS), precision))
    ranges = block_ranges(spec.n_rows, spec.rows_per_shard, spec.d_model, chunk_rows)
    selected = list(spec.layers if layers is None else layers)
    block_rows = ranges[0][1] - ranges[0][0]
    parts = partitions or auto_partitions(
        scheduler, len(selected), len(ranges), spec.d_model, block_rows
    )
    log.debug(
        "statistics pass: %d layer(s) x %d rows x d=%d, blocks of %d rows, %d partition(s) per "
        "layer, %s products, scheduler %s%s",
        len(selected),
        spec.n_rows,
        spec.d_model,
        block_rows,
        min(parts, len(ranges)),
        precision,
        scheduler.name,
        ", keeping rows (thin-QR)" if keep_rows else "",
    )
    graph = moments_graph(
        url,
        spec,
        map_name=map_name,
        scale=scale,
        keep_rows=keep_rows,
        chunk_rows=chunk_rows,
        partitions=parts,
        layers=selected,
        checks=checks,
        precision=precision,
    )
    bar: Any = nullcontext()
    if progress and scheduler.local:
        bar = ProgressBar(out=sys.stderr)  # stdout is for results
    try:
        with bar:
            (result,) = dask.compute(graph, **scheduler.compute_kwargs)
    except SeaDistError as error:
        # Dask-on-Ray wraps a task's exception in a RayTaskError that also derives from it
        # and prints as a traceback; the one-line cause is what the user must see.
        cause = getattr(error, "cause", None)
        raise (cause if isinstance(cause, SeaDistError) else error) from None
    return dict(result)
