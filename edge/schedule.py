"""Opening hours of a site (办事大厅 or village station), and whether it is open at a moment. Pure.

Written the way halls publish them: ``"mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00"``, or
``"24/7"`` for a self-service area. Holiday overrides (a closed day, or special hours on a 调休
make-up working day) take precedence over the week.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS = "24/7"
_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class ScheduleError(ValueError):
    """Opening hours that cannot be read; the message names the part that is wrong."""


@dataclass(frozen=True, slots=True)
class Span:
    start: time
    end: time

    def __contains__(self, moment: time) -> bool:
        return self.start <= moment < self.end


Day = tuple[Span, ...]


@dataclass(frozen=True)
class OpeningHours:
    """A weekly schedule (Monday first) with per-date overrides; times are the site's local time."""

    week: tuple[Day, ...] = ((),) * 7
    overrides: Mapping[date, Day] = field(default_factory=dict)
    always_open: bool = False
    zone: ZoneInfo = DEFAULT_ZONE

    def is_open(self, moment: datetime) -> bool:
        """Whether the site is open at ``moment`` (timezone-aware; read in the site's zone)."""
        if self.always_open:
            return True
        local = moment.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        return any(clock in span for span in self.day(local.date()))

    def day(self, when: date) -> Day:
        """The spans the site is open on the local date ``when``: its override, else its week."""
        return self.overrides.get(when, self.week[when.weekday()])


def parse_spans(text: str) -> Day:
    """``"08:30-12:00,14:00-17:30"`` → spans; ``"closed"`` or ``""`` → no spans."""
    text = text.strip()
    if text in {"", "closed"}:
        return ()
    spans = []
    for part in text.split(","):
        match = _SPAN.match(part.strip())
        if not match:
            msg = f"{part.strip()!r} is not HH:MM-HH:MM"
            raise ScheduleError(msg)
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        try:
            start, end = time(h1, m1), time(h2, m2) if (h2, m2) != (24, 0) else time.max
        except ValueError:
            msg = f"{part.strip()!r} is not a valid time span"
            raise ScheduleError(msg) from None
        if end <= start:
            msg = f"{part.strip()!r} ends before it starts"
            raise ScheduleError(msg)
        spans.append(Span(start, end))
    return tuple(spans)


def _days(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-", 1)
        if first not in DAYS or last not in DAYS:
            msg = f"{text!r} is not a day range like mon-fri"
            raise ScheduleError(msg)
        return list(range(DAYS.index(first), DAYS.index(last) + 1))
    if text not in DAYS:
        msg = f"{text!r} is not a day (mon … sun)"
        raise ScheduleError(msg)
    return [DAYS.index(text)]


def parse(
    text: str, overrides: Iterable[tuple[date, str]] = (), zone: ZoneInfo = DEFAULT_ZONE
) -> OpeningHours:
    """Read a weekly schedule, e.g. ``"mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00"``."""
    overridden = {day: parse_spans(spans) for day, spans in overrides}
    if text.strip() == ALWAYS:
        return OpeningHours(overrides=overridden, always_open=True, zone=zone)
    week: list[Day] = [()] * 7
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        days, _, spans = clause.partition(" ")
        if not spans:
            msg = f"{clause!r} has no hours (expected e.g. 'mon-fri 08:30-17:30')"
            raise ScheduleError(msg)
        for index in _days(days.strip().lower()):
            week[index] = parse_spans(spans)
    return OpeningHours(tuple(week), overridden, zone=zone)


def next_opening(
    hours: OpeningHours, moment: datetime, *, horizon_days: int = 14
) -> datetime | None:
    """When the site next opens at or after ``moment`` (``moment`` itself if open then).

    None when it does not open within ``horizon_days`` (closed for the holidays, or a schedule
    without hours), and for a site that is always open it is ``moment``.
    """
    if hours.is_open(moment):
        return moment
    local = moment.astimezone(hours.zone)
    for offset in range(horizon_days + 1):
        day = local.date() + timedelta(days=offset)
        starts = sorted(
            datetime.combine(day, span.start, tzinfo=hours.zone) for span in hours.day(day)
        )
        later = [start for start in starts if start > local]
        if later:
            return later[0].astimezone(moment.tzinfo)
    return None
