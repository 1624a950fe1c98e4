"""`sea-dist schedule run|history|next` through the real CLI entry point."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from sea_dist.cli import main
from sea_dist.schedule.history import MISSED, SUBMIT, HistoryRow, HistoryStore, ScheduleState
from sea_dist.schedule.submitter import default_entrypoint, is_local_address, local_entrypoint

REPO = Path(__file__).resolve().parents[3]
T0 = dt.datetime(2026, 5, 1, 3, tzinfo=dt.UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "schedule.yaml"
    data = {
        "schedule": {
            "history": str(tmp_path / "history.parquet"),
            "schedules": [
                {
                    "name": "nightly",
                    "cron": "0 3 * * *",
                    "timezone": "Europe/Berlin",
                    "job_config": "jobs/configs/default.yaml",
                    "address": "http://127.0.0.1:9",
                },
                {
                    "name": "weekly",
                    "cron": "30 4 * * 1",
                    "job": "fit",
                    "job_config": "jobs/configs/bbq.yaml",
                    "address": "http://127.0.0.1:9",
                },
            ],
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_next_lists_fire_times(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "next", str(config), "--count", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("nightly  ") and "03:00 CE" in lines[0]
    assert lines[2].startswith("weekly  ") and "fit jobs/configs/bbq.yaml" in lines[2]


def test_history_table_json_and_filters(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "history", str(config)]) == 0
    assert "no history yet" in capsys.readouterr().out
    rows = [
        HistoryRow(
            "nightly",
            T0,
            T0,
            SUBMIT,
            "nothing published as x yet",
            job_id="sea-1",
            final_status="SUCCEEDED",
        ),
        HistoryRow("weekly", T0, T0, MISSED, "coalesced into the run due ..."),
    ]
    HistoryStore(yaml.safe_load(config.read_text())["schedule"]["history"]).save(
        ScheduleState(rows, {"nightly": T0})
    )
    assert main(["schedule", "history", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "SUCCEEDED" in out[1] and "missed (coalesced)" in out[2]
    assert main(["schedule", "history", str(config), "--schedule", "weekly", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["decision"] == MISSED
    assert main(["schedule", "history", str(config), "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_run_once_first_tick(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "run", str(config), "--once"]) == 0
    assert capsys.readouterr().out.strip() == "nothing due"
    path = yaml.safe_load(config.read_text())["schedule"]["history"]
    assert set(HistoryStore(path).load().evaluated_until) == {"nightly", "weekly"}


def test_errors_are_one_line(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("schedule: {schedules: []}\n")
    assert main(["schedule", "history", str(empty)]) == 2
    assert "expected at least one schedule" in capsys.readouterr().err
    assert main(["schedule", "run", str(config), "--once", "--runtime-env", "absent.yaml"]) == 2
    err = capsys.readouterr().err
    assert "--runtime-env: expected a readable YAML file" in err and err.count("\n") == 1
    assert main(["schedule"]) == 2


def test_entrypoints() -> None:
    from sea_dist.config import ScheduleEntry

    entry = ScheduleEntry(name="n", cron="0 3 * * *", job="fit", job_config="my config.yaml")
    assert default_entrypoint(entry) == "python jobs/fit.py --config 'my config.yaml'"
    assert is_local_address("http://127.0.0.1:8265") and is_local_address("localhost:8265")
    assert not is_local_address("http://sea-dist-head-svc:8265")
    import sys

    local = local_entrypoint(str(REPO))(entry)
    assert local.startswith(f"cd {REPO} && {sys.executable} jobs/fit.py")
    remote = ScheduleEntry(
        name="n", cron="0 3 * * *", job_config="c.yaml", address="http://ray-head:8265"
    )
    assert local_entrypoint(str(REPO))(remote) == "python jobs/pipeline.py --config c.yaml"
