"""A simulated terminal's day: switched on around its site's opening hours, busy while it is open.

Halls and village stations switch their terminals on a little before they open and off a little
after they close; over the lunch break the machines stay on but nobody comes. A self-service
area open 24/7 never switches off, and is quieter at night. Pure: every answer is for a given
moment, in the site's own time zone.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from edge.schedule import OpeningHours

POWER_MARGIN = timedelta(minutes=15)
"""Terminals are switched on this long before the first opening of the day and off this long
after the last closing."""
MORNING_PEAK = (time(9, 0), time(11, 0))
"""Hall traffic peaks in the morning (the seeds' halls see most cases before noon)."""
MORNING_PEAK_FACTOR = 1.6
NIGHT_FACTOR = 0.1
"""A 24/7 self-service area at night: a tenth of its daytime traffic."""
NIGHT = (time(22, 0), time(7, 0))


def powered(hours: OpeningHours, moment: datetime) -> bool:
    """Whether a terminal at a site with ``hours`` is switched on at ``moment``."""
    if hours.always_open:
        return True
    local = moment.astimezone(hours.zone)
    spans = hours.day(local.date())
    if not spans:
        return False
    day = local.date()
    opens = min(span.start for span in spans)
    closes = max(span.end for span in spans)
    first = datetime.combine(day, opens, hours.zone) - POWER_MARGIN
    last = datetime.combine(day, closes, hours.zone) + POWER_MARGIN
    return first <= local <= last


def visit_factor(hours: OpeningHours, moment: datetime) -> float:
    """How busy the terminal is at ``moment`` relative to its mean rate: 0 while closed."""
    if not hours.is_open(moment):
        return 0.0
    clock = moment.astimezone(hours.zone).time()
    if hours.always_open and not NIGHT[1] <= clock < NIGHT[0]:
        return NIGHT_FACTOR
    if MORNING_PEAK[0] <= clock < MORNING_PEAK[1]:
        return MORNING_PEAK_FACTOR
    return 1.0
