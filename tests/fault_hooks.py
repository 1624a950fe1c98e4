"""Fault injection for the collection tests, passed to ``collect(before_write=...)``.

The processes that must die are Ray workers, where this module is not importable: it is
registered with cloudpickle so that its hooks travel to the collectors by value.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ray import cloudpickle  # Ray's own copy pickles what it ships

from sea_dist.collect.actor import BeforeWrite
from sea_dist.store import ActivationStore

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def claim_once(path: str | None) -> bool:
    """Whether a fault fires now: always without ``path``; else only for the first claimant.

    O_EXCL: of two processes racing for the same fault, exactly one fires it, and the retried
    shard succeeds.
    """
    if path is None:
        return True
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def exit_in_shard(target: int, once_file: str | None = None) -> BeforeWrite:
    """A hook that, in shard ``target``, tears the shard's first chunk (a partial write, as a
    crash leaves it) and kills the collector with ``os._exit(1)`` before the shard is written.

    Args:
        target: the shard to die in.
        once_file: fire only once (see :func:`claim_once`); None fires on every attempt.
    """

    def before_write(shard: int, store: ActivationStore, start: int, stop: int) -> None:
        if shard != target or not claim_once(once_file):
            return
        neutral: Any = store.group["neutral"]
        neutral[start:stop, :1] = 7.0
        os._exit(1)

    return before_write
