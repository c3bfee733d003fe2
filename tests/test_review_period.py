"""The periods of 好差评 listings and league tables: local months and instants, as UTC. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from control_plane.review_period import (
    PeriodError,
    between,
    current_month,
    instant,
    month_period,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_month_runs_from_local_midnight_to_the_next_months() -> None:
    # Beijing is UTC+8 all year: 1 March 00:00 local is 28 February 16:00 UTC.
    period = month_period("2026-03", SHANGHAI)
    assert period.start == datetime(2026, 2, 28, 16, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 31, 16, tzinfo=UTC)
    assert period.month == "2026-03"


def test_december_ends_at_the_next_years_january() -> None:
    period = month_period("2025-12", SHANGHAI)
    assert (period.start, period.end) == (
        datetime(2025, 11, 30, 16, tzinfo=UTC),
        datetime(2025, 12, 31, 16, tzinfo=UTC),
    )


def test_the_current_month_is_the_local_one() -> None:
    # 31 March 17:00 UTC is 1 April 01:00 in Beijing: April already.
    assert current_month(datetime(2026, 3, 31, 17, tzinfo=UTC), SHANGHAI).month == "2026-04"
    assert current_month(datetime(2026, 3, 31, 15, tzinfo=UTC), SHANGHAI).month == "2026-03"


@pytest.mark.parametrize(
    "text", ["2026-3", "2026-13", "2026-00", "26-03", "2026-03-01", "", "\uff10\uff12"]
)
def test_a_month_that_is_not_yyyy_mm_is_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(PeriodError) as refused:
        month_period(text, SHANGHAI)
    assert refused.value.parameter == "month"


def test_year_one_is_outside_the_calendar_not_a_crash() -> None:
    with pytest.raises(PeriodError, match="outside the calendar"):
        month_period("0001-01", SHANGHAI)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", datetime(2026, 2, 28, 16, tzinfo=UTC)),  # a day: its local midnight
        ("2026-03-01T08:00", datetime(2026, 3, 1, 0, tzinfo=UTC)),  # no offset: local
        ("2026-03-01T08:00:00Z", datetime(2026, 3, 1, 8, tzinfo=UTC)),
        ("2026-03-01T08:00:00+08:00", datetime(2026, 3, 1, 0, tzinfo=UTC)),
        ("2026-03-01 08:00:00.5+0000", datetime(2026, 3, 1, 8, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_an_instant_is_a_day_or_a_time_and_comes_back_in_utc(text: str, expected: datetime) -> None:
    moment = instant(text, "since", SHANGHAI)
    assert moment == expected
    assert moment.utcoffset() is not None
    assert moment.tzinfo == UTC


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-02-30", "2026-03-01T25:00", "20260301", "2026-W09-1", "0000-01-01"]
)
def test_anything_else_is_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(PeriodError) as refused:
        instant(text, "until", SHANGHAI)
    assert refused.value.parameter == "until"
    assert "YYYY-MM-DD" in refused.value.message


def test_since_must_come_before_until() -> None:
    early, late = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    assert between(early, late).start == early
    for since, until in ((late, early), (early, early)):
        with pytest.raises(PeriodError) as refused:
            between(since, until)
        assert refused.value.parameter == "since"
