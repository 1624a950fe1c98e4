"""The Dask statistics pass (sea_dist/fit/streaming.py) on synthetic stores."""

from __future__ import annotations

import pickle

import dask
import numpy as np
import pytest

from sea_dist.fit.partitions import auto_partitions, partition_bytes
from sea_dist.fit.schedulers import Scheduler, open_scheduler
from sea_dist.fit.streaming import (
    block_ranges,
    compute_moments,
    lazy_activations,
    moments_graph,
    split_ranges,
)
from sea_dist.store import ActivationStore


def test_block_ranges_cover_all_rows_in_whole_chunks() -> None:
    ranges = block_ranges(n_rows=5000, rows_per_shard=64, d=4096, chunk_rows=4096)
    assert ranges[0] == (0, 2048) and ranges[-1][1] == 5000  # d/2 rows
    assert all(a % 64 == 0 for a, _ in ranges)
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))
    # chunk_rows caps the block; a block is never smaller than one store chunk.
    assert block_ranges(1000, 64, 8192, 128)[0] == (0, 128)
    assert block_ranges(10, 64, 8, 4096) == [(0, 10)]
    # Small d: up to 32 MiB of float64 rows per block, not just d/2 rows.
    assert block_ranges(20000, 250, 576, 4096)[0] == (0, 2500)


@pytest.mark.parametrize("parts", [1, 2, 3, 50])
def test_split_ranges(parts: int) -> None:
    ranges = [(i, i + 1) for i in range(7)]
    groups = split_ranges(ranges, parts)
    assert len(groups) == min(parts, 7) and all(groups)
    assert [r for g in groups for r in g] == ranges


def test_auto_partitions() -> None:
    local = Scheduler("threads", {}, slots=2, local=True)
    cluster = Scheduler("ray", {}, slots=16, local=False)
    assert auto_partitions(cluster, n_layers=4, n_blocks=10) == 4
    assert auto_partitions(cluster, n_layers=4, n_blocks=2) == 2
    assert auto_partitions(cluster, n_layers=32, n_blocks=10) == 1
    # Locally, with one BLAS thread per call, partitions are what use the cores: one layer
    # gets every slot, several layers share them.
    plenty = 2**40
    local8 = Scheduler("threads", {}, slots=8, local=True)
    assert auto_partitions(local, 1, 10, 64, 256, threads=1, budget=plenty) == 2
    assert auto_partitions(local8, 1, 10, 64, 256, threads=1, budget=plenty) == 8
    assert auto_partitions(local8, 3, 10, 64, 256, threads=1, budget=plenty) == 3
    assert auto_partitions(local8, 32, 10, 64, 256, threads=1, budget=plenty) == 1
    assert auto_partitions(local8, 1, 5, 64, 256, threads=1, budget=plenty) == 5  # blocks
    # A BLAS that already uses every core: more concurrent GEMMs would only oversubscribe.
    assert auto_partitions(local, 1, 10, 64, 256, threads=2, budget=plenty) == 1
    assert auto_partitions(local8, 1, 10, 64, 256, threads=4, budget=plenty) == 2
    # Memory: at d=8192 a partition holds about 3 GB, so 8 GiB allows 2, and never fewer than 1.
    assert partition_bytes(8192, 4096) == 24 * 8192**2 + 40 * 4096 * 8192
    assert auto_partitions(local8, 1, 10, 8192, 4096, threads=1, budget=8 * 2**30) == 2
    assert auto_partitions(local8, 2, 10, 8192, 4096, threads=1, budget=8 * 2**30) == 1
    assert auto_partitions(local8, 1, 10, 8192, 4096, threads=1, budget=2**30) == 1


def numpy_sums(data: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    x, xp, xn = (data[r][:, index].astype(np.float64) for r in ("neutral", "positive", "negative"))
    return {"pos": x.T @ xp, "neg": x.T @ xn, "mean": x.mean(0)}


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
@pytest.mark.parametrize("partitions", [1, 3])
def test_moments_equal_numpy(make_store, scheduler: str, partitions: int) -> None:
    store = make_store(n=100, d=12, rows_per_shard=8)
    spec = ActivationStore.open(store.url).spec
    with open_scheduler(scheduler) as opened:
        moments = compute_moments(
            store.url, spec, opened, chunk_rows=16, partitions=partitions, progress=True
        )
    assert sorted(moments) == [1, 3]
    for index, layer in enumerate(store.layers):
        expected = numpy_sums(store.data, index)
        assert moments[layer].n_rows == 100
        np.testing.assert_allclose(moments[layer].cross_pos, expected["pos"], rtol=1e-12)
        np.testing.assert_allclose(moments[layer].cross_neg, expected["neg"], rtol=1e-12)
        np.testing.assert_allclose(moments[layer].means()[0], expected["mean"], rtol=1e-12)


def test_feature_map_is_applied_before_the_sums(make_store) -> None:
    store = make_store(n=40, d=8)
    spec = ActivationStore.open(store.url).spec
    with open_scheduler("synchronous") as opened:
        moments = compute_moments(store.url, spec, opened, map_name="tanh", scale=2.0)
    x = np.tanh(store.data["neutral"][:, 0].astype(np.float64) / 2.0)
    xp = np.tanh(store.data["positive"][:, 0].astype(np.float64) / 2.0)
    np.testing.assert_allclose(moments[1].cross_pos, x.T @ xp, rtol=1e-12)


def test_kept_rows_come_from_lazy_dask_arrays(make_store) -> None:
    store = make_store(n=20, d=30, rows_per_shard=4)
    spec = ActivationStore.open(store.url).spec
    lazy = lazy_activations(store.url, "negative", 1, spec, chunk_rows=8)
    assert lazy.shape == (20, 30) and lazy.chunks[0] == (8, 8, 4)
    np.testing.assert_array_equal(lazy.compute(), store.data["negative"][:, 1])
    with open_scheduler("threads") as opened:
        moments = compute_moments(store.url, spec, opened, keep_rows=True, map_name="elu")
    assert moments[3].rows is not None and moments[3].cross_pos is None
    u = store.data["negative"][:, 1].astype(np.float64)
    np.testing.assert_allclose(moments[3].rows[2], np.where(u > 0, u, np.expm1(u)), rtol=1e-12)


@pytest.mark.parametrize("keep_rows", [False, True])
def test_graph_holds_only_plain_arguments_and_pickles(make_store, keep_rows: bool) -> None:
    # Every scheduler (distributed, Ray) pickles the graph: no open zarr array may be inside.
    store = make_store(n=24, d=8, rows_per_shard=4)
    spec = ActivationStore.open(store.url).spec
    graph = moments_graph(store.url, spec, keep_rows=keep_rows, chunk_rows=8, partitions=3)
    tasks: dict[object, object] = {}
    for collection in graph.values():
        tasks.update(dict(collection.__dask_graph__()))
    payload = pickle.dumps(tasks)
    assert b"zarr.core" not in payload  # no zarr Array: tasks open the store by path
    assert len(tasks) > 0
    (computed,) = dask.compute(graph, scheduler="synchronous")
    assert computed[1].n_rows == 24
