"""Five-field cron expressions with time zones: croniter parses and matches, this module maps
wall-clock times to instants.

Fields, in order: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week
(0-7, where 0 and 7 are Sunday), with croniter's syntax (``*``, lists, ranges, steps; a range
whose start is after its end wraps around, so ``22-2`` in the hour field is 22, 23, 0, 1, 2).
Day of month and day of week follow standard (Vixie) cron: when both are restricted (neither
starts with ``*``) a day matches if *either* matches; otherwise both must match, which makes the
``*`` field irrelevant (croniter's ``day_or`` would treat ``*/2`` as restricted, so we set it).

croniter walks the *wall clock* (naive local times); the mapping to instants is ours, because
the project promises one behaviour at daylight-saving changes that croniter does not provide:

- a wall-clock time skipped by a daylight-saving change (spring forward) fires at the instant
  PEP 495 maps it to, one offset later (``02:30`` becomes ``03:30`` local), so a daily job still
  runs on that day;
- a wall-clock time that occurs twice (fall back) fires once, at its first occurrence.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from sea_dist.errors import ConfigError, excerpt, expected_found

# (name, lowest, highest) per field; day of week accepts 7 as an alias of 0 (Sunday).
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_SEARCH_YEARS = 8
"""A satisfiable expression fires within 8 years (29 February); beyond it we give up."""
_MINUTE = dt.timedelta(minutes=1)
_DAY = dt.timedelta(days=1)


def _field_problem(fields: list[str], position: int, expression: str) -> str | None:
    """The one-line problem of field ``position`` alone (others ``*``), or None if croniter
    accepts it: croniter's own messages quote the whole expression, not the field."""
    name, low, high = _FIELDS[position]
    alone = " ".join(text if i == position else "*" for i, text in enumerate(fields))
    try:
        croniter.expand(alone)
    except (CroniterError, ValueError) as error:
        return expected_found(
            f"cron {name}",
            f"a value in {low}-{high} (a number, a range a-b, a list a,b or a step */s)",
            fields[position],
            f"in {excerpt(expression)} ({error})",
        )
    return None


@dataclass(frozen=True)
class CronExpression:
    """A parsed five-field cron expression evaluated in one time zone.

    Attributes:
        expression: the source text, e.g. ``"0 3 * * *"``.
        timezone: IANA zone name the wall-clock fields refer to, e.g. ``"Europe/Berlin"``.
        minutes, hours, days, months, weekdays: the allowed values of each field (weekdays use
            ``datetime.isoweekday() % 7``: 0 = Sunday ... 6 = Saturday).
        day_or: True when both day fields are restricted (standard OR semantics).
    """

    expression: str
    timezone: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or: bool

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronExpression:
        """Parse ``expression`` for ``timezone``.

        Raises:
            ConfigError: a field is malformed or out of range (each such field named), or the
                zone is unknown.
        """
        fields = expression.split()
        if len(fields) != 5:
            raise ConfigError(
                expected_found(
                    "cron",
                    "5 fields (minute hour day month weekday)",
                    expression,
                    "e.g. '0 3 * * *' for 03:00 every day",
                )
            )
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long
            raise ConfigError(
                expected_found(
                    "timezone", "an IANA zone name like 'UTC' or 'Europe/Berlin'", timezone
                )
            ) from None
        problems = [
            problem
            for position in range(5)
            if (problem := _field_problem(fields, position, expression)) is not None
        ]
        if problems:
            raise ConfigError(problems)
        expanded, _ = croniter.expand(expression)
        values = [
            frozenset(range(low, high + 1)) if field == ["*"] else frozenset(map(int, field))
            for field, (_, low, high) in zip(expanded, _FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in values[4])
        day_or = not fields[2].startswith("*") and not fields[4].startswith("*")
        return cls(
            expression, timezone, values[0], values[1], values[2], values[3], weekdays, day_or
        )

    @property
    def zone(self) -> ZoneInfo:
        """The :class:`zoneinfo.ZoneInfo` of :attr:`timezone`."""
        return ZoneInfo(self.timezone)

    def next_fire(self, after: dt.datetime) -> dt.datetime:
        """The first fire time strictly after ``after``.

        Args:
            after: a timezone-aware instant.

        Returns:
            A timezone-aware datetime in UTC.

        Raises:
            ValueError: ``after`` is naive.
            ConfigError: the expression never fires (e.g. ``0 0 30 2 *``).
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_fire: expected a timezone-aware datetime, found a naive one")
        # Start a day early: a wall-clock time in a DST gap maps one offset later, possibly
        # past midnight, so the previous local day can still hold the next instant.
        local_day = after.astimezone(self.zone).date() - _DAY
        give_up = local_day + dt.timedelta(days=366 * _SEARCH_YEARS)
        day = self._next_day(local_day)
        while day is not None and day <= give_up:
            instants = _day_instants(self, day)
            index = bisect.bisect_right(instants, after)
            following_day = self._next_day(day + _DAY)
            if index < len(instants):
                # A gap-shifted time late on one day can land after the next day's first time.
                candidates = list(instants[index : index + 1])
                if following_day is not None:
                    following = _day_instants(self, following_day)
                    later = bisect.bisect_right(following, after)
                    candidates += following[later : later + 1]
                return min(candidates)
            day = following_day
        raise ConfigError(
            expected_found(
                "cron",
                f"an expression that fires within {_SEARCH_YEARS} years",
                self.expression,
                "check the day-of-month and month fields",
            )
        )

    def fire_times(self, after: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
        """Fire times ``t`` with ``after < t <= until``, in order (UTC, aware)."""
        current = after
        while True:
            current = self.next_fire(current)
            if current > until:
                return
            yield current

    def _next_day(self, day: dt.date) -> dt.date | None:
        """The first local calendar day on or after ``day`` that has fire times (None: never)."""
        try:
            first = _walk(self, day)
            return first.get_next(dt.datetime).date()
        except CroniterError:  # croniter's own search gave up: the expression never fires
            return None


def _walk(cron: CronExpression, day: dt.date) -> croniter:
    """croniter over the wall clock, from the first minute of ``day`` on."""
    return croniter(
        cron.expression, dt.datetime.combine(day, dt.time()) - _MINUTE, day_or=cron.day_or
    )


@functools.lru_cache(maxsize=256)
def _day_instants(cron: CronExpression, day: dt.date) -> tuple[dt.datetime, ...]:
    """The fire instants (UTC, aware, sorted) of the local calendar day ``day``."""
    walk = _walk(cron, day)
    zone = cron.zone
    instants = set()
    while (wall := walk.get_next(dt.datetime)).date() == day:
        # fold=0: an ambiguous time resolves to its first occurrence; a nonexistent (gap) time
        # resolves one offset later (PEP 495), which is the documented behaviour.
        instants.add(wall.replace(tzinfo=zone).astimezone(dt.UTC))
    # Sorted by instant, not wall clock: gap-shifted times can overtake later wall-clock times,
    # and two wall-clock times can map to one instant (02:30 in the gap and 03:30).
    return tuple(sorted(instants))
