from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from domain.calendar import add_business_days, is_business_day, local_datetime
from tests.unit.conftest import BERLIN, berlin

XMAS = [date(2026, 12, 24), date(2026, 12, 25)]
POLICY_HOLIDAYS = [date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26),
                   date(2026, 12, 31), date(2027, 1, 1)]


@pytest.mark.parametrize(("start", "days", "holidays", "expected"), [
    pytest.param(berlin(2026, 12, 18, 10, 0), 5, XMAS, berlin(2026, 12, 29, 10, 0),
                 id="fri+5-over-weekend-and-christmas"),
    pytest.param(berlin(2026, 12, 18, 10, 0), 5, [], berlin(2026, 12, 25, 10, 0),
                 id="fri+5-no-holidays"),
    pytest.param(berlin(2026, 12, 18, 10, 0), 7, POLICY_HOLIDAYS, berlin(2027, 1, 4, 10, 0),
                 id="fri+7-over-new-year"),
    pytest.param(berlin(2026, 12, 18, 16, 45), 1, XMAS, berlin(2026, 12, 21, 16, 45),
                 id="fri+1-is-monday"),
    pytest.param(berlin(2026, 12, 19, 11, 0), 1, XMAS, berlin(2026, 12, 21, 11, 0),
                 id="sat+1-is-monday"),
    pytest.param(berlin(2026, 12, 20, 11, 0), 1, XMAS, berlin(2026, 12, 21, 11, 0),
                 id="sun+1-is-monday"),
    pytest.param(berlin(2026, 12, 23, 9, 0), 1, XMAS, berlin(2026, 12, 28, 9, 0),
                 id="wed+1-skips-holidays-and-weekend"),
    pytest.param(berlin(2026, 12, 24, 9, 0), 1, XMAS, berlin(2026, 12, 28, 9, 0),
                 id="from-a-holiday"),
    pytest.param(berlin(2026, 12, 19, 11, 0), 0, XMAS, berlin(2026, 12, 19, 11, 0),
                 id="zero-days-is-start"),
    pytest.param(berlin(2026, 3, 27, 17, 0), 1, [], berlin(2026, 3, 30, 17, 0),
                 id="over-spring-dst-keeps-local-time"),
    pytest.param(berlin(2026, 10, 23, 17, 0), 1, [], berlin(2026, 10, 26, 17, 0),
                 id="over-autumn-dst-keeps-local-time"),
    pytest.param(datetime(2026, 12, 18, 23, 30, tzinfo=UTC), 1, XMAS,
                 berlin(2026, 12, 21, 0, 30), id="utc-friday-is-berlin-saturday"),
])
def test_add_business_days(start, days, holidays, expected):
    result = add_business_days(start, days, holidays, BERLIN)
    assert result == expected
    assert result.tzinfo is UTC
    assert result.astimezone(BERLIN).time() == start.astimezone(BERLIN).time()


def test_dst_deadline_is_not_a_multiple_of_24_hours():
    start = berlin(2026, 3, 27, 17, 0)  # CET, UTC+1
    assert start.astimezone(UTC).hour == 16
    assert add_business_days(start, 1, [], BERLIN) == datetime(2026, 3, 30, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("start", "days", "message"), [
    pytest.param(datetime(2026, 12, 18, 10, 0), 1, "start must be timezone-aware", id="naive"),
    pytest.param(berlin(2026, 12, 18, 10, 0), -1, "days must be >= 0, got -1", id="negative"),
])
def test_add_business_days_refuses(start, days, message):
    with pytest.raises(ValueError, match=message):
        add_business_days(start, days, [], BERLIN)


@pytest.mark.parametrize(("day", "holidays", "expected"), [
    (date(2026, 12, 21), XMAS, True),       # Monday
    (date(2026, 12, 18), XMAS, True),       # Friday
    (date(2026, 12, 19), XMAS, False),      # Saturday
    (date(2026, 12, 20), XMAS, False),      # Sunday
    (date(2026, 12, 24), XMAS, False),      # Thursday, holiday
    (date(2026, 12, 24), [], True),
    (date(2026, 12, 25), iter(XMAS), False),  # any iterable
])
def test_is_business_day(day, holidays, expected):
    assert is_business_day(day, holidays) is expected


@pytest.mark.parametrize(("day", "fold", "expected_utc"), [
    pytest.param(date(2026, 3, 29), 0, datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
                 id="gap-fold0-after-the-jump"),
    pytest.param(date(2026, 10, 25), 0, datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
                 id="fold0-first-pass"),
    pytest.param(date(2026, 10, 25), 1, datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
                 id="fold1-second-pass"),
])
def test_local_datetime_resolves_dst(day, fold, expected_utc):
    assert local_datetime(day, time(2, 30), BERLIN, fold=fold) == expected_utc
