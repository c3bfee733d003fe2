"""What citizens do at simulated terminals: visits that become usage records and reviews.

A visit at a kiosk is a session: an ID-card read, a service-item transaction, perhaps a print,
now and then a press of the call-for-help button. A review pad (评价器) rates one handled case
per visit, mostly well (the seeds report satisfaction near 9.9 of 10), now and then badly; so does
the pad of a village station's PC after each completed transaction. Where the terminal has a
simulated pad (``CaseRater``), the rating goes through it: the window's system announces the case,
the citizen presses a key, and the agent's review-pad link binds the press to the case.
Visits arrive at random (Poisson) at a rate per terminal.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from edge.agent.runner import Agent
from edge.protocol import (
    CallForHelp,
    CaseNotice,
    DeviceKind,
    IdCardRead,
    IdCardResult,
    PrintJob,
    Rating,
    Record,
    Review,
    ReviewChannel,
    SessionEnded,
    SessionStarted,
    Transaction,
    TransactionOutcome,
)

from .items import self_service_items, window_items

log = logging.getLogger(__name__)

RATINGS = (
    (Rating.VERY_SATISFIED, 0.80),
    (Rating.SATISFIED, 0.14),
    (Rating.BASIC, 0.04),
    (Rating.DISSATISFIED, 0.015),
    (Rating.VERY_DISSATISFIED, 0.005),
)
ID_READS = ((IdCardResult.OK, 0.85), (IdCardResult.FAILED, 0.08), (IdCardResult.NO_CARD, 0.07))
PRINT_SHARE = 0.6
COMPLETED_SHARE = 0.93
"""Transactions a citizen completes (the rest are abandoned); a station PC's are rated."""
HELP_SHARE = {DeviceKind.KIOSK: 0.02, DeviceKind.BOOTH: 0.3, DeviceKind.STATION_PC: 0.01}
STAFF_PER_WINDOW = 3
"""Clerks who take turns at a window (shifts, lunch relief); each case names the one on duty."""


T = TypeVar("T")


def _pick(rng: random.Random, weighted: tuple[tuple[T, float], ...]) -> T:
    values = [value for value, _ in weighted]
    return rng.choices(values, [weight for _, weight in weighted])[0]


@dataclass(frozen=True)
class RatedCase:
    """A handled case (办件) as the window's system announces it, and the citizen's rating."""

    notice: CaseNotice
    rating: Rating

    def review(self) -> Review:
        """The review a pad that binds the rating to the announced case records."""
        notice = self.notice
        return Review(
            case_number=notice.case_number,
            item_code=notice.item_code,
            channel=ReviewChannel.WINDOW_PAD,
            rating=self.rating,
            institution=notice.institution,
            window=notice.window,
            staff_id=notice.staff_id,
        )


@dataclass(frozen=True)
class Visit:
    """What one visit records directly, and the case its citizen rates on a pad, if any."""

    records: list[Record]
    rated: RatedCase | None = None


class VisitGenerator:
    """The records of one simulated visit at a terminal of ``kind``; deterministic per ``rng``.

    ``window`` is the counter a review pad stands at; ``rates_on_pad`` says a station PC's
    citizens rate their completed case on its pad. ``case_prefix`` goes into every case number
    (办件编号) before the visit's number: a simulator started again numbers its visits from 1
    again, and a case number seen before would have its rating refused as a second one.
    """

    def __init__(  # noqa: PLR0913 - a terminal and how its cases are numbered and rated
        self,
        device_id: str,
        kind: DeviceKind,
        rng: random.Random,
        *,
        window: str = "",
        rates_on_pad: bool = False,
        case_prefix: str = "",
    ) -> None:
        self._device_id = device_id
        self._case_prefix = case_prefix
        self._kind = kind
        self._rng = rng
        self._window = window
        self._rates_on_pad = rates_on_pad
        self._visits = 0

    def visit(self) -> list[Record]:
        """The visit's records, a pad's rating included as the review it becomes."""
        made = self.next_visit()
        return made.records if made.rated is None else [*made.records, made.rated.review()]

    def next_visit(self) -> Visit:
        self._visits += 1
        if self._kind is DeviceKind.REVIEW_PAD:
            item = window_items().pick(self._rng)
            return Visit([], self._rated_case(item.department, item.code))
        records = list(self._session())
        done = [r for r in records if isinstance(r, Transaction)]
        if not (self._rates_on_pad and done and done[0].outcome is TransactionOutcome.COMPLETED):
            return Visit(records)
        return Visit(records, self._rated_case(done[0].department, done[0].item_code))

    def _rated_case(self, department: str, item: str) -> RatedCase:
        staff = self._rng.randint(1, STAFF_PER_WINDOW)
        notice = CaseNotice(
            case_number=f"{self._device_id}-{self._case_prefix}{self._visits:06d}",
            item_code=item,
            staff_id=f"{self._device_id}-s{staff}",
            window=self._window,
            institution=department,
        )
        return RatedCase(notice, _pick(self._rng, RATINGS))

    def _session(self) -> Iterator[Record]:
        rng = self._rng
        session_id = f"{self._visits:06d}"
        yield SessionStarted(session_id=session_id)
        if self._kind is not DeviceKind.BOOTH:
            yield IdCardRead(session_id=session_id, result=_pick(rng, ID_READS))
            item = self_service_items().pick(rng)
            yield Transaction(
                session_id=session_id,
                department=item.department,
                item_code=item.code,
                outcome=TransactionOutcome.COMPLETED
                if rng.random() < COMPLETED_SHARE
                else TransactionOutcome.ABANDONED,
                duration_s=round(rng.uniform(40, 400), 1),
            )
            if rng.random() < PRINT_SHARE:
                yield PrintJob(session_id=session_id, pages=rng.randint(1, 4), printer="printer0")
        if rng.random() < HELP_SHARE.get(self._kind, 0.0):
            yield CallForHelp(session_id=session_id, answered=rng.random() < 0.9)  # noqa: PLR2004
        yield SessionEnded(session_id=session_id, duration_s=round(rng.uniform(60, 600), 1))


class CaseRater(Protocol):
    """A terminal's simulated review pad: announces a case, presses its rating, records it."""

    async def rate(
        self, case: RatedCase, record: Callable[[Review], Awaitable[object]]
    ) -> Review | None: ...


async def run_activity(  # noqa: PLR0913 - the visit process and what shapes it
    agent: Agent,
    visits: VisitGenerator,
    visits_per_minute: float,
    stop: asyncio.Event,
    rng: random.Random,
    *,
    busy: Callable[[], float] = lambda: 1.0,
    peak: float = 1.0,
    pad: CaseRater | None = None,
) -> None:
    """Record visits at random intervals until ``stop`` is set.

    ``busy()`` scales the rate now (0 while the site is closed), never above ``peak``: visits
    are drawn at the peak rate and each is kept with probability ``busy() / peak`` (thinning),
    which makes them a Poisson process whose rate follows the day. With ``pad``, a visit's
    rating goes through the pad, which records the review only if the pad took the press.
    """
    if visits_per_minute <= 0:
        return
    mean_gap_s = 60.0 / (visits_per_minute * peak)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), rng.expovariate(1 / mean_gap_s))
        except TimeoutError:
            if rng.random() * peak >= busy():
                continue
            visit = visits.next_visit()
            for record in visit.records:
                await agent.record(record)
            if visit.rated is None:
                continue
            if pad is None:
                await agent.record(visit.rated.review())
            else:
                await pad.rate(visit.rated, agent.record)
