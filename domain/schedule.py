"""When a change may deploy (policy section 2, step 4).

"The change is scheduled in a maintenance window (avoid peak hours); stakeholders are
notified at least 24 hours in advance." Windows and peak hours are local wall-clock
times in the policy's time zone, so they follow DST; all arithmetic is done on UTC
instants, and results are aware datetimes in UTC.

Semantics: windows and peak hours are half-open (`[start, end)`); a change occupies
`[slot, slot + duration)`, which must lie inside one maintenance window (adjacent or
overlapping windows merge), outside peak hours, on a date outside every freeze. Notice
is elapsed time since `notified_at`. Public holidays do not block a slot by themselves
(the policy does not say so); they count in business-day deadlines (`domain.calendar`).
A window bound that falls in a DST gap or fold resolves like zoneinfo does: fold 0 for
starts and fold 1 for ends, i.e. the widest real interval the wall-clock times describe.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.calendar import local_datetime, require_aware
from domain.policy import WEEKDAYS, Freeze, SchedulePolicy, Window

HORIZON_DAYS = 366
"""How far ahead `next_slot` looks before giving up."""

Interval = tuple[datetime, datetime]
"""A half-open interval of UTC instants."""


class NoSlotError(ValueError):
    """No instant within the horizon satisfies the schedule."""


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _on_day(day: date, windows: list[Window], tz: ZoneInfo) -> list[Interval]:
    """The windows that apply on local `day`, as merged UTC intervals."""
    weekday = WEEKDAYS[day.weekday()]
    out: list[Interval] = []
    for w in windows:
        if weekday in w.days:
            start = local_datetime(day, w.start, tz, fold=0)
            end = local_datetime(day, w.end, tz, fold=1)
            if start < end:
                out.append((start, end))
    return _merge(out)


def _subtract(base: list[Interval], cuts: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in base:
        for cut_start, cut_end in cuts:
            if cut_end <= start or cut_start >= end:
                continue
            if cut_start > start:
                out.append((start, cut_start))
            start = max(start, cut_end)
            if start >= end:
                break
        if start < end:
            out.append((start, end))
    return out


def _freeze_on(day: date, schedule: SchedulePolicy) -> Freeze | None:
    return next((f for f in schedule.freezes if f.start <= day <= f.end), None)


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def _describe(windows: list[Window]) -> str:
    return ", ".join(f"{'/'.join(d.capitalize() for d in w.days)} "
                     f"{w.start:%H:%M}-{w.end:%H:%M}" for w in windows) or "none"


def _overlaps(start: datetime, duration: timedelta, interval: Interval) -> bool:
    end = start + duration
    return start < interval[1] and (end > interval[0] or start >= interval[0])


def earliest_start(now: datetime, schedule: SchedulePolicy,
                   notified_at: datetime | None = None) -> datetime:
    """The first instant notice allows: `max(now, notified_at + notice)`, in UTC.

    Without `notified_at`, stakeholders are taken to be notified at `now`, so notice
    can never be skipped by not saying when it was given.
    """
    now = require_aware(now, "now").astimezone(UTC)
    sent = (require_aware(notified_at, "notified_at").astimezone(UTC)
            if notified_at is not None else now)
    # In UTC, `+ timedelta` is elapsed time; on a local datetime it would be wall-clock.
    return max(now, sent + timedelta(hours=schedule.notice_hours))


def next_slot(now: datetime, schedule: SchedulePolicy, notified_at: datetime | None = None,
              duration: timedelta = timedelta(0)) -> datetime:
    """The earliest instant a change of `duration` may start deploying.

    Args:
        now: the current instant (aware).
        schedule: the policy's schedule section.
        notified_at: when stakeholders were notified; None means "notify now".
        duration: how long the deployment takes; it must fit in one window.

    Returns:
        An aware UTC datetime >= `earliest_start(...)` for which `slot_allowed` is empty.

    Raises:
        ValueError: a naive datetime or a negative duration.
        NoSlotError: nothing within `HORIZON_DAYS` days fits.
    """
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    earliest = earliest_start(now, schedule, notified_at)
    tz = schedule.zone
    first = earliest.astimezone(tz).date()
    for offset in range(HORIZON_DAYS + 1):
        day = first + timedelta(days=offset)
        if _freeze_on(day, schedule) is not None:
            continue
        free = _subtract(_on_day(day, schedule.maintenance_windows, tz),
                         _on_day(day, schedule.peak_hours, tz))
        for start, end in free:
            slot = max(start, earliest)
            if (slot + duration <= end) if duration else (slot < end):
                return slot
    raise NoSlotError(
        f"no deployment slot of {duration} within {HORIZON_DAYS} days after "
        f"{_local(earliest, tz)} (maintenance windows: "
        f"{_describe(schedule.maintenance_windows)}; peak hours: "
        f"{_describe(schedule.peak_hours)}; {len(schedule.freezes)} freeze(s))")


def slot_allowed(at: datetime, schedule: SchedulePolicy, notified_at: datetime | None,
                 duration: timedelta = timedelta(0)) -> list[str]:
    """Why a deployment starting at `at` is NOT allowed; empty means it is allowed.

    Args:
        at: the proposed start (aware).
        schedule: the policy's schedule section.
        notified_at: when stakeholders were notified; None means they were not.
        duration: how long the deployment takes.

    Returns:
        Human-readable reasons (notice, freeze, window, peak hours), each naming times in
        the policy's time zone.
    """
    require_aware(at, "at")
    tz, at = schedule.zone, at.astimezone(UTC)
    end = at + duration
    reasons: list[str] = []
    notice = timedelta(hours=schedule.notice_hours)
    if notice and notified_at is None:
        reasons.append(f"stakeholders have not been notified "
                       f"({schedule.notice_hours}h notice required)")
    elif (notified_at is not None
          and at < require_aware(notified_at, "notified_at").astimezone(UTC) + notice):
        reasons.append(f"stakeholders were notified at {_local(notified_at, tz)}, less than "
                       f"{schedule.notice_hours}h before {_local(at, tz)}")
    days = sorted({at.astimezone(tz).date(), end.astimezone(tz).date()})
    for day in days:
        freeze = _freeze_on(day, schedule)
        if freeze is not None:
            reasons.append(f"{day:%a %Y-%m-%d} is in the freeze {freeze.reason!r} "
                           f"({freeze.start} to {freeze.end})")
    windows = _on_day(at.astimezone(tz).date(), schedule.maintenance_windows, tz)
    window = next((w for w in windows if w[0] <= at < w[1]), None)
    if window is None:
        reasons.append(f"{_local(at, tz)} is outside the maintenance windows "
                       f"({_describe(schedule.maintenance_windows)})")
    elif end > window[1]:
        reasons.append(f"the change would end at {_local(end, tz)}, after the maintenance "
                       f"window closes at {_local(window[1], tz)}")
    span = f"{_local(at, tz)} to {_local(end, tz)}" if duration else _local(at, tz)
    for day in days:
        for start, stop in _on_day(day, schedule.peak_hours, tz):
            if _overlaps(at, duration, (start, stop)):
                reasons.append(f"{span} is in peak hours ({start.astimezone(tz):%H:%M}-"
                               f"{stop.astimezone(tz):%H:%M} on {day:%a %Y-%m-%d})")
    return reasons
