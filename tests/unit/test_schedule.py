from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.policy import SchedulePolicy, Window
from domain.schedule import NoSlotError, earliest_start, next_slot, slot_allowed
from tests.unit.conftest import berlin, utc

H, M = timedelta(hours=1), timedelta(minutes=1)


def sundays(start: str, end: str, notice_hours: int = 0) -> SchedulePolicy:
    """A schedule with one window on Sundays, to put windows on DST-change nights."""
    return SchedulePolicy(timezone="Europe/Berlin", notice_hours=notice_hours,
                          maintenance_windows=[Window(days=["sun"], start=time.fromisoformat(
                              start), end=time.fromisoformat(end))])


EVERY_EVENING = SchedulePolicy(timezone="Europe/Berlin", notice_hours=24,
                               maintenance_windows=[Window(
                                   days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                   start=time(19), end=time(23))])

# The real policy: Tue/Wed/Thu 06-10 and 19-23, peak Mon-Fri 09-18, 24h notice,
# year-end freeze 2026-12-21..2027-01-04. So: Tue-Thu 06:00-09:00 and 19:00-23:00.
# (id, schedule or None for the policy's, now, notified_at, duration, expected slot)
CASES = [
    ("notice-pushes-to-next-evening", None, berlin(2026, 3, 9, 12), berlin(2026, 3, 9, 12),
     0 * H, berlin(2026, 3, 10, 19)),
    ("not-notified-means-notify-now", None, berlin(2026, 3, 9, 12), None, 0 * H,
     berlin(2026, 3, 10, 19)),
    ("24h-notice-ends-inside-a-window", None, berlin(2026, 3, 9, 19, 30),
     berlin(2026, 3, 9, 19, 30), 0 * H, berlin(2026, 3, 10, 19, 30)),
    ("24h-notice-ends-after-morning-window", None, berlin(2026, 3, 9, 7),
     berlin(2026, 3, 9, 7), 0 * H, berlin(2026, 3, 10, 7)),
    ("now-inside-window", None, berlin(2026, 3, 10, 7, 30), berlin(2026, 3, 1), 0 * H,
     berlin(2026, 3, 10, 7, 30)),
    ("fits-before-peak", None, berlin(2026, 3, 10, 7, 30), berlin(2026, 3, 1), 1 * H,
     berlin(2026, 3, 10, 7, 30)),
    ("ends-exactly-when-peak-starts", None, berlin(2026, 3, 11, 8, 30), berlin(2026, 3, 1),
     30 * M, berlin(2026, 3, 11, 8, 30)),
    ("would-overlap-peak", None, berlin(2026, 3, 11, 8, 30), berlin(2026, 3, 1), 45 * M,
     berlin(2026, 3, 11, 19)),
    ("now-in-peak", None, berlin(2026, 3, 11, 9, 30), berlin(2026, 3, 1), 0 * H,
     berlin(2026, 3, 11, 19)),
    ("morning-window-too-short", None, berlin(2026, 3, 10, 5), berlin(2026, 3, 1), 3 * H + M,
     berlin(2026, 3, 10, 19)),
    ("evening-window-exactly-full", None, berlin(2026, 3, 10, 5), berlin(2026, 3, 1), 4 * H,
     berlin(2026, 3, 10, 19)),
    ("would-overrun-window", None, berlin(2026, 3, 12, 22, 30), berlin(2026, 3, 1), 1 * H,
     berlin(2026, 3, 17, 6)),
    ("at-window-end-is-outside", None, berlin(2026, 3, 12, 23), berlin(2026, 3, 1), 0 * H,
     berlin(2026, 3, 17, 6)),
    ("spring-dst-window-moves-in-utc", None, berlin(2026, 3, 27, 12),
     berlin(2026, 3, 27, 12), 0 * H, utc(2026, 3, 31, 4)),
    ("winter-week-before", None, berlin(2026, 3, 20, 12), berlin(2026, 3, 20, 12), 0 * H,
     utc(2026, 3, 24, 5)),
    ("autumn-dst-window-moves-in-utc", None, berlin(2026, 10, 23, 12),
     berlin(2026, 10, 23, 12), 0 * H, utc(2026, 10, 27, 5)),
    ("freeze-skipped", None, berlin(2026, 12, 18, 12), berlin(2026, 12, 18, 12), 0 * H,
     berlin(2027, 1, 5, 6)),
    ("last-slot-before-freeze", None, berlin(2026, 12, 17, 8), berlin(2026, 12, 16, 7), 0 * H,
     berlin(2026, 12, 17, 8)),
    ("now-in-another-zone", None, datetime(2026, 3, 9, 13, tzinfo=ZoneInfo("America/New_York")),
     berlin(2026, 3, 1), 0 * H, berlin(2026, 3, 10, 6)),
    ("notice-is-elapsed-time-across-dst", EVERY_EVENING, berlin(2026, 3, 28, 20),
     berlin(2026, 3, 28, 20), 0 * H, berlin(2026, 3, 29, 21)),
    ("window-starting-in-spring-gap", sundays("02:00", "04:00"), utc(2026, 3, 29),
     None, 1 * H, utc(2026, 3, 29, 1)),
    ("spring-gap-window-is-one-hour", sundays("02:00", "04:00"), utc(2026, 3, 29),
     None, 61 * M, berlin(2026, 4, 5, 2)),
    ("autumn-fold-window-is-four-hours", sundays("01:00", "04:00"), utc(2026, 10, 24, 12),
     None, 4 * H, utc(2026, 10, 24, 23)),
    ("four-hours-fit-only-on-autumn-dst-sundays", sundays("01:00", "04:00"),
     utc(2026, 10, 31, 12), None, 4 * H, utc(2027, 10, 30, 23)),
    ("longer-than-any-window", None, berlin(2026, 3, 9, 12), None, 4 * H + M, None),
]


