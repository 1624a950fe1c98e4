"""The scheduler against a real local Ray head (Jobs SDK over HTTP), driven by an injected clock.

One head per module (started with ``ray start --head --block`` in its own process group and
stopped by signalling that process, so no other Ray cluster on the machine is touched). The
submitted jobs are tiny scripts that wait for a marker file, injected through the submitter's
entrypoint builder: these tests are about the scheduler, not the pipeline. The registry is the
real one; the test publishes a synthetic version where the pipeline job would.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from ray_head import local_ray_head
from synthetic_fit import write_synthetic_fit

from sea_dist.cli import main
from sea_dist.config import load_config
from sea_dist.registry.filesystem import Registry
from sea_dist.schedule.fingerprint import compute_input_fingerprint
from sea_dist.schedule.history import MISSED, SKIP_RUNNING, SKIP_UNCHANGED, SUBMIT, HistoryRow
from sea_dist.schedule.scheduler import Scheduler
from sea_dist.schedule.submitter import RayJobSubmitter

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
WAIT_SCRIPT = """\
import os, sys, time
deadline = time.monotonic() + 300  # never outlive a broken test by long
while not os.path.exists(sys.argv[1]):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.2)
print("marker seen, done")
"""


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """Dashboard URL of a fresh local Ray head (2 CPUs), stopped after the module."""
    with local_ray_head("sea-sched-") as address:
        yield address


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, hour: int, minute: int = 0, second: int = 0) -> None:
        self.now = DAY.replace(hour=hour, minute=minute, second=second)


def setup(tmp_path: Path, address: str, name: str, cron: str) -> tuple[Path, Path, Path]:
    """Write a job config and a schedule config; return (schedule config, job config, marker)."""
    job_config = tmp_path / "job.yaml"
    job_config.write_text(
        yaml.safe_dump(
            {
                "model": {"id": "smollm2-135m-instruct"},
                "data": {"source": "builtin", "limit": 8},
                "publish": {"registry": str(tmp_path / "registry"), "name": name},
            }
        )
    )
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(
        yaml.safe_dump(
            {
                "schedule": {
                    "history": str(tmp_path / "history.parquet"),
                    "schedules": [
                        {
                            "name": name,
                            "cron": cron,
                            "job": "pipeline",
                            "job_config": str(job_config),
                            "address": address,
                        }
                    ],
                }
            }
        )
    )
    (tmp_path / "wait_for.py").write_text(WAIT_SCRIPT)
    return schedule, job_config, tmp_path / "marker"


def scheduler_for(schedule: Path, clock: Clock) -> Scheduler:
    wait = schedule.parent / "wait_for.py"
    marker = schedule.parent / "marker"
    submitter = RayJobSubmitter(entrypoint=lambda entry: f"{sys.executable} {wait} {marker}")
    return Scheduler(load_config(schedule).schedule, clock, submitter)


def wait_for_status(
    scheduler: Scheduler, job_id: str, done: Callable[[HistoryRow], bool], timeout: float = 180
) -> HistoryRow:
    """Tick (at a clock instant with no due time: only statuses are polled) until ``done``."""
    deadline = time.monotonic() + timeout
    while True:
        scheduler.tick()
        row = next(r for r in scheduler.history() if r.job_id == job_id)
        if done(row) or time.monotonic() > deadline:
            return row
        time.sleep(0.5)


def wait_until_final(scheduler: Scheduler, job_id: str) -> HistoryRow:
    return wait_for_status(scheduler, job_id, lambda row: not row.running)


def test_simulated_day_run_unchanged_running(
    ray_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule, job_config, marker = setup(tmp_path, ray_address, "refit-day", "0 6,12,18 * * *")
    clock = Clock(DAY)
    scheduler = scheduler_for(schedule, clock)
    assert scheduler.tick() == []  # 00:00: the schedule is seen for the first time

    clock.at(6, 0, 5)
    [first] = scheduler.tick()
    assert first.decision == SUBMIT, first.reason
    assert first.reason == "nothing published as refit-day yet"
    assert first.job_id and first.final_status in ("PENDING", "RUNNING")
    # Hours pass on the injected clock; in real time, wait until Ray has started the job.
    running = wait_for_status(scheduler, first.job_id, lambda row: row.final_status != "PENDING")
    assert running.final_status == "RUNNING"

    # The pipeline publishes before it evaluates: a version with this input fingerprint appears
    # while the job still runs (published here by the test, the job only waits).
    fingerprint = compute_input_fingerprint(load_config(job_config))
    fit = write_synthetic_fit(tmp_path / "fit")
    Registry(str(tmp_path / "registry")).publish(fit, "refit-day", input_fingerprint=fingerprint)

    clock.at(12, 0, 5)
    [second] = scheduler.tick()
    assert second.decision == SKIP_UNCHANGED, second.reason
    assert second.reason == f"input fingerprint {fingerprint[:12]} equals refit-day@1"

    # Someone edits the job config: the inputs differ now, but the first job still runs.
    data = yaml.safe_load(job_config.read_text())
    data["fit"] = {"positive_energy": 0.95}
    job_config.write_text(yaml.safe_dump(data))
    clock.at(18, 0, 5)
    [third] = scheduler.tick()
    assert third.decision == SKIP_RUNNING, third.reason
    assert third.reason == f"previous job {first.job_id} is RUNNING"
    assert third.input_fingerprint != fingerprint

    marker.write_text("done")
    clock.at(23, 59)
    final = wait_until_final(scheduler, first.job_id)
    assert final.final_status == "SUCCEEDED"

    assert main(["schedule", "history", str(schedule)]) == 0
    table = capsys.readouterr().out
    with capsys.disabled():
        print("\n$ sea-dist schedule history schedule.yaml\n" + table)
    lines = table.splitlines()
    assert len(lines) == 4
    assert "submit" in lines[1] and "SUCCEEDED" in lines[1]
    assert "skip-unchanged" in lines[2] and "skip-running" in lines[3]


def test_missed_runs_after_downtime_run_once(ray_address: str, tmp_path: Path) -> None:
    schedule, _, marker = setup(tmp_path, ray_address, "refit-missed", "0 * * * *")
    marker.write_text("done")  # this job finishes at once
    clock = Clock(DAY)
    scheduler = scheduler_for(schedule, clock)
    scheduler.tick()
    clock.at(5, 30)  # the scheduler was down over 01:00 ... 05:00
    added = scheduler.tick()
    assert [r.decision for r in added] == [MISSED] * 4 + [SUBMIT]
    assert [r.due_time.hour for r in added] == [1, 2, 3, 4, 5]
    job_id = added[-1].job_id
    assert job_id is not None and wait_until_final(scheduler, job_id).final_status == "SUCCEEDED"

    # Restarted scheduler: nothing is due again; the deterministic id makes a repeated
    # submission (a crash between submit and save) record the existing job instead of a new one.
    restarted = scheduler_for(schedule, clock)
    assert restarted.tick() == []
    entry = restarted.entries["refit-missed"]
    assert restarted.submitter.submit(entry, job_id) == job_id
    assert restarted.submitter.status(entry, "sea-no-such-job") == "LOST"
    assert len([r for r in restarted.history() if r.decision == SUBMIT]) == 1
