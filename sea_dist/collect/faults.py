"""Test-only fault injection for collection: kill a collector mid-shard, or the driver mid-run.

Fault tolerance cannot be tested without real faults, and the processes that must die are Ray
workers started by the cluster, so the switches are environment variables the driver forwards to
its actors (through the actor's ``runtime_env``). None is set in normal use, and every check is a
dictionary lookup.

- ``SEA_DIST_FAULT_EXIT_ON_SHARD=k``: the collector that runs shard ``k`` writes garbage into the
  first of that shard's chunks (a torn write) and calls ``os._exit(1)`` before the completion
  marker.
- ``SEA_DIST_FAULT_ONCE_FILE=PATH``: a fault fires only while ``PATH`` does not exist and creates
  it when it fires, so the retried shard succeeds. Without it the fault fires on every attempt
  (which exercises the retry limit).
- ``SEA_DIST_FAULT_DRIVER_EXIT_AFTER=n``: the driver calls ``os._exit(1)`` once ``n`` shards of
  this run are complete (a driver killed mid-run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

EXIT_ON_SHARD = "SEA_DIST_FAULT_EXIT_ON_SHARD"
ONCE_FILE = "SEA_DIST_FAULT_ONCE_FILE"
DRIVER_EXIT_AFTER = "SEA_DIST_FAULT_DRIVER_EXIT_AFTER"
_PREFIX = "SEA_DIST_FAULT_"


def fault_env() -> dict[str, str]:
    """The fault switches set in this process's environment (to forward to actors)."""
    return {k: v for k, v in os.environ.items() if k.startswith(_PREFIX)}


def _fire_once() -> bool:
    """Whether a fault should fire now; with a once-file, claim it atomically."""
    once = os.environ.get(ONCE_FILE)
    if not once:
        return True
    try:
        # O_EXCL: of two processes racing for the same fault, exactly one fires it.
        os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def maybe_exit_in_shard(shard: int, torn_write: Callable[[], None]) -> None:
    """Die mid-shard if ``SEA_DIST_FAULT_EXIT_ON_SHARD`` names ``shard`` (test only).

    Args:
        shard: the shard being written.
        torn_write: writes partial garbage into the shard's chunks before dying, so the test
            also proves a retried shard overwrites a torn write.
    """
    target = os.environ.get(EXIT_ON_SHARD)
    if target is None or target.strip() != str(shard) or not _fire_once():
        return
    log.warning("fault injection: collector exits in shard %d", shard)
    torn_write()
    os._exit(1)


def maybe_exit_driver(completed: int) -> None:
    """Kill the driver once ``completed`` shards reach ``SEA_DIST_FAULT_DRIVER_EXIT_AFTER``."""
    after = os.environ.get(DRIVER_EXIT_AFTER)
    if after is None or completed < int(after) or not _fire_once():
        return
    log.warning("fault injection: driver exits after %d shards", completed)
    os._exit(1)
