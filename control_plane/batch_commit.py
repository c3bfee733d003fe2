"""Committing the ingest's record batch, then acknowledging it; isolating what the database refuses.

Each device gets its ``Ack`` and the broker each message's PUBACK only after the commit, so a
crash at any point makes the broker or the agent send the records again, and the idempotent
insert stores them once.

A commit that fails while the database still answers is not the database's outage but
something in the batch: it is committed again in halves, between messages, down to one
message, then record by record, and the record the database refuses becomes a dead letter
(``RejectReason.unstorable``) its device is told to stop sending. Without that, one such record
(a defect: the wire contract let it through) failed its batch on every redelivery, and the
ingest stored nothing more for anyone. With the database gone, the failure raises: the ingest
leaves the broker, which delivers the batch again later.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from edge import mqtt
from edge.protocol import SPECS, Ack, Channel, RejectReason, encode
from edge.protocol import topics as wire

from . import uplink
from .batch import DeviceAck, RecordBatch
from .db import DATABASE_ERRORS, database_answers
from .db.whole import whole
from .metrics import ControlPlaneMetrics
from .records import Committed, RecordRow, RejectedRow, store_batch
from .review_ingest import ReviewOutcome, store_reviews
from .reviews.intake import Arrived
from .reviews.working_days import WorkingCalendar
from .usage_metrics import UsageCounter

log = logging.getLogger(__name__)

BatchStore = Callable[
    [
        Sequence[RecordRow],
        Sequence[RejectedRow],
        Callable[[BaseDBAsyncClient], Awaitable[ReviewOutcome | None]],
    ],
    Coroutine[Any, Any, Committed[ReviewOutcome | None]],
]
"""How a batch is committed: ``records.store_batch``'s signature."""

STORE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, ValueError, OverflowError)
"""What a failed commit raises: the database's errors, and a value the driver or the ORM cannot
convert (a time no column holds raised OverflowError on SQLite before the wire contract bounded
``at``; the ingest stopped on every redelivery). Either way the batch is cut down to the record."""

ACK_TOPICS_REMEMBERED = 1 << 17
"""One per device; the same bound as the ingest's parsed topics."""


class BatchCommitter:
    """Commits batches of records and acknowledges each after its commit."""

    def __init__(
        self,
        metrics: ControlPlaneMetrics,
        usage: UsageCounter,
        clock: Callable[[], datetime],
        calendar: WorkingCalendar,
        store: BatchStore | None = None,
    ) -> None:
        self._metrics = metrics
        self._usage = usage
        self._clock = clock
        self._calendar = calendar
        """Working days, for the due dates of bad reviews' work orders."""
        self._store = store
        """Commits a batch: ``records.store_batch`` unless given. The ingest benchmark gives a
        stand-in that stores nothing (bench/ingest_nodb.py), to show what the database costs."""

    async def commit(
        self, batch: RecordBatch, conn: uplink.UplinkConnection | None
    ) -> list[DeviceAck]:
        """Commit and acknowledge ``batch``; a record the database refuses becomes a dead letter.

        With the database gone, raises; the messages left unacknowledged then count as ingest
        errors (the broker delivers them again). With ``conn`` None (tests) nothing is sent.
        """
        acknowledged = _Tally()
        try:
            return await self._commit_isolating(batch, conn, acknowledged)
        except STORE_ERRORS:
            self._metrics.ingest_errors.inc(len(batch.messages) - acknowledged.messages)
            raise

    async def _commit_isolating(
        self, batch: RecordBatch, conn: uplink.UplinkConnection | None, acknowledged: _Tally
    ) -> list[DeviceAck]:
        try:
            return await self._commit_and_ack(batch, conn, acknowledged)
        except STORE_ERRORS as exc:
            if not await whole(database_answers()):  # not: the failure was not the batch's
                raise
            parts = batch.parts()
            if parts is not None:
                return [
                    ack
                    for part in parts
                    for ack in await self._commit_isolating(part, conn, acknowledged)
                ]
            try:  # once more alone: a deadlock or a serialization failure passes
                return await self._commit_and_ack(batch, conn, acknowledged)
            except STORE_ERRORS:
                why = f"{type(exc).__name__}: {exc}"
                where = batch.records[0].device_id if batch.records else "?"
                log.exception("the database refuses a record of %s; kept as a dead letter", where)
                unstorable = batch.as_unstorable(why)
                self._metrics.ingest_rejected.labels(RejectReason.UNSTORABLE.value).inc(
                    len(batch.records)
                )
                return await self._commit_and_ack(unstorable, conn, acknowledged)

    async def _commit_and_ack(
        self, batch: RecordBatch, conn: uplink.UplinkConnection | None, acknowledged: _Tally
    ) -> list[DeviceAck]:
        """One transaction, then an ``Ack`` per device, then each message's PUBACK."""
        started = time.perf_counter()
        reviews_too = functools.partial(self._store_reviews, batch.reviews)
        store = self._store or store_batch
        committed = await whole(store(batch.records, batch.rejected, reviews_too))
        committed_at = self._clock()
        self._metrics.ingest_commit_seconds.observe(time.perf_counter() - started)
        self._metrics.ingest_records.inc(len(batch.records))
        if committed.then is not None:
            committed.then.count_into(self._metrics)
        acks = batch.acks()
        if conn is not None:
            for ack in acks:
                conn.publish_nowait(_ack_message(ack, committed_at))
            for message in batch.messages:
                conn.ack(message)
        acknowledged.messages += len(batch.messages)
        # After the acknowledgements, which the devices wait for and the counters do not.
        self._usage.count(committed.new, committed_at)
        return acks

    async def _store_reviews(
        self, reviews: list[Arrived], conn: BaseDBAsyncClient
    ) -> ReviewOutcome | None:
        return await store_reviews(conn, reviews, self._calendar) if reviews else None


@dataclass(slots=True)
class _Tally:
    """Messages of a batch committed and acknowledged so far, while its parts are tried."""

    messages: int = 0


@functools.lru_cache(maxsize=ACK_TOPICS_REMEMBERED)
def _ack_topic(device_id: str) -> str:
    return wire.downlink(device_id, Channel.ACK)


def _ack_message(ack: DeviceAck, now: datetime) -> mqtt.Outgoing:
    spec = SPECS[Channel.ACK]
    payload = Ack(seqs=ack.seqs, rejected=ack.rejected, committed_at=now)
    return mqtt.Outgoing(_ack_topic(ack.device_id), encode(payload), spec.qos, spec.retain)
