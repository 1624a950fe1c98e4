"""How many row partitions a statistics pass gives each layer.

Cores are used in two ways that multiply: Dask runs up to
``slots`` tasks at once (one per partition), and each task's GEMMs use the BLAS's own threads.
With one BLAS thread per worker (the benchmark's setting, and the robust one on a shared
machine, where a multithreaded OpenBLAS slows down erratically), partitions are what use the
cores, so a single-layer store needs ``slots`` partitions; with a BLAS already using every core,
more concurrent GEMMs only oversubscribe them. Locally the default is therefore
``ceil(streams / n_layers)`` partitions per layer, ``streams = slots // blas_threads``, bounded by
the number of blocks and by memory: each running partition holds 2 d^2 float64 accumulators, a
d^2 scratch and one block (:func:`partition_bytes`, about 3 GB at d = 8192), and together they
stay within a quarter of the physical memory (:func:`memory_budget`). ``distributed``/Ray use
enough to fill the cluster's slots across layers. The merge is a sum, so the result does not
depend on the partitioning beyond float64 rounding.
"""

from __future__ import annotations

import math
import os

# in the cluster extra, like the dask this module sizes partitions for
from threadpoolctl import threadpool_info

from sea_dist.fit.schedulers import Scheduler

MEMORY_FRACTION = 0.25
"""Share of physical memory the running partitions of a local pass may hold together."""


def blas_threads() -> int:
    """Threads one BLAS call uses in this process, as threadpoolctl reads it from the loaded
    BLAS (whatever set it: an environment variable, a thread-pool limit); every core when no
    BLAS is loaded yet, which is OpenBLAS's default."""
    counts = [int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]
    if counts:
        return max(1, max(counts))
    return os.cpu_count() or 1


def memory_budget() -> int:
    """Bytes the running partitions of a local pass may hold together: a quarter of RAM."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return int(MEMORY_FRACTION * total)


def partition_bytes(d: int, block_rows: int) -> int:
    """Peak bytes of one running partition: 2 d^2 float64 accumulators and a d^2 scratch, and one
    block (3 roles in float64, with the float32 reads and mixed-precision copies)."""
    return 8 * 3 * d * d + 40 * block_rows * d


def auto_partitions(
    scheduler: Scheduler,
    n_layers: int,
    n_blocks: int,
    d: int = 0,
    block_rows: int = 0,
    *,
    threads: int | None = None,
    budget: int | None = None,
) -> int:
    """Row partitions per layer (see the module docstring).

    Args:
        scheduler: the open scheduler (its ``slots`` and whether it is local).
        n_layers: layers in the pass.
        n_blocks: blocks per layer (a partition holds at least one).
        d, block_rows: the layer width and rows per block, for the memory bound (local only).
        threads: BLAS threads per call; None reads :func:`blas_threads`.
        budget: bytes the running partitions may hold; None reads :func:`memory_budget`.

    Returns:
        Local schedulers: ``ceil((slots // threads) / n_layers)``, at most ``n_blocks`` and at
        most what fits ``budget``, at least 1. Clusters: ``ceil(slots / n_layers)``, at most
        ``n_blocks``.
    """
    layers = max(1, n_layers)
    if not scheduler.local:
        return max(1, min(n_blocks, math.ceil(scheduler.slots / layers)))
    streams = max(1, scheduler.slots // max(1, blas_threads() if threads is None else threads))
    wanted = min(n_blocks, math.ceil(streams / layers))
    budget = memory_budget() if budget is None else budget
    fits = budget // max(1, partition_bytes(d, block_rows)) // layers
    return max(1, min(wanted, fits))
