"""Scheduler selection (sea_dist/fit/schedulers.py) without starting any cluster."""

from __future__ import annotations

import pytest

from sea_dist.errors import FitError
from sea_dist.fit.schedulers import open_scheduler


@pytest.mark.parametrize("name", ["threads", "synchronous", "processes"])
def test_local_schedulers(name: str) -> None:
    with open_scheduler(name) as scheduler:
        assert callable(scheduler.compute_kwargs["scheduler"])
        assert scheduler.slots >= 1
        assert scheduler.local is (name != "processes")


def test_ray_needs_a_connection_made_by_the_caller() -> None:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray session is open in this process")
    with pytest.raises(FitError, match=r"ray\.init"), open_scheduler("ray"):
        pass


def test_unknown_scheduler() -> None:
    with pytest.raises(FitError, match="scheduler"), open_scheduler("mpi"):
        pass
