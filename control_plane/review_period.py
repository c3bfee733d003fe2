"""The period a 好差评 listing or league table covers: a month or two instants, read. Pure.

A period is half-open, ``start <= rated_at < end``, in UTC: a review rated on the first instant
of the next month belongs to the next month, never to both. Months and days are local (the
statistics' zone, Asia/Shanghai by default): March is from 1 March 00:00 to 1 April 00:00 in
Beijing time, so a review at 23:30 on 31 March local time (15:30 UTC) is in March.

Bounds reach the database as UTC: SQLite compares the stored text, which tortoise writes in UTC,
so a bound in another offset would compare wrongly there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})?")
INSTANT_FORMS = "YYYY-MM-DD (local midnight) or YYYY-MM-DDTHH:MM[:SS][±HH:MM|Z]"


class PeriodError(ValueError):
    """A month or instant that cannot be read; ``parameter`` names it."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class Period:
    """``start <= t < end``, both aware and in UTC; ``month`` is ``YYYY-MM`` for a month."""

    start: datetime
    end: datetime
    month: str | None = None


def month_period(text: str, zone: tzinfo, parameter: str = "month") -> Period:
    """The local month ``YYYY-MM``, from its first local midnight to the next month's."""
    found = _MONTH.fullmatch(text)
    if found is None:
        msg = f"{parameter} must be a month as YYYY-MM, not {text!r}"
        raise PeriodError(msg, parameter)
    year, month = int(found.group(1)), int(found.group(2))
    following = (year + 1, 1) if month == 12 else (year, month + 1)  # noqa: PLR2004 - December
    try:
        start = _local_midnight(date(year, month, 1), zone)
        end = _local_midnight(date(*following, 1), zone)
    except (ValueError, OverflowError):
        msg = f"{parameter}: {text} is outside the calendar this server counts in"
        raise PeriodError(msg, parameter) from None
    return Period(start, end, text)


def current_month(now: datetime, zone: tzinfo) -> Period:
    """The local month ``now`` falls in."""
    return month_period(now.astimezone(zone).strftime("%Y-%m"), zone)


def instant(text: str, parameter: str, zone: tzinfo) -> datetime:
    """A bound as UTC: a day is its local midnight; a time without an offset is local."""
    try:
        if _DAY.fullmatch(text):
            return _local_midnight(date.fromisoformat(text), zone)
        if _INSTANT.fullmatch(text):
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
            return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    msg = f"{parameter} must be {INSTANT_FORMS}, not {text!r}"
    raise PeriodError(msg, parameter)


def between(since: datetime, until: datetime) -> Period:
    """The period from ``since`` up to ``until``, which must come later."""
    if since >= until:
        msg = f"since ({since.isoformat()}) must come before until ({until.isoformat()})"
        raise PeriodError(msg, "since")
    return Period(since, until)


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)
