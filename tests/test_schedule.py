"""Opening hours: parsing as halls publish them, and open/closed at a moment."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from edge.schedule import ScheduleError, parse

CST = ZoneInfo("Asia/Shanghai")
HALL = "mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00"


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (datetime(2026, 11, 23, 8, 29, tzinfo=CST), False),  # Monday, before opening
        (datetime(2026, 11, 23, 8, 30, tzinfo=CST), True),
        (datetime(2026, 11, 23, 11, 59, tzinfo=CST), True),
        (datetime(2026, 11, 23, 12, 0, tzinfo=CST), False),  # lunch break
        (datetime(2026, 11, 23, 14, 0, tzinfo=CST), True),
        (datetime(2026, 11, 23, 17, 30, tzinfo=CST), False),  # closed at the end minute
        (datetime(2026, 11, 28, 10, 0, tzinfo=CST), True),  # Saturday morning
        (datetime(2026, 11, 28, 14, 0, tzinfo=CST), False),
        (datetime(2026, 11, 29, 10, 0, tzinfo=CST), False),  # Sunday
    ],
)
def test_weekly_hours(moment: datetime, *, is_open: bool) -> None:
    assert parse(HALL).is_open(moment) is is_open


def test_hours_are_read_in_the_site_zone() -> None:
    # 01:00 UTC is 09:00 in Guangzhou: the hall is open.
    assert parse(HALL).is_open(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    assert not parse(HALL).is_open(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # 18:00 CST


def test_overrides_close_a_holiday_and_open_a_make_up_sunday() -> None:
    hours = parse(HALL, [(date(2026, 10, 1), "closed"), (date(2026, 9, 27), "08:30-17:30")])
    assert not hours.is_open(datetime(2026, 10, 1, 10, 0, tzinfo=CST))  # National Day, a Thursday
    assert hours.is_open(datetime(2026, 9, 27, 10, 0, tzinfo=CST))  # 调休 make-up working Sunday


def test_always_open_self_service_area() -> None:
    assert parse("24/7").is_open(datetime(2026, 11, 29, 3, 0, tzinfo=CST))
    assert parse("mon-sun 00:00-24:00").is_open(datetime(2026, 11, 29, 23, 59, tzinfo=CST))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon-fri", "has no hours"),
        ("mon-xyz 08:00-12:00", "is not a day range"),
        ("funday 08:00-12:00", "is not a day"),
        ("mon 8:00-12:00", "is not HH:MM-HH:MM"),
        ("mon 12:00-08:00", "ends before it starts"),
        ("mon 08:00-25:00", "is not a valid time span"),
    ],
)
def test_bad_hours_are_refused_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse(text)