@pytest.mark.parametrize(("schedule_", "now", "notified_at", "duration", "expected"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_next_slot(schedule, schedule_, now, notified_at, duration, expected):
    rules = schedule_ or schedule
    if expected is None:
        with pytest.raises(NoSlotError, match="no deployment slot of 4:01:00 within 366 days"):
            next_slot(now, rules, notified_at, duration)
        return
    slot = next_slot(now, rules, notified_at, duration)
    assert slot == expected
    assert slot.tzinfo is UTC
    notified = notified_at or now
    assert slot_allowed(slot, rules, notified, duration) == []
    if slot > earliest_start(now, rules, notified_at):  # earliest: a minute before fails
        assert slot_allowed(slot - M, rules, notified, duration) != []


# Tue 2026-03-10 is a plain Tuesday (CET); notified a day before unless stated.
DAY_BEFORE = berlin(2026, 3, 9, 6)
WINDOWS = "Tue/Wed/Thu 06:00-10:00, Tue/Wed/Thu 19:00-23:00"


@pytest.mark.parametrize(("at", "notified_at", "duration", "reasons"), [
    pytest.param(berlin(2026, 3, 10, 7), DAY_BEFORE, 0 * H, [], id="allowed"),
    pytest.param(berlin(2026, 3, 10, 7), None, 0 * H,
                 ["stakeholders have not been notified (24h notice required)"],
                 id="not-notified"),
    pytest.param(berlin(2026, 3, 10, 7), berlin(2026, 3, 9, 7, 1), 0 * H,
                 ["stakeholders were notified at Mon 2026-03-09 07:01 CET, less than 24h "
                  "before Tue 2026-03-10 07:00 CET"], id="notice-short-by-a-minute"),
    pytest.param(berlin(2026, 3, 10, 7), berlin(2026, 3, 9, 7), 0 * H, [],
                 id="notice-exactly-24h"),
    pytest.param(berlin(2026, 3, 9, 7), berlin(2026, 3, 8, 6), 0 * H,
                 [f"Mon 2026-03-09 07:00 CET is outside the maintenance windows ({WINDOWS})"],
                 id="monday"),
    pytest.param(berlin(2026, 3, 10, 9, 30), DAY_BEFORE, 0 * H,
                 ["Tue 2026-03-10 09:30 CET is in peak hours (09:00-18:00 on "
                  "Tue 2026-03-10)"], id="peak"),
    pytest.param(berlin(2026, 3, 10, 8, 30), DAY_BEFORE, 1 * H,
                 ["Tue 2026-03-10 08:30 CET to Tue 2026-03-10 09:30 CET is in peak hours "
                  "(09:00-18:00 on Tue 2026-03-10)"], id="runs-into-peak"),
    pytest.param(berlin(2026, 3, 10, 22, 30), DAY_BEFORE, 1 * H,
                 ["the change would end at Tue 2026-03-10 23:30 CET, after the maintenance "
                  "window closes at Tue 2026-03-10 23:00 CET"], id="overruns-window"),
    pytest.param(berlin(2026, 3, 10, 12), DAY_BEFORE, 0 * H,
                 [f"Tue 2026-03-10 12:00 CET is outside the maintenance windows ({WINDOWS})",
                  "Tue 2026-03-10 12:00 CET is in peak hours (09:00-18:00 on "
                  "Tue 2026-03-10)"], id="outside-and-peak"),
    pytest.param(berlin(2026, 12, 22, 7), berlin(2026, 12, 20), 0 * H,
                 ["Tue 2026-12-22 is in the freeze 'Year-end freeze' (2026-12-21 to "
                  "2027-01-04)"], id="freeze"),
    pytest.param(berlin(2026, 3, 31, 7), berlin(2026, 3, 30, 7), 0 * H, [],
                 id="summer-time-local-window"),
    pytest.param(utc(2026, 3, 31, 7), berlin(2026, 3, 30, 7), 0 * H,
                 ["Tue 2026-03-31 09:00 CEST is in peak hours (09:00-18:00 on "
                  "Tue 2026-03-31)"],
                 id="utc-7-is-berlin-9-in-summer"),
])
def test_slot_allowed(schedule, at, notified_at, duration, reasons):
    assert slot_allowed(at, schedule, notified_at, duration) == reasons


@pytest.mark.parametrize(("now", "notified_at", "duration", "message"), [
    pytest.param(datetime(2026, 3, 9, 12), None, 0 * H, "now must be timezone-aware",
                 id="naive-now"),
    pytest.param(berlin(2026, 3, 9, 12), datetime(2026, 3, 9, 12), 0 * H,
                 "notified_at must be timezone-aware", id="naive-notified"),
    pytest.param(berlin(2026, 3, 9, 12), None, -M, "duration must not be negative",
                 id="negative-duration"),
])
def test_next_slot_refuses(schedule, now, notified_at, duration, message):
    with pytest.raises(ValueError, match=message):
        next_slot(now, schedule, notified_at, duration)
