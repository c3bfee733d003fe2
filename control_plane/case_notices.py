"""Telling review pads that a case has ended: each recorded case's ``CaseNotice``, published once.

A case recorded by the business system (``review_cases``) goes out on its pad's ``case``
downlink (QoS 1, not retained) as soon as the control plane is connected to the broker, through
the ingest's connection as the twin and rollouts publish; ``notified_at`` records when. A case
whose rating period is over, or that has its default review, is not announced any more.

Why it is not published again and again: a QoS 1 message the broker has acknowledged is queued
for the pad's persistent session (seven days, the rating period) and delivered when it comes
back. What can be lost is only what the ingest's connection handed over and the broker had not
yet acknowledged when that connection broke, for it keeps no session of its own. So:

- on the same connection, notices count as acknowledged once it has no QoS 1 message left
  unacknowledged (``unacknowledged == 0`` at a tick: others' messages only make this later);
- on a new connection, the notices not known acknowledged on the old one go out again; after a
  restart, when nothing is known, those handed over within ``UNACKED_WINDOW`` of the last one
  handed over before it (the previous process's last moments, whenever they were);
- of those, only a pad's newest case, and only while it awaits its rating. A pad rates just the
  case it was told of last, and ignores a notice of a case it rated or one that ended before
  its latest; an older case repeated to a pad that has restarted since would bind the next
  citizen's press to someone else's case.

With several replicas, each runs this loop; a replica claims a case by setting ``notified_at``
where it is unset, so one of them publishes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from edge import mqtt
from edge.protocol import CaseNotice, Channel, encode
from edge.protocol import topics as wire
from edge.protocol.channels import SPECS

from .db import DATABASE_ERRORS
from .db.review_models import ReviewCase, ReviewRow
from .db.whole import whole

log = logging.getLogger(__name__)

TICK_S = 2.0
"""How often cases not yet announced, and a new broker connection, are looked for. The API
publishes a case it records at once; this catches the rest (recorded while disconnected)."""
BATCH_CASES = 500
"""Cases claimed and handed over per database round."""
UNACKED_WINDOW = timedelta(seconds=2 * mqtt.KEEPALIVE_S)
"""How long a handed-over message can wait for its acknowledgement before the connection is
declared dead (a keepalive without an answer), with room to spare."""


class NoticeConnection(Protocol):
    """The ingest's broker connection, as far as notices need it."""

    def publish_nowait(self, message: mqtt.Outgoing) -> None: ...

    @property
    def unacknowledged(self) -> int:
        """QoS 1 messages handed over that the broker has not acknowledged yet."""
        ...


class DownlinkSource(Protocol):
    """The ingest: its connection to the broker while it has one."""

    @property
    def downlink(self) -> NoticeConnection | None: ...


def notice_of(case: ReviewCase) -> CaseNotice:
    return CaseNotice(
        case_number=case.case_number,
        item_code=case.item_code,
        item_name=case.item_name,
        staff_id=case.staff_id,
        window=case.window_number,
        institution=case.department,
        ended_at=case.ended_at,
    )


def outgoing(case: ReviewCase) -> mqtt.Outgoing:
    spec = SPECS[Channel.CASE]
    topic = wire.downlink(case.device_id, Channel.CASE)
    return mqtt.Outgoing(topic, encode(notice_of(case)), spec.qos, spec.retain)


def newest_per_pad(cases: Iterable[ReviewCase]) -> dict[str, ReviewCase]:
    """Each pad's newest case (by end, then number): the only one it can still rate. Pure."""
    newest: dict[str, ReviewCase] = {}
    for case in cases:
        held = newest.get(case.device_id)
        if held is None or (case.ended_at, case.case_number) > (held.ended_at, held.case_number):
            newest[case.device_id] = case
    return newest


