"""Do the store's arrays agree with its attributes? Checked on every open, before any read.

A reader sizes everything from the attributes: rows from ``n_rows``, shards from
``rows_per_shard``, the layer axis from ``layers``, the width from ``d_model``. Arrays that hold
something else (an attribute edited after the fact, a ``zarr.json`` of an array that is damaged
or gone) would be read out of range or, worse, read as if they were what the attributes say.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sea_dist.errors import excerpt
from sea_dist.store.spec import ACTIVATION_ARRAYS, StoreSpec

PER_ROW_ARRAYS = ("row_ids", "generated", "n_tokens")
MARKER_ARRAY = "shard_done"
DIGEST_ARRAY = "shard_digests"
FIX = "restore the store's zarr.json files, or re-collect with --overwrite"


def open_array(group: Any, name: str) -> tuple[Any | None, str | None]:
    """``(array, None)``, or ``(None, why not)``: ``name`` is missing or its metadata damaged."""
    import zarr

    try:
        node = group.get(name)
    except Exception as error:  # noqa: BLE001 - damaged metadata raises JSON, Unicode, zarr errors
        return None, f"damaged metadata ({name}/zarr.json: {type(error).__name__})"
    if node is None:
        return None, f"no array (no {name}/zarr.json)"
    if not isinstance(node, zarr.Array):
        return None, "a group, not an array"
    return node, None


def expected_arrays(
    spec: StoreSpec, has_digests: bool
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], str | None]]:
    """Array name -> (shape, chunks, dtype or None for strings) that ``spec`` implies."""
    n, n_layers, d, per_shard = spec.n_rows, len(spec.layers), spec.d_model, spec.rows_per_shard
    expected: dict[str, tuple[tuple[int, ...], tuple[int, ...], str | None]] = {
        name: ((n, n_layers, d), (per_shard, 1, d), spec.dtype) for name in ACTIVATION_ARRAYS
    }
    expected.update({name: ((n,), (per_shard,), None) for name in PER_ROW_ARRAYS})
    expected["n_tokens"] = ((n,), (per_shard,), "int64")
    expected[MARKER_ARRAY] = ((spec.n_shards,), (1,), "uint8")
    if has_digests:
        expected[DIGEST_ARRAY] = ((spec.n_shards,), (1,), None)
    return expected


def array_problem(
    group: Any, name: str, spec: StoreSpec, url: str, has_digests: bool
) -> str | None:
    """How array ``name`` disagrees with ``spec`` (one line), or None when it agrees.

    A store written before digests may lack ``shard_digests``; if it has one (a resumed old
    store), its shape must still fit.
    """
    where = f"store {excerpt(url)}"
    wanted = expected_arrays(spec, has_digests=True)[name]
    array, why = open_array(group, name)
    if array is None:
        if name == DIGEST_ARRAY and not has_digests and why and why.startswith("no array"):
            return None
        return f"{where} array {name}: expected an array, found {why}; {FIX}"
    shape, chunks, dtype = wanted
    if tuple(array.shape) != shape:
        return _shape_problem(where, name, tuple(array.shape), shape, spec)
    if tuple(array.chunks) != chunks:
        return (
            f"{where} array {name}: expected chunks {chunks} (one per shard and layer), "
            f"found {tuple(array.chunks)}; {FIX}"
        )
    if dtype is not None and np.dtype(array.dtype) != np.dtype(dtype):
        return (
            f"{where} array {name}: expected dtype {dtype} (attribute dtype), found "
            f"{array.dtype}; {FIX}"
        )
    return None


def layout_problems(group: Any, spec: StoreSpec, url: str, has_digests: bool) -> list[str]:
    """Every disagreement between the arrays of ``group`` and ``spec``, one line each.

    Args:
        group: the opened Zarr group.
        spec: the spec read from its attributes (already checked on its own).
        url: store URL, for messages.
        has_digests: the store records content digests (its ``digests`` attribute is set).
    """
    names = expected_arrays(spec, has_digests=True)
    found = (array_problem(group, name, spec, url, has_digests) for name in names)
    return [problem for problem in found if problem is not None]


def _shape_problem(
    where: str, name: str, found: tuple[int, ...], shape: tuple[int, ...], spec: StoreSpec
) -> str:
    """Name the attribute that disagrees with the array, not just the two shapes."""
    if len(found) != len(shape):
        return f"{where} array {name}: expected {len(shape)} dimensions, found shape {found}; {FIX}"
    labels = ["n_rows"] if name in PER_ROW_ARRAYS else ["n_rows", "layers", "d_model"]
    if name == MARKER_ARRAY or name == DIGEST_ARRAY:
        labels = ["n_shards"]
    axis = next(i for i, (a, b) in enumerate(zip(found, shape, strict=True)) if a != b)
    label = labels[axis]
    declared = {
        "n_rows": f"n_rows {spec.n_rows}",
        "layers": f"{len(spec.layers)} layers {excerpt(list(spec.layers), 60)}",
        "d_model": f"d_model {spec.d_model}",
        "n_shards": f"{spec.n_shards} shards (n_rows {spec.n_rows} / rows_per_shard "
        f"{spec.rows_per_shard})",
    }[label]
    return (
        f"{where} attributes: expected what the arrays hold ({name} axis {axis} has "
        f"{found[axis]}), found {declared} in the attributes; {FIX}"
    )
