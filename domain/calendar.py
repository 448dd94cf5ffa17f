"""Business days and deadlines counted in them (policy section 5: review within 5 days).

Pure functions: no clock, no I/O. Datetimes must be timezone-aware; a naive datetime is
refused because its meaning depends on the machine that runs the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SATURDAY = 5
"""`date.weekday()` of Saturday; Saturday and Sunday are never business days."""


def require_aware(value: datetime, name: str) -> datetime:
    """Return `value` if it is timezone-aware, else raise `ValueError`.

    Args:
        value: the datetime to check.
        name: what it is, for the error message.

    Raises:
        ValueError: `value` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


def is_business_day(day: date, holidays: Iterable[date]) -> bool:
    """True when `day` is Monday to Friday and not one of `holidays`.

    Args:
        day: the calendar date (local to the policy's time zone).
        holidays: public holidays, as local dates.
    """
    return day.weekday() < SATURDAY and day not in set(holidays)


def local_datetime(day: date, at: time, tz: ZoneInfo, *, fold: int = 0) -> datetime:
    """The instant of wall-clock time `at` on `day` in `tz`, as an aware UTC datetime.

    A wall time repeated when clocks go back is the first pass with `fold=0` and the
    second with `fold=1`. A wall time inside a DST gap does not exist; it is resolved as
    zoneinfo does for the given `fold` (0: with the offset before the jump). The result is
    in UTC because an aware datetime with `fold=1` never compares equal to another zone's.
    """
    naive = datetime.combine(day, at).replace(fold=fold)
    return naive.replace(tzinfo=tz).astimezone(UTC)


def add_business_days(start: datetime, days: int, holidays: Iterable[date],
                      tz: ZoneInfo) -> datetime:
    """The deadline `days` business days after `start`, at the same local time of day.

    Counting happens on local dates in `tz`: each step moves to the next date that is a
    business day (`is_business_day`), so a start on a weekend or holiday counts its first
    day from the next business day. The time of day is kept in local wall-clock terms, so
    a deadline across a DST change is still "17:00 in Berlin", not 24-hour multiples.

    Args:
        start: aware start instant (e.g. when an emergency change was deployed).
        days: number of business days, >= 0; 0 returns `start` itself.
        holidays: public holidays as local dates.
        tz: the time zone whose dates and wall clock count.

    Returns:
        The deadline as an aware datetime in UTC.

    Raises:
        ValueError: `start` is naive or `days` is negative.
    """
    require_aware(start, "start")
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    if days == 0:
        return start.astimezone(UTC)
    off = set(holidays)
    local = start.astimezone(tz)
    day = local.date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_business_day(day, off):
            counted += 1
    return local_datetime(day, local.time(), tz, fold=local.fold)
