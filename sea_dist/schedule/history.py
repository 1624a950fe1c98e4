"""The scheduler's history table and state, persisted in one Parquet file.

One row per trigger of a schedule (a due time), whatever was decided. The scheduler's state (the
instant up to which each schedule has been evaluated) travels in the same file as Parquet
key-value metadata, so rows and state are always written together. Every save writes a temporary
sibling file and ``os.replace``-s it into place: a reader (``sea-dist schedule history``) never
sees a half-written file and a crash leaves the previous state intact. A ``flock`` on a sibling
``.lock`` file serialises read-modify-write cycles of concurrent schedulers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from sea_dist.errors import SeaDistError, expected_found

HISTORY_SCHEMA_VERSION = 1
_STATE_KEY = b"sea_dist.schedule.state"
_VERSION_KEY = b"sea_dist.schedule.schema_version"

SUBMIT = "submit"
SKIP_UNCHANGED = "skip-unchanged"
SKIP_RUNNING = "skip-running"
MISSED = "missed (coalesced)"
ERROR = "error"
DECISIONS = (SUBMIT, SKIP_UNCHANGED, SKIP_RUNNING, MISSED, ERROR)
"""Every value of :attr:`HistoryRow.decision`."""

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "STOPPED", "LOST"})
"""Ray job statuses after which a job no longer runs; ``LOST`` = the cluster forgot the job."""


class ScheduleError(SeaDistError):
    """The schedule history cannot be read or written."""


@dataclass(frozen=True)
class HistoryRow:
    """One trigger of one schedule.

    Attributes:
        schedule: the schedule's name.
        due_time: the cron fire time this row decides (UTC, aware).
        decided_at: when the scheduler decided (UTC, aware; the injected clock).
        decision: one of :data:`DECISIONS`.
        reason: one line explaining the decision.
        job_id: the Ray job submission id (``submit`` rows only).
        final_status: last known Ray job status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED,
            LOST); updated on later ticks until terminal. None for rows without a job.
        input_fingerprint: the run's input fingerprint when it was computed.
        job_config: the job config path the schedule submits.
    """

    schedule: str
    due_time: dt.datetime
    decided_at: dt.datetime
    decision: str
    reason: str
    job_id: str | None = None
    final_status: str | None = None
    input_fingerprint: str | None = None
    job_config: str | None = None

    @property
    def running(self) -> bool:
        """True while the row's job may still be running (submitted, status not terminal)."""
        return (
            self.decision == SUBMIT
            and self.job_id is not None
            and self.final_status not in TERMINAL_STATUSES
        )

    def with_status(self, status: str) -> HistoryRow:
        """A copy with ``final_status`` set."""
        return replace(self, final_status=status)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (times as ISO-8601 UTC)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("due_time", "decided_at"):
            data[key] = data[key].astimezone(dt.UTC).isoformat()
        return data


@dataclass
class ScheduleState:
    """Everything the scheduler persists: rows in decision order and per-schedule watermarks.

    Attributes:
        rows: history rows, oldest first.
        evaluated_until: per schedule, the instant up to which due times have been handled.
    """

    rows: list[HistoryRow]
    evaluated_until: dict[str, dt.datetime]


def _schema() -> Any:
    import pyarrow as pa

    timestamp = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("schedule", pa.string()),
            ("due_time", timestamp),
            ("decided_at", timestamp),
            ("decision", pa.string()),
            ("reason", pa.string()),
            ("job_id", pa.string()),
            ("final_status", pa.string()),
            ("input_fingerprint", pa.string()),
            ("job_config", pa.string()),
        ]
    )


class HistoryStore:
    """Read and atomically write a :class:`ScheduleState` at a local Parquet path.

    Args:
        path: the Parquet file (``ScheduleConfig.history``); its folder is created on save.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock for a read-modify-write cycle (blocks while another holds it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> ScheduleState:
        """The persisted state; empty when the file does not exist yet.

        Raises:
            ScheduleError: the file is not a history table of a known schema version.
        """
        if not self.path.exists():
            return ScheduleState(rows=[], evaluated_until={})
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path)
        except (OSError, pa.ArrowException) as error:
            raise ScheduleError(
                expected_found(
                    "schedule history",
                    "a Parquet file",
                    str(self.path),
                    f"move it away to start a new history ({error})",
                )
            ) from None
        metadata = table.schema.metadata or {}
        version = metadata.get(_VERSION_KEY, b"?").decode()
        if version != str(HISTORY_SCHEMA_VERSION):
            raise ScheduleError(
                expected_found(
                    f"schedule history {str(self.path)!r}: schema_version",
                    str(HISTORY_SCHEMA_VERSION),
                    version,
                    "use the sea-dist version that wrote it",
                )
            )
        state = json.loads(metadata.get(_STATE_KEY, b"{}").decode("utf-8"))
        evaluated = {
            name: dt.datetime.fromisoformat(value)
            for name, value in state.get("evaluated_until", {}).items()
        }
        names = set(table.column_names)
        rows = [
            HistoryRow(**{k: v for k, v in record.items() if k in names})
            for record in table.to_pylist()
        ]
        return ScheduleState(rows=rows, evaluated_until=evaluated)

    def save(self, state: ScheduleState) -> None:
        """Write ``state`` atomically (temporary sibling file, fsync, ``os.replace``)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema()
        columns = {name: [getattr(row, name) for row in state.rows] for name in schema.names}
        meta = {
            "evaluated_until": {
                name: when.astimezone(dt.UTC).isoformat()
                for name, when in sorted(state.evaluated_until.items())
            }
        }
        schema = schema.with_metadata(
            {
                _VERSION_KEY: str(HISTORY_SCHEMA_VERSION).encode(),
                _STATE_KEY: json.dumps(meta, sort_keys=True).encode("utf-8"),
            }
        )
        table = pa.Table.from_pydict(columns, schema=schema)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                pq.write_table(table, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def query(
    rows: list[HistoryRow], schedule: str | None = None, limit: int | None = None
) -> list[HistoryRow]:
    """Rows of one schedule (or all), ordered by due time then decision time, last ``limit``."""
    selected = [row for row in rows if schedule is None or row.schedule == schedule]
    selected.sort(key=lambda row: (row.due_time, row.decided_at))
    return selected[-limit:] if limit else selected


def _short_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_table(rows: list[HistoryRow]) -> str:
    """A fixed-width text table of ``rows`` (times in UTC)."""
    header = ("schedule", "due (UTC)", "decided (UTC)", "decision", "job id", "status", "reason")
    body = [
        (
            row.schedule,
            _short_time(row.due_time),
            _short_time(row.decided_at),
            row.decision,
            row.job_id or "-",
            row.final_status or "-",
            row.reason,
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(lines)