class CaseNotices:
    """Publishes the notices of recorded cases on their pads' downlinks; see the module's rule."""

    def __init__(
        self,
        source: DownlinkSource | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        tick_s: float = TICK_S,
        batch: int = BATCH_CASES,
    ) -> None:
        self._source = source
        self._clock = clock
        self._tick_s = tick_s
        self._batch = batch
        self._lock = asyncio.Lock()
        self._published_on: NoticeConnection | None = None
        self._connected_before = False
        self._at_risk: set[str] = set()
        """Cases handed over on ``_published_on`` (or a connection before it) not known to have
        been acknowledged by the broker."""

    async def publish_now(self) -> int:
        """Publish what is due on the present connection; the number of notices handed over."""
        async with self._lock:
            connection = self._source.downlink if self._source is not None else None
            if connection is None:
                return 0
            now = self._clock().astimezone(UTC)
            sent = 0
            if connection is not self._published_on:
                sent += await self._on_new_connection(connection, now)
            elif connection.unacknowledged == 0:
                self._at_risk.clear()
            if self._published_on is connection:
                sent += await self._publish_new(connection, now)
            return sent

    async def run(self) -> None:
        """Until cancelled: publish what is due every tick; a database failure waits a tick."""
        while True:
            try:
                await whole(self.publish_now())
            except DATABASE_ERRORS as exc:
                log.warning("could not publish case notices: %s", exc)
            await asyncio.sleep(self._tick_s)

    async def _on_new_connection(self, connection: NoticeConnection, now: datetime) -> int:
        at_risk = self._at_risk if self._connected_before else await _last_handed_over(now)
        again = await _still_awaited(at_risk, now)
        self._connected_before = True
        self._published_on = connection
        sent = self._hand_over(connection, again)
        # What could not be handed over stays at risk for the next connection.
        self._at_risk = set(sent) if self._published_on is connection else set(at_risk)
        if sent:
            log.info("case notices published again on a new broker connection: %d", len(sent))
        return len(sent)

    async def _publish_new(self, connection: NoticeConnection, now: datetime) -> int:
        total = 0
        while True:
            due = await (
                ReviewCase.filter(notified_at=None, defaulted_at=None, rate_by__gt=now)
                .order_by("ended_at", "case_number")
                .limit(self._batch)
            )
            if not due:
                return total
            claimed = await _claim([case.case_number for case in due], now)
            sent = self._hand_over(connection, claimed)
            self._at_risk.update(sent)
            total += len(sent)
            if len(sent) < len(claimed):
                await _unclaim([case.case_number for case in claimed[len(sent) :]], now)
                return total
            if len(due) < self._batch:
                return total

    def _hand_over(self, connection: NoticeConnection, cases: Sequence[ReviewCase]) -> list[str]:
        """Hand the cases' notices to the connection, in order; stop at the first refusal."""
        sent: list[str] = []
        try:
            for case in cases:
                connection.publish_nowait(outgoing(case))
                sent.append(case.case_number)
        except mqtt.MqttError as exc:
            log.warning("case notices not published (%d left): %s", len(cases) - len(sent), exc)
            self._published_on = None
        return sent


async def _claim(case_numbers: list[str], now: datetime) -> list[ReviewCase]:
    """Mark the cases notified at ``now`` where no one has; those this call marked, in order."""
    await ReviewCase.filter(case_number__in=case_numbers, notified_at=None).update(notified_at=now)
    return await ReviewCase.filter(case_number__in=case_numbers, notified_at=now).order_by(
        "ended_at", "case_number"
    )


async def _unclaim(case_numbers: list[str], now: datetime) -> None:
    await ReviewCase.filter(case_number__in=case_numbers, notified_at=now).update(notified_at=None)


async def _last_handed_over(now: datetime) -> set[str]:
    """After a restart: the cases handed over in the previous process's last moments.

    Only cases still in their rating period matter, and only they are searched (by ``rate_by``,
    the indexed column).
    """
    pending = ReviewCase.filter(rate_by__gt=now, notified_at__not_isnull=True)
    latest = await pending.order_by("-notified_at").first()
    if latest is None or latest.notified_at is None:
        return set()
    since = latest.notified_at - UNACKED_WINDOW
    numbers = await pending.filter(notified_at__gte=since).values_list("case_number", flat=True)
    return {str(number) for number in numbers}


async def _still_awaited(case_numbers: Collection[str], now: datetime) -> list[ReviewCase]:
    """Of ``case_numbers``, those that are their pad's newest case and still await a rating."""
    if not case_numbers:
        return []
    devices = await ReviewCase.filter(case_number__in=list(case_numbers)).values_list(
        "device_id", flat=True
    )
    in_period = await ReviewCase.filter(device_id__in=list(set(devices)), rate_by__gt=now)
    newest = [
        case
        for case in newest_per_pad(in_period).values()
        if case.case_number in case_numbers and case.defaulted_at is None
    ]
    numbers = [case.case_number for case in newest]
    rated = {
        str(number)
        for number in await ReviewRow.filter(case_number__in=numbers).values_list(
            "case_number", flat=True
        )
    }
    awaited = [case for case in newest if case.case_number not in rated]
    return sorted(awaited, key=lambda case: (case.ended_at, case.case_number))
