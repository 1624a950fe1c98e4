"""A small five-field cron evaluator with time zones (no dependency beyond ``zoneinfo``).

Fields, in order: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week
(0-7, where 0 and 7 are Sunday). Each field is ``*`` or a comma-separated list of items; an item
is a number ``n``, a range ``a-b``, or either of those (or ``*``) followed by a step ``/s``
(``*/15``, ``10-50/20``, ``5/10`` = ``5-59/10``). Names (``MON``, ``JAN``) and the non-standard
``L``/``W``/``#`` are not supported.

Day of month and day of week follow standard (Vixie) cron: when both fields are restricted
(neither starts with ``*``) a day matches if *either* matches; otherwise both must match, which
makes the ``*`` field irrelevant.

Times are evaluated on the wall clock of the schedule's time zone:

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
"""A satisfiable expression fires within 8 years (29 February on a given weekday: < 28 years
in theory, but with OR semantics any restricted weekday matches weekly); beyond it we give up."""


def _parse_number(text: str, name: str, low: int, high: int, expression: str) -> int:
    # isascii: str.isdigit() also accepts '²' and other digits that int() refuses.
    if not (text.isascii() and text.isdigit()):
        raise ConfigError(
            expected_found(
                f"cron {name}", f"a number {low}-{high}", text, f"in {excerpt(expression)}"
            )
        )
    value = int(text)
    if not low <= value <= high:
        raise ConfigError(
            expected_found(
                f"cron {name}", f"a value in {low}-{high}", value, f"in {excerpt(expression)}"
            )
        )
    return value


def _parse_field(text: str, name: str, low: int, high: int, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text or item.endswith("/"):
            step = _parse_number(step_text, f"{name} step", 1, high - low + 1, expression)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _parse_number(first, name, low, high, expression)
            stop = _parse_number(last, name, low, high, expression)
            if start > stop:
                raise ConfigError(
                    expected_found(
                        f"cron {name} range",
                        "low-high with low <= high",
                        base,
                        f"in {excerpt(expression)}",
                    )
                )
        else:
            start = _parse_number(base, name, low, high, expression)
            # "5/10" means "from 5 to the end in steps of 10"; a bare "5" is just 5.
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


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
            ConfigError: a field is malformed or out of range, or the zone is unknown.
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
        parsed = [
            _parse_field(text, name, low, high, expression)
            for text, (name, low, high) in zip(fields, _FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in parsed[4])
        day_or = not fields[2].startswith("*") and not fields[4].startswith("*")
        return cls(
            expression, timezone, parsed[0], parsed[1], parsed[2], parsed[3], weekdays, day_or
        )

    @property
    def zone(self) -> ZoneInfo:
        """The :class:`zoneinfo.ZoneInfo` of :attr:`timezone`."""
        return ZoneInfo(self.timezone)

    def matches_day(self, day: dt.date) -> bool:
        """Whether the calendar day ``day`` (in the schedule's zone) has fire times."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        return (dom or dow) if self.day_or else (dom and dow)

    def day_fire_times(self, day: dt.date) -> tuple[dt.datetime, ...]:
        """The fire instants (UTC, aware, sorted) of the local calendar day ``day``."""
        return _day_instants(self, day)

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
        day = after.astimezone(self.zone).date() - dt.timedelta(days=1)
        for _ in range(366 * _SEARCH_YEARS):
            instants = _day_instants(self, day)
            index = bisect.bisect_right(instants, after)
            day += dt.timedelta(days=1)
            if index < len(instants):
                # A gap-shifted time late on one day can land after the next day's first time.
                following = _day_instants(self, day)
                later = bisect.bisect_right(following, after)
                return min(instants[index : index + 1] + following[later : later + 1])
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


@functools.lru_cache(maxsize=256)
def _day_instants(cron: CronExpression, day: dt.date) -> tuple[dt.datetime, ...]:
    if not cron.matches_day(day):
        return ()
    zone = cron.zone
    instants = {
        # fold=0: an ambiguous time resolves to its first occurrence; a nonexistent (gap) time
        # resolves one offset later (PEP 495), which is the documented behaviour.
        dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone).astimezone(dt.UTC)
        for hour in cron.hours
        for minute in cron.minutes
    }
    # Sorted by instant, not wall clock: gap-shifted times can overtake later wall-clock times,
    # and two wall-clock times can map to one instant (02:30 in the gap and 03:30).
    return tuple(sorted(instants))
