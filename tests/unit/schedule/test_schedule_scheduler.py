"""Scheduler decisions that need no running cluster, with an injected clock and a real registry.

Submitting paths against a real Ray head are in tests/integration/test_schedule_ray.py; here the
submitter is a real RayJobSubmitter aimed at a closed port, so a path that must not submit would
record an ``error`` row, and the error path itself is exercised for real.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest
import yaml
from synthetic_fit import write_synthetic_fit

from sea_dist.config import ScheduleConfig, ScheduleEntry, load_config
from sea_dist.errors import ConfigError
from sea_dist.registry.filesystem import Registry
from sea_dist.schedule.fingerprint import compute_input_fingerprint
from sea_dist.schedule.history import ERROR, MISSED, SKIP_UNCHANGED, HistoryStore
from sea_dist.schedule.scheduler import (
    MAX_MISSED_ROWS,
    Published,
    RegistryLookup,
    Scheduler,
    registry_latest,
)
from sea_dist.schedule.submitter import RayJobSubmitter, submission_id

DAY = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, hour: int, minute: int = 0) -> None:
        self.now = DAY.replace(hour=hour, minute=minute)


def closed_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def job_config(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    data = {
        "model": {"id": "smollm2-135m-instruct"},
        "data": {"source": "builtin", "limit": 8},
        "publish": {"registry": str(tmp_path / "registry"), "name": "sched-unit"},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def make(
    tmp_path: Path,
    job_config: Path,
    clock: Clock,
    cron: str = "0 */4 * * *",
    lookup: RegistryLookup = registry_latest,
) -> Scheduler:
    entry = ScheduleEntry(
        name="refit", cron=cron, job_config=str(job_config), address=closed_address()
    )
    config = ScheduleConfig(schedules=(entry,), history=str(tmp_path / "history.parquet"))
    return Scheduler(config, clock, RayJobSubmitter(), lookup)


def publish(job_config: Path, fingerprint: str | None) -> None:
    config = load_config(job_config)
    fit = write_synthetic_fit(Path(config.publish.registry).parent / "fit")
    Registry(config.publish.registry).publish(
        fit, config.publish.name, input_fingerprint=fingerprint
    )


def test_first_tick_starts_now_without_backfill(tmp_path: Path, job_config: Path) -> None:
    clock = Clock(DAY.replace(hour=13))
    scheduler = make(tmp_path, job_config, clock)
    assert scheduler.tick() == []
    assert scheduler.store.load().evaluated_until == {"refit": clock.now}
    clock.at(15)
    assert scheduler.tick() == []  # no due time in (13:00, 15:00]


def test_unchanged_is_skipped_without_contacting_the_cluster(
    tmp_path: Path, job_config: Path
) -> None:
    publish(job_config, compute_input_fingerprint(load_config(job_config)))
    clock = Clock(DAY)
    scheduler = make(tmp_path, job_config, clock)
    scheduler.tick()
    clock.at(4, 1)
    [row] = scheduler.tick()
    assert row.decision == SKIP_UNCHANGED, row.reason
    assert row.reason.startswith("input fingerprint ") and "sched-unit@1" in row.reason
    assert row.due_time == DAY.replace(hour=4) and row.decided_at == clock.now
    assert row.job_id is None and row.final_status is None


def test_missed_runs_coalesce_into_one_decision(tmp_path: Path, job_config: Path) -> None:
    publish(job_config, compute_input_fingerprint(load_config(job_config)))
    clock = Clock(DAY)
    scheduler = make(tmp_path, job_config, clock)
    scheduler.tick()
    clock.at(20, 30)  # down over 04:00, 08:00, 12:00, 16:00, 20:00
    added = scheduler.tick()
    assert [r.decision for r in added] == [MISSED] * 4 + [SKIP_UNCHANGED]
    assert [r.due_time.hour for r in added] == [4, 8, 12, 16, 20]
    assert all("coalesced into the run due 2026-05-01T20:00" in r.reason for r in added[:4])
    # A restarted scheduler (new object, same file) continues where the last one stopped.
    again = make(tmp_path, job_config, clock)
    assert again.tick() == []
    assert len(again.history()) == 5


def test_long_downtime_lists_a_bounded_number_of_missed_rows(
    tmp_path: Path, job_config: Path
) -> None:
    publish(job_config, compute_input_fingerprint(load_config(job_config)))
    clock = Clock(DAY)
    scheduler = make(tmp_path, job_config, clock, cron="* * * * *")
    scheduler.tick()
    clock.at(3)  # 180 due times
    added = scheduler.tick()
    assert len(added) == MAX_MISSED_ROWS + 1 and added[-1].decision == SKIP_UNCHANGED
    assert "(79 earlier occurrences not listed)" in added[0].reason


def test_unreachable_cluster_is_an_error_row(tmp_path: Path, job_config: Path) -> None:
    clock = Clock(DAY)
    scheduler = make(tmp_path, job_config, clock)
    scheduler.tick()
    clock.at(4)
    [row] = scheduler.tick()
    assert row.decision == ERROR
    assert "nothing published as sched-unit yet" in row.reason
    assert "expected a reachable Ray dashboard" in row.reason
    assert "\n" not in row.reason
    clock.at(5)
    assert scheduler.tick() == []  # retried at the next due time, not on every tick


def test_published_without_fingerprint_and_bad_job_config(tmp_path: Path, job_config: Path) -> None:
    publish(job_config, None)
    assert registry_latest(
        str(load_config(job_config).publish.registry), "sched-unit"
    ) == Published("sched-unit@1", None)
    assert registry_latest(str(tmp_path / "empty-registry"), "sched-unit") is None
    clock = Clock(DAY)
    scheduler = make(tmp_path, job_config, clock)
    scheduler.tick()
    clock.at(4)
    [row] = scheduler.tick()
    assert row.decision == ERROR and "sched-unit@1 records no input fingerprint" in row.reason
    job_config.write_text("model: {device: gpu}\n")
    clock.at(8)
    [row] = scheduler.tick()
    assert row.decision == ERROR and row.reason.startswith("job config: model.device: expected")


def test_clock_going_back_decides_nothing(tmp_path: Path, job_config: Path) -> None:
    clock = Clock(DAY.replace(hour=9))
    scheduler = make(tmp_path, job_config, clock, lookup=lambda registry, name: None)
    scheduler.tick()
    clock.at(1)
    assert scheduler.tick() == []
    assert scheduler.store.load().evaluated_until["refit"] == DAY.replace(hour=9)


def test_construction_checks(tmp_path: Path, job_config: Path) -> None:
    entry = ScheduleEntry(name="a", cron="0 3 * * *", job_config=str(job_config))
    with pytest.raises(ConfigError, match="unique names"):
        Scheduler(ScheduleConfig(schedules=(entry, entry)), Clock(DAY), RayJobSubmitter())
    # Cron fields and time zones are checked when the entry is built (validate-config too).
    with pytest.raises(ConfigError, match=r"cron hour: expected a value in 0-23"):
        ScheduleEntry(name="b", cron="0 25 * * *", job_config=str(job_config))
    with pytest.raises(ConfigError, match="IANA"):
        ScheduleEntry(name="c", cron="0 3 * * *", job_config="x", timezone="Nowhere/City")
    naive = Scheduler(
        ScheduleConfig(schedules=(entry,), history=str(tmp_path / "h.parquet")),
        lambda: dt.datetime(2026, 1, 1),
        RayJobSubmitter(),
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        naive.tick()


def test_next_fires_and_submission_ids(tmp_path: Path, job_config: Path) -> None:
    clock = Clock(DAY.replace(hour=5))
    scheduler = make(tmp_path, job_config, clock)
    assert scheduler.next_fires(2) == {"refit": [DAY.replace(hour=8), DAY.replace(hour=12)]}
    due = DAY.replace(hour=8)
    first = submission_id("/a/history.parquet", "nightly refit", due)
    assert first.startswith("sea-nightly-refit-20260501T0800Z-")
    assert first == submission_id("/a/history.parquet", "nightly refit", due)
    assert first != submission_id("/b/history.parquet", "nightly refit", due)
    assert HistoryStore(tmp_path / "history.parquet").load().rows == []


def test_run_forever_ticks_until_stopped(tmp_path: Path, job_config: Path) -> None:
    import threading

    publish(job_config, compute_input_fingerprint(load_config(job_config)))
    stop = threading.Event()
    calls = []

    def clock() -> dt.datetime:
        # Each call moves an hour on; after a simulated day the loop is told to stop.
        calls.append(None)
        if len(calls) >= 48:
            stop.set()
        return DAY + dt.timedelta(hours=len(calls))

    scheduler = make(tmp_path, job_config, Clock(DAY))
    scheduler.clock = clock
    scheduler.run_forever(poll_seconds=0.01, stop=stop)
    decisions = [row.decision for row in scheduler.history()]
    assert decisions and set(decisions) == {SKIP_UNCHANGED}
    assert all(row.due_time.hour % 4 == 0 for row in scheduler.history())
