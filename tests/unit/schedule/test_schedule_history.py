"""History table: Parquet round trip with state, atomic writes, refusal of foreign files, output."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sea_dist.schedule.history import (
    MISSED,
    SKIP_UNCHANGED,
    SUBMIT,
    HistoryRow,
    HistoryStore,
    ScheduleError,
    ScheduleState,
    format_table,
    query,
)

T0 = dt.datetime(2026, 5, 1, 3, 0, tzinfo=dt.UTC)


def rows() -> list[HistoryRow]:
    hour = dt.timedelta(hours=1)
    return [
        HistoryRow(
            "nightly",
            T0,
            T0 + dt.timedelta(seconds=5),
            SUBMIT,
            "nothing published",
            job_id="sea-nightly-1",
            final_status="RUNNING",
            input_fingerprint="ab" * 32,
            job_config="jobs/configs/default.yaml",
        ),
        HistoryRow("nightly", T0 + hour, T0 + hour, MISSED, "coalesced"),
        HistoryRow("hourly", T0 + 2 * hour, T0 + 2 * hour, SKIP_UNCHANGED, "same as x@3"),
    ]


def test_round_trip_with_state(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "deep" / "history.parquet")
    assert store.load().rows == [] and store.load().evaluated_until == {}
    state = ScheduleState(rows(), {"nightly": T0, "hourly": T0 + dt.timedelta(minutes=7)})
    store.save(state)
    loaded = store.load()
    assert loaded.rows == state.rows
    assert loaded.evaluated_until == state.evaluated_until
    assert all(row.due_time.utcoffset() == dt.timedelta(0) for row in loaded.rows)
    # Nothing but the table (and no temporary file) is left next to it.
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["history.parquet"]


def test_file_is_plain_parquet(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.parquet")
    store.save(ScheduleState(rows(), {}))
    table = pq.read_table(store.path)
    assert table.num_rows == 3
    assert table.schema.field("due_time").type == pa.timestamp("us", tz="UTC")
    assert table.column("decision").to_pylist() == [SUBMIT, MISSED, SKIP_UNCHANGED]


def test_save_replaces_atomically(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.parquet")
    store.save(ScheduleState(rows(), {}))
    inode_before = store.path.stat().st_ino
    with store.locked():
        store.save(ScheduleState(rows()[:1], {"nightly": T0}))
    assert store.path.stat().st_ino != inode_before  # a new file renamed over the old one
    assert len(store.load().rows) == 1


def test_refuses_foreign_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    with pytest.raises(ScheduleError, match="expected a Parquet file"):
        HistoryStore(garbage).load()
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with pytest.raises(ScheduleError, match="schema_version"):
        HistoryStore(other).load()


def test_running_property() -> None:
    submitted, missed, _ = rows()
    assert submitted.running and not missed.running
    assert not submitted.with_status("SUCCEEDED").running
    assert not submitted.with_status("LOST").running
    assert submitted.with_status("PENDING").running


def test_query_and_table() -> None:
    selected = query(rows(), schedule="nightly")
    assert [r.decision for r in selected] == [SUBMIT, MISSED]
    assert query(rows(), limit=1)[0].schedule == "hourly"
    text = format_table(rows())
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["schedule", "due", "(UTC)"]
    assert "2026-05-01 03:00:00Z" in lines[1] and "sea-nightly-1" in lines[1]
    assert "RUNNING" in lines[1] and lines[1].endswith("nothing published")
    assert lines[2].split()[-1] == "coalesced" and " - " in lines[2]
    data = rows()[0].to_dict()
    assert json.loads(json.dumps(data))["due_time"] == "2026-05-01T03:00:00+00:00"
