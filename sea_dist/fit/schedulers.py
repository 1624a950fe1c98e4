"""Which Dask scheduler runs the statistics pass: local threads, ``distributed`` or Dask-on-Ray.

``FitConfig.scheduler`` values:

- ``threads`` (default), ``synchronous``, ``processes``: Dask's local schedulers.
- ``tcp://host:port`` (or ``tls://``, ``inproc://``): a running ``distributed`` scheduler; a
  client is opened for the pass and closed after it.
- ``ray``: Dask-on-Ray (``ray.util.dask.ray_dask_get``) on the Ray cluster this process is
  already connected to. The library never starts a cluster (DESIGN.md house rule 1): the CLI and
  ``jobs/fit.py`` call ``ray.init()`` first.

Every graph sent to these schedulers holds only plain arguments (URLs, integers, dicts): its
tasks open the Zarr arrays by path themselves, so it pickles on all of them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sea_dist.errors import FitError, expected_found

LOCAL_SCHEDULERS = ("threads", "synchronous", "processes")
ADDRESS_RE = re.compile(r"^(tcp|tls|inproc)://")


@dataclass(frozen=True)
class Scheduler:
    """An open scheduler for one pass.

    Attributes:
        name: the ``FitConfig.scheduler`` value.
        compute_kwargs: keyword arguments for ``dask.compute``.
        slots: how many tasks it runs at once (worker threads / Ray CPUs).
        local: whether tasks run in this process (threads / synchronous).
    """

    name: str
    compute_kwargs: dict[str, Any] = field(repr=False)
    slots: int
    local: bool


@contextmanager
def open_scheduler(name: str) -> Iterator[Scheduler]:
    """Open the scheduler named by ``FitConfig.scheduler`` for the duration of a pass.

    Raises:
        FitError: unknown name, no Ray connection for ``ray``, or an unreachable address.
    """
    if name in LOCAL_SCHEDULERS:
        # The get functions themselves, not their names: resolving a name makes dask import
        # distributed (about a second) just to check for a default client.
        import dask.local
        import dask.multiprocessing
        import dask.threaded

        get: Any = {
            "threads": dask.threaded.get,
            "synchronous": dask.local.get_sync,
            "processes": dask.multiprocessing.get,
        }[name]
        slots = 1 if name == "synchronous" else os.cpu_count() or 1
        yield Scheduler(name, {"scheduler": get}, slots, local=name != "processes")
    elif name == "ray":
        import ray

        if not ray.is_initialized():
            raise FitError(
                expected_found(
                    "scheduler 'ray'",
                    "a connected Ray session",
                    "none",
                    "call ray.init() first (the CLI and jobs/fit.py do)",
                )
            )
        from ray.util.dask import ray_dask_get

        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        yield Scheduler(name, {"scheduler": ray_dask_get}, slots, local=False)
    elif ADDRESS_RE.match(name):
        from distributed import Client

        try:
            client = Client(name, set_as_default=False, timeout="30s")
        except (OSError, TimeoutError) as error:
            raise FitError(
                expected_found(
                    "scheduler",
                    "a reachable distributed scheduler",
                    name,
                    f"start one or fix the address ({type(error).__name__})",
                )
            ) from None
        try:
            slots = max(1, sum(client.nthreads().values()))
            yield Scheduler(name, {"scheduler": client}, slots, local=False)
        finally:
            client.close()
    else:
        raise FitError(
            expected_found(
                "scheduler", "threads, synchronous, processes, ray or tcp://host:port", name
            )
        )
