"""Cron triggers that submit Ray jobs, skipped when nothing changed or the last run still runs.

At each due time of a schedule the scheduler decides, in this order:

1. ``skip-unchanged``: the run's input fingerprint (:mod:`sea_dist.schedule.fingerprint`) equals
   the ``input_fingerprint`` recorded in the manifest of ``<publish.name>@latest`` in the job
   config's registry: refitting would publish the same projections again;
2. ``skip-running``: the job submitted at this schedule's previous ``submit`` is still PENDING or
   RUNNING: two refits of one name would race to publish;
3. ``submit``: otherwise, through the :class:`~sea_dist.schedule.submitter.JobSubmitter`;
4. ``error``: the job config, the fingerprint, the registry or the submission failed; the reason
   says what, and the schedule tries again at its next due time.

Missed runs (policy): the scheduler remembers per schedule the instant up to which it has
evaluated due times. When a tick finds several due times since then (the scheduler was down, or
polls slower than the cron fires), only the most recent is decided as above (run once, never N
times) and each earlier one is recorded as ``missed (coalesced)``. A schedule seen for the first
time starts from the current instant (no backfill).

Every decision is a row of the history table (:mod:`sea_dist.schedule.history`); the
``final_status`` of submitted jobs is polled on later ticks until it is terminal.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sea_dist.config import ScheduleConfig, ScheduleEntry, SeaConfig, load_config
from sea_dist.cron import CronExpression
from sea_dist.errors import ConfigError, SeaDistError, expected_found
from sea_dist.registry import open_registry
from sea_dist.registry.refs import NotFoundError
from sea_dist.schedule.fingerprint import compute_input_fingerprint
from sea_dist.schedule.history import (
    ERROR,
    MISSED,
    SKIP_RUNNING,
    SKIP_UNCHANGED,
    SUBMIT,
    HistoryRow,
    HistoryStore,
    ScheduleState,
)
from sea_dist.schedule.submitter import JobSubmitter, submission_id

logger = logging.getLogger(__name__)

MAX_MISSED_ROWS = 100
"""Missed occurrences recorded one row each per tick; older ones are counted in a reason."""


@dataclass(frozen=True)
class Published:
    """What the registry says about the latest published version of a name.

    Attributes:
        ref: ``name@version``.
        input_fingerprint: the manifest's ``input_fingerprint``; None for versions published
            without one (they never match, so the next trigger refits).
    """

    ref: str
    input_fingerprint: str | None


RegistryLookup = Callable[[str, str], Published | None]
"""``(registry url, name) -> Published`` for ``name@latest``, or None when nothing is published."""


def registry_latest(registry: str, name: str) -> Published | None:
    """:data:`RegistryLookup` over :func:`sea_dist.registry.open_registry` (folder, fsspec, HTTP).

    Reads the manifest key ``input_fingerprint`` of ``name@latest``.
    """
    reader = open_registry(registry)
    try:
        manifest = reader.manifest(f"{name}@latest")
    except NotFoundError:
        return None
    return Published(ref=manifest.ref, input_fingerprint=manifest.input_fingerprint)


def _aware(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("clock: expected timezone-aware datetimes, found a naive one")
    return when.astimezone(dt.UTC)


class Scheduler:
    """Evaluate cron schedules and submit their jobs, idempotent by input fingerprint.

    Args:
        config: the schedules and the history path.
        clock: returns the current instant (timezone-aware); tests inject a fake one.
        submitter: submits jobs and reports their status (Ray Jobs SDK in production).
        registry_lookup: the latest published version of a name (default: the real registry).
        fingerprinter: input fingerprint of a job config (default: computed from its inputs).
        history: where rows and state are persisted (default: ``config.history``).

    Raises:
        ConfigError: duplicate schedule names, a bad cron expression or an unknown time zone.
    """

    def __init__(
        self,
        config: ScheduleConfig,
        clock: Callable[[], dt.datetime],
        submitter: JobSubmitter,
        registry_lookup: RegistryLookup = registry_latest,
        *,
        fingerprinter: Callable[[SeaConfig], str] = compute_input_fingerprint,
        history: HistoryStore | None = None,
    ) -> None:
        names = [entry.name for entry in config.schedules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(
                expected_found(
                    "schedule.schedules", "unique names", duplicates, "rename the duplicates"
                )
            )
        self.config = config
        self.clock = clock
        self.submitter = submitter
        self.registry_lookup = registry_lookup
        self.fingerprinter = fingerprinter
        self.store = history or HistoryStore(config.history)
        self.entries = {entry.name: entry for entry in config.schedules}
        self.crons: dict[str, CronExpression] = {}
        for index, entry in enumerate(config.schedules):
            try:
                self.crons[entry.name] = CronExpression.parse(entry.cron, entry.timezone)
            except ConfigError as error:
                problems = [f"schedule.schedules[{index}].{p}" for p in error.problems]
                raise ConfigError(problems) from None
        self._history_key = str(Path(self.store.path).resolve())

    def now(self) -> dt.datetime:
        """The injected clock, as an aware UTC datetime."""
        return _aware(self.clock())

    def next_fires(self, count: int = 1) -> dict[str, list[dt.datetime]]:
        """The next ``count`` fire times (UTC) of every schedule after the clock's now."""
        now = self.now()
        result: dict[str, list[dt.datetime]] = {}
        for name, cron in self.crons.items():
            times: list[dt.datetime] = []
            current = now
            for _ in range(count):
                current = cron.next_fire(current)
                times.append(current)
            result[name] = times
        return result

    def history(self) -> list[HistoryRow]:
        """All persisted history rows, oldest decision first."""
        return self.store.load().rows

    def tick(self) -> list[HistoryRow]:
        """Refresh running jobs' statuses, then decide every due time since the last tick.

        Returns:
            The rows added by this tick (statuses of older rows may also have changed).
        """
        now = self.now()
        with self.store.locked():
            state = self.store.load()
            self._refresh_statuses(state)
            added: list[HistoryRow] = []
            for name in self.entries:
                added += self._evaluate(name, now, state)
            self.store.save(state)
        for row in added:
            logger.info(
                "%s due %s: %s (%s)",
                row.schedule,
                row.due_time.isoformat(),
                row.decision,
                row.reason,
            )
        return added

    def run_forever(self, poll_seconds: float = 30.0, stop: threading.Event | None = None) -> None:
        """Tick, then sleep until the next due time or ``poll_seconds``, until ``stop`` is set.

        Polling between due times keeps ``final_status`` of submitted jobs current.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            # Failures of one decision become history rows inside tick(); what escapes it (an
            # unreadable history file) would fail the same way on every tick, so it ends the loop.
            self.tick()
            now = self.now()
            upcoming = [cron.next_fire(now) for cron in self.crons.values()]
            wait = poll_seconds
            if upcoming:
                # Wake just after the next due time so it is decided on time, not up to a
                # poll interval late (and not coalesced with the following one).
                wait = min(wait, (min(upcoming) - now).total_seconds() + 0.05)
            stop.wait(max(wait, 0.05))

    def _refresh_statuses(self, state: ScheduleState) -> None:
        for index, row in enumerate(state.rows):
            entry = self.entries.get(row.schedule)
            if not row.running or entry is None or row.job_id is None:
                continue
            try:
                status = self.submitter.status(entry, row.job_id)
            except SeaDistError as error:
                logger.warning("cannot poll %s: %s", row.job_id, error)
                continue
            if status != row.final_status:
                state.rows[index] = row.with_status(status)

    def _evaluate(self, name: str, now: dt.datetime, state: ScheduleState) -> list[HistoryRow]:
        last = state.evaluated_until.get(name)
        if last is None or now <= last:
            # First sight starts now (no backfill); a clock that went back waits to catch up.
            state.evaluated_until.setdefault(name, now)
            return []
        recent: collections.deque[dt.datetime] = collections.deque(maxlen=MAX_MISSED_ROWS + 1)
        total = 0
        for due in self.crons[name].fire_times(last, now):
            recent.append(due)
            total += 1
        state.evaluated_until[name] = now
        if not recent:
            return []
        latest = recent.pop()
        rows = []
        for index, due in enumerate(recent):
            reason = f"coalesced into the run due {latest.isoformat()}"
            if index == 0 and total - 1 > len(recent):
                reason += f" ({total - 1 - len(recent)} earlier occurrences not listed)"
            rows.append(
                HistoryRow(name, due, now, MISSED, reason, job_config=self.entries[name].job_config)
            )
        rows.append(self._decide(self.entries[name], latest, now, state))
        state.rows.extend(rows)
        return rows

    def _decide(
        self, entry: ScheduleEntry, due: dt.datetime, now: dt.datetime, state: ScheduleState
    ) -> HistoryRow:
        def row(decision: str, reason: str, **extra: str | None) -> HistoryRow:
            return HistoryRow(
                entry.name, due, now, decision, reason, job_config=entry.job_config, **extra
            )

        try:
            job_config = load_config(entry.job_config)
        except SeaDistError as error:
            return row(ERROR, f"job config: {error}")
        try:
            fingerprint = self.fingerprinter(job_config)
        except SeaDistError as error:
            return row(ERROR, f"input fingerprint: {error}")
        name = job_config.publish.name
        try:
            published = self.registry_lookup(job_config.publish.registry, name)
        except SeaDistError as error:
            return row(ERROR, f"registry: {error}", input_fingerprint=fingerprint)
        short = fingerprint[:12]
        if published is not None and published.input_fingerprint == fingerprint:
            return row(
                SKIP_UNCHANGED,
                f"input fingerprint {short} equals {published.ref}",
                input_fingerprint=fingerprint,
            )
        previous = next(
            (r for r in reversed(state.rows) if r.schedule == entry.name and r.decision == SUBMIT),
            None,
        )
        if previous is not None and previous.running:
            return row(
                SKIP_RUNNING,
                f"previous job {previous.job_id} is {previous.final_status or 'PENDING'}",
                input_fingerprint=fingerprint,
            )
        if published is None:
            why = f"nothing published as {name} yet"
        elif published.input_fingerprint is None:
            why = f"{published.ref} records no input fingerprint"
        else:
            why = (
                f"input fingerprint {short} differs from {published.ref} "
                f"({published.input_fingerprint[:12]})"
            )
        job_id = submission_id(self._history_key, entry.name, due)
        try:
            job_id = self.submitter.submit(entry, job_id)
        except SeaDistError as error:
            return row(ERROR, f"{why}; {error}", input_fingerprint=fingerprint)
        try:
            status: str | None = self.submitter.status(entry, job_id)
        except SeaDistError:
            status = "PENDING"
        return row(SUBMIT, why, job_id=job_id, final_status=status, input_fingerprint=fingerprint)
