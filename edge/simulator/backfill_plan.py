"""How busy a backfilled day is: visit rates scaled to the seeds' handled cases, visit times. Pure.

The seeds give Conghua's first quarter: 41,023 handled cases (办件量) on the 好差评 board, of
which the district hall 34,435, the town centres 5,277 and the village halls 1,311. A backfill
of N days aims at N/90 of each level's figure (Q1 has 90 days), times ``scale``. Every terminal
of a level visits at the same rate per weighted open minute (the day shape of
``edge.simulator.day``: opening hours, a morning peak, quiet nights at 24/7 sites), the rate at
which the level's raters (its review pads, and its station PCs, whose citizens rate completed
transactions on the PC's pad) meet the level's target. So a kiosk is as busy as a window of its
hall, and the kiosks' self-service counts scale with the window cases.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from edge.protocol import DeviceKind
from edge.schedule import OpeningHours

from . import day
from .activity import COMPLETED_SHARE
from .district import SimulatedTerminal

SEED_Q1_CASES: Mapping[str, int] = {"district": 34_435, "town": 5_277, "village": 1_311}
"""Conghua's Q1 handled cases by hall level (seed 000)."""
SEED_Q1_DAYS = 90
"""1 January to 31 March: the days the seed's figures cover."""
MAX_BACKFILL_DAYS = 29
"""The control plane counts a record in its device hour only if it arrives within 30 days
(``control_plane.rollup_counts.MAX_LATENESS``); older ones count when received. Whole days
before today, at most 29 of them, stay inside that limit however long the backfill runs."""
RATING_YIELD: Mapping[DeviceKind, float] = {
    DeviceKind.REVIEW_PAD: 1.0,
    DeviceKind.STATION_PC: COMPLETED_SHARE,
}
"""Window cases per visit: a pad rates every case; a station PC's citizen rates a completed one."""
MINUTE = timedelta(minutes=1)
LAST_VISIT_BEFORE_MIDNIGHT = timedelta(minutes=10)
"""No visit starts later on a day: its records (a session lasts minutes) stay on that day."""


class BackfillPlanError(ValueError):
    """A backfill that cannot be planned: a span out of range, a scale that is not positive."""


def backfill_days(today: date, count: int) -> list[date]:
    """The ``count`` whole days before ``today``, oldest first."""
    if not 1 <= count <= MAX_BACKFILL_DAYS:
        msg = (
            f"--backfill-days must be from 1 to {MAX_BACKFILL_DAYS}, not {count}: the control"
            " plane counts records older than 30 days at their arrival, not on their own day"
        )
        raise BackfillPlanError(msg)
    return [today - timedelta(days=n) for n in range(count, 0, -1)]


def targets(days: int, scale: float = 1.0) -> dict[str, float]:
    """Window cases each hall level should get over ``days`` days: the seeds' share, scaled."""
    if not scale > 0:
        msg = f"--backfill-scale must be above 0, not {scale}"
        raise BackfillPlanError(msg)
    return {level: n * days / SEED_Q1_DAYS * scale for level, n in SEED_Q1_CASES.items()}


def _visiting_window(hours: OpeningHours, when: date) -> tuple[datetime, datetime] | None:
    """From the day's first opening to its last closing (the whole day at a 24/7 site)."""
    midnight = datetime.combine(when, time(0), hours.zone)
    if hours.always_open:
        return midnight, midnight + timedelta(days=1) - LAST_VISIT_BEFORE_MIDNIGHT
    spans = hours.day(when)
    if not spans:
        return None
    opens = datetime.combine(when, min(span.start for span in spans), hours.zone)
    closes = datetime.combine(when, max(span.end for span in spans), hours.zone)
    return opens, min(closes, midnight + timedelta(days=1) - LAST_VISIT_BEFORE_MIDNIGHT)


def _minutes(start: datetime, end: datetime) -> Iterator[datetime]:
    moment = start + MINUTE / 2
    while moment < end:
        yield moment
        moment += MINUTE


def weighted_minutes(hours: OpeningHours, when: date) -> float:
    """The day's open minutes, each weighted by how busy it is (``day.visit_factor``)."""
    window = _visiting_window(hours, when)
    if window is None:
        return 0.0
    return sum(day.visit_factor(hours, moment) for moment in _minutes(*window))


@dataclass(frozen=True)
class LevelPlan:
    """One hall level's target, the rate that meets it, and what its raters can give."""

    level: str
    target: float
    """Window cases wanted over the span."""
    rater_minutes: float
    """Weighted open minutes of its raters over the span, each times its rating yield."""

    @property
    def rate(self) -> float:
        """Visits per weighted open minute for every terminal of the level (0: no raters)."""
        return self.target / self.rater_minutes if self.rater_minutes > 0 else 0.0


def plan_levels(
    terminals: Sequence[SimulatedTerminal],
    hours_by_site: Mapping[str, OpeningHours],
    days: Sequence[date],
    wanted: Mapping[str, float],
) -> dict[str, LevelPlan]:
    """Each level's plan; a level with no raters open in the span gets rate 0 (and no cases)."""
    # Most sites share their hours (every village station's are the same): count each once.
    by_hours: dict[tuple[object, ...], float] = {}
    site_minutes: dict[str, float] = {}
    for code in {t.site_code for t in terminals}:
        hours = hours_by_site[code]
        key = (hours.week, tuple(sorted(hours.overrides.items())), hours.always_open, hours.zone)
        if key not in by_hours:
            by_hours[key] = sum(weighted_minutes(hours, d) for d in days)
        site_minutes[code] = by_hours[key]
    rater_minutes: dict[str, float] = dict.fromkeys(wanted, 0.0)
    for t in terminals:
        if t.site_level in rater_minutes:
            rater_minutes[t.site_level] += site_minutes[t.site_code] * RATING_YIELD.get(t.kind, 0)
    return {
        level: LevelPlan(level, target, rater_minutes[level]) for level, target in wanted.items()
    }


def visit_starts(
    hours: OpeningHours, when: date, rate: float, rng: random.Random
) -> list[datetime]:
    """When citizens start visits on ``when``: ``rate`` times the day's shape, Poisson.

    Drawn as ``run_activity`` draws live visits: arrivals at the peak rate, each kept with
    probability ``visit_factor / peak`` (thinning).
    """
    window = _visiting_window(hours, when)
    if window is None or rate <= 0:
        return []
    start, end = window
    peak = day.MORNING_PEAK_FACTOR
    starts: list[datetime] = []
    moment = start
    while True:
        moment += timedelta(minutes=rng.expovariate(rate * peak))
        if moment >= end:
            return starts
        if rng.random() * peak < day.visit_factor(hours, moment):
            starts.append(moment)
