"""Cron evaluation: fields, steps, day-of-month/day-of-week OR semantics, time zones and DST.

A brute-force reference (check every minute) written here is the oracle for zones without DST.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sea_dist.cron import CronExpression
from sea_dist.errors import ConfigError

UTC = dt.UTC


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    tz: str = "UTC",
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(tz))


def reference_fires(
    expression: str, tz: str, start: dt.datetime, minutes: int
) -> list[dt.datetime]:
    """Every minute in (start, start + minutes] whose local wall clock matches, checked naively."""
    minute, hour, dom, month, dow = expression.split()

    def values(field: str, low: int, high: int) -> set[int]:
        out: set[int] = set()
        for item in field.split(","):
            base, _, step = item.partition("/")
            if base == "*":
                lo, hi = low, high
            elif "-" in base:
                lo, hi = (int(x) for x in base.split("-"))
            else:
                lo = int(base)
                hi = high if step else lo
            out.update(range(lo, hi + 1, int(step) if step else 1))
        return out

    allowed = [
        values(minute, 0, 59),
        values(hour, 0, 23),
        values(dom, 1, 31),
        values(month, 1, 12),
        {d % 7 for d in values(dow, 0, 7)},
    ]
    both = not dom.startswith("*") and not dow.startswith("*")
    fires = []
    zone = ZoneInfo(tz)
    base = start.replace(second=0, microsecond=0)
    for i in range(1, minutes + 1):
        t = (base + dt.timedelta(minutes=i)).astimezone(zone)
        day_dom = t.day in allowed[2]
        day_dow = t.isoweekday() % 7 in allowed[4]
        day = (day_dom or day_dow) if both else (day_dom and day_dow)
        if t.minute in allowed[0] and t.hour in allowed[1] and t.month in allowed[3] and day:
            fires.append(t.astimezone(UTC))
    return fires


def test_daily_fire_is_strictly_after() -> None:
    cron = CronExpression.parse("0 3 * * *")
    assert cron.next_fire(at(2026, 5, 1, 2, 59)) == at(2026, 5, 1, 3, 0)
    assert cron.next_fire(at(2026, 5, 1, 3, 0)) == at(2026, 5, 2, 3, 0)
    assert cron.next_fire(at(2026, 5, 1, 3, 0, 30)) == at(2026, 5, 2, 3, 0)
    assert cron.next_fire(at(2026, 12, 31, 4, 0)) == at(2027, 1, 1, 3, 0)


def test_lists_ranges_and_steps() -> None:
    cron = CronExpression.parse("5/20,59 8-10/2 * * *")
    assert cron.minutes == {5, 25, 45, 59}
    assert cron.hours == {8, 10}
    times = list(cron.fire_times(at(2026, 5, 1), at(2026, 5, 1, 23)))
    assert [(t.hour, t.minute) for t in times] == [
        (8, 5),
        (8, 25),
        (8, 45),
        (8, 59),
        (10, 5),
        (10, 25),
        (10, 45),
        (10, 59),
    ]


def test_sunday_is_0_and_7() -> None:
    assert CronExpression.parse("0 0 * * 7").weekdays == CronExpression.parse("0 0 * * 0").weekdays
    fire = CronExpression.parse("0 0 * * 7").next_fire(at(2026, 5, 1))  # a Friday
    assert fire == at(2026, 5, 3) and fire.isoweekday() == 7


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    either = CronExpression.parse("0 0 13 * 5")
    days = [t.date() for t in either.fire_times(at(2026, 3, 1), at(2026, 3, 31))]
    assert [d.day for d in days] == [6, 13, 20, 27]  # Fridays, and Friday 13th once
    days = [t.date() for t in either.fire_times(at(2026, 1, 1), at(2026, 1, 31))]
    assert [d.day for d in days] == [2, 9, 13, 16, 23, 30]  # the 13th is a Tuesday
    # A '*'-led field makes it AND: odd days that are Fridays.
    both = CronExpression.parse("0 0 */2 * 5")
    days = [t.date() for t in both.fire_times(at(2026, 1, 1), at(2026, 2, 28))]
    assert all(d.day % 2 == 1 and d.isoweekday() == 5 for d in days) and len(days) == 4


@pytest.mark.parametrize(
    "expression",
    [
        "*/7 * * * *",
        "0,30 9-17 * * 1-5",
        "15 2 1,15 * *",
        "0 0 13 * 5",
        "*/20 */3 */2 * *",
        "45 23 31 * *",
        "0 12 * 2 0,6",
    ],
)
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_matches_brute_force_reference(expression: str, tz: str) -> None:
    start = at(2026, 1, 27, 22, 13)
    minutes = 9 * 24 * 60
    cron = CronExpression.parse(expression, tz)
    got = list(cron.fire_times(start, start + dt.timedelta(minutes=minutes)))
    assert got == reference_fires(expression, tz, start, minutes)


_item = st.one_of(
    st.just("*"),
    st.integers(0, 59).map(str),
    st.tuples(st.integers(0, 20), st.integers(21, 59)).map(lambda t: f"{t[0]}-{t[1]}"),
    st.tuples(st.integers(1, 25)).map(lambda t: f"*/{t[0]}"),
)


@settings(max_examples=25, deadline=None)
@given(
    minute=_item,
    hour=st.sampled_from(["*", "*/5", "3", "0-6,18", "12-23/4"]),
    dom=st.sampled_from(["*", "1-10", "*/3", "31", "15,16"]),
    dow=st.sampled_from(["*", "1-5", "0", "6,0", "*/2"]),
)
def test_random_expressions_match_reference(minute: str, hour: str, dom: str, dow: str) -> None:
    expression = f"{minute} {hour} {dom} * {dow}"
    start = at(2026, 2, 25, 7, 41)
    minutes = 4 * 24 * 60
    got = list(
        CronExpression.parse(expression).fire_times(start, start + dt.timedelta(minutes=minutes))
    )
    assert got == reference_fires(expression, "UTC", start, minutes)


def test_timezone_wall_clock() -> None:
    cron = CronExpression.parse("0 3 * * *", "America/New_York")
    assert cron.next_fire(at(2026, 7, 1)) == at(2026, 7, 1, 7, 0)  # EDT = UTC-4
    assert cron.next_fire(at(2026, 1, 1)) == at(2026, 1, 1, 8, 0)  # EST = UTC-5
    assert cron.next_fire(at(2026, 1, 1)).tzinfo == UTC


def test_spring_forward_gap_fires_one_offset_later() -> None:
    # Europe/Berlin skips 02:00-03:00 on 2026-03-29.
    cron = CronExpression.parse("30 2 * * *", "Europe/Berlin")
    fires = list(cron.fire_times(at(2026, 3, 28, 12), at(2026, 3, 30, 12)))
    local = [t.astimezone(cron.zone).strftime("%d %H:%M") for t in fires]
    assert local == ["29 03:30", "30 02:30"]
    # Every quarter hour: the gap's wall-clock times map onto 03:xx, each instant fires once.
    quarter = CronExpression.parse("*/15 1-3 * * *", "Europe/Berlin")
    fires = list(quarter.fire_times(at(2026, 3, 28, 12), at(2026, 3, 29, 12)))
    assert fires == sorted(set(fires))
    assert len(fires) == 8  # 01:00-01:45 CET, 03:00-03:45 CEST


def test_fall_back_ambiguous_time_fires_once() -> None:
    # Europe/Berlin repeats 02:00-03:00 on 2026-10-25.
    cron = CronExpression.parse("30 2 * * *", "Europe/Berlin")
    fires = list(cron.fire_times(at(2026, 10, 24, 12), at(2026, 10, 25, 12)))
    assert fires == [at(2026, 10, 25, 0, 30)]  # 02:30 CEST, the first occurrence
    # Starting inside the repeated hour does not fire the second 02:30.
    assert cron.next_fire(at(2026, 10, 25, 1, 0)) == at(2026, 10, 26, 1, 30)


@pytest.mark.parametrize(
    "expression, message",
    [
        ("0 3 * *", "5 fields"),
        ("60 * * * *", "minute: expected a value in 0-59"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day of week"),
        ("*/0 * * * *", "minute: expected a value in 0-59.*found '\\*/0'"),
        ("a * * * *", "minute: expected a value in 0-59.*found 'a'"),
        ("1,,2 * * * *", "minute: expected a value in 0-59.*found '1,,2'"),
        ("60 * 0 * *", "minute: .*; cron day of month"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CronExpression.parse(expression)


def test_reversed_range_wraps_around() -> None:
    # croniter's range semantics (a deliberate change from the hand-written parser, which
    # refused them): 22-2 in the hour field is an overnight window.
    assert CronExpression.parse("0 22-2 * * *").hours == {22, 23, 0, 1, 2}
    cron = CronExpression.parse("0 22-2 * * *")
    fires = list(cron.fire_times(at(2026, 5, 1, 12), at(2026, 5, 2, 12)))
    assert [t.hour for t in fires] == [22, 23, 0, 1, 2]


def test_unknown_timezone_and_never_firing() -> None:
    with pytest.raises(ConfigError, match="IANA zone"):
        CronExpression.parse("0 3 * * *", "Mars/Olympus")
    with pytest.raises(ConfigError, match="fires within"):
        CronExpression.parse("0 0 30 2 *").next_fire(at(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        CronExpression.parse("0 3 * * *").next_fire(dt.datetime(2026, 1, 1))


def test_leap_day() -> None:
    assert CronExpression.parse("0 0 29 2 *").next_fire(at(2026, 3, 1)) == at(2028, 2, 29)
