"""Dead letters stored again, once what refused them is fixed (``termfleet db resubmit``).

The ingest keeps a record it cannot store as a dead letter (``rejected_message``) and tells its
device to stop sending it, so the dead letter is the record's only copy. When the cause is
fixed (a column widened, a newer termfleet that reads the record's schema version), its
payload goes through the same wire contract and the same transaction as the ingest's
(``records.store_batch``, the 好差评 reviews' tables), and the dead letter is deleted and the
resubmission audited in that transaction: the record ends up stored once, or everything stays
as it was. A record stored meanwhile (the same device and seq) is not stored twice.

A dead letter whose payload holds U+FFFD is not resubmitted: the ingest put it there for bytes
no text column holds (not UTF-8, or a NUL), so it is no longer what the device sent.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from edge.protocol import SPECS, PayloadError, ProtocolError, decode_records
from edge.protocol import topics as wire

from . import audit
from .auth import Actor
from .db import DATABASE_ERRORS, database_answers
from .db.models import RejectedMessage, StoredRecord
from .record_intake import SortedRecords, sort_records
from .records import store_batch
from .review_ingest import store_reviews
from .reviews.working_days import WorkingCalendar

AUDIT_ACTION = "dead_letter.resubmit"
REPLACED = "\ufffd"
"""What the ingest stores for bytes no text holds (``records._storable``, ``dead_letter``)."""


class Outcome(enum.StrEnum):
    STORED = "stored"
    """Its records are stored now (those not stored before); the dead letter is gone."""
    ALREADY_STORED = "already_stored"
    """Every one of its records was stored before; the dead letter is gone."""
    REFUSED = "refused"
    """The wire contract still refuses it; kept."""
    UNSTORABLE = "unstorable"
    """The database still refuses it; kept."""
    GONE = "gone"
    """Resubmitted by someone else meanwhile."""

    @property
    def kept(self) -> bool:
        return self in (Outcome.REFUSED, Outcome.UNSTORABLE)


@dataclass(frozen=True, slots=True)
class Resubmitted:
    """What became of one dead letter."""

    id: int
    device_id: str | None
    seq: int | None
    reason: str
    """Why it was a dead letter."""
    outcome: Outcome
    stored: int
    """Records stored now."""
    detail: str = ""
    """Why it is kept, when it is."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters: these ids, or all (of a reason, of a device), oldest first."""

    ids: Sequence[int] = ()
    reason: str | None = None
    device_id: str | None = None
    limit: int = 1000
    """Without ``ids``: at most this many. Ids given are each looked at, or named not found."""


def reread(topic: str, payload: str, received_at: datetime) -> SortedRecords:
    """A dead letter's records as the ingest would sort them now; raises ProtocolError.

    Pure: every record must pass the wire contract, or none is stored.
    """
    parsed = wire.parse(topic)
    if parsed.direction is not wire.Direction.UP or not SPECS[parsed.channel].record:
        msg = f"topic {topic!r} carries no records"
        raise PayloadError(msg)
    if REPLACED in payload:
        msg = "kept with U+FFFD for bytes no text holds, so no longer as sent; not resubmitted"
        raise PayloadError(msg)
    records = sort_records(parsed, decode_records(parsed.channel, payload.encode()), received_at)
    if records.errors:
        raise records.errors[0]
    return records


async def newest(
    *, reason: str | None, device_id: str | None, limit: int, before_id: int | None = None
) -> list[dict[str, object]]:
    """Dead letters newest first (below ``before_id``), each as the listings show it."""
    found = RejectedMessage.all().order_by("-id").limit(limit)
    if reason is not None:
        found = found.filter(reason=reason)
    if device_id is not None:
        found = found.filter(device_id=device_id)
    if before_id is not None:
        found = found.filter(id__lt=before_id)
    rows = await found.values(
        "id", "received_at", "topic", "device_id", "seq", "reason", "detail", "payload"
    )
    return [{**row, "received_at": row["received_at"].isoformat()} for row in rows]


async def select(selection: Selection) -> list[RejectedMessage]:
    found = RejectedMessage.all().order_by("id")
    if selection.ids:
        found = found.filter(id__in=list(selection.ids))
    else:
        found = found.limit(selection.limit)
    if selection.reason is not None:
        found = found.filter(reason=selection.reason)
    if selection.device_id is not None:
        found = found.filter(device_id=selection.device_id)
    return await found


async def resubmit(
    letters: Sequence[RejectedMessage],
    calendar: WorkingCalendar,
    actor: Actor,
    *,
    dry_run: bool = False,
) -> AsyncIterator[Resubmitted]:
    """Each letter resubmitted in its own transaction, in the order given.

    ``dry_run``: each transaction is rolled back at its end, so the outcomes are the database's
    own answers and nothing changes. A database that stops answering raises.
    """
    for letter in letters:
        yield await _resubmit_one(letter, calendar, actor, dry_run=dry_run)


class _RollBack(Exception):  # noqa: N818 - a signal, not an error
    """Raised at the end of a dry run's transaction to undo it."""


class _Gone(Exception):  # noqa: N818 - a signal, not an error
    """The dead letter was deleted by someone else while this transaction ran."""


async def _resubmit_one(
    letter: RejectedMessage, calendar: WorkingCalendar, actor: Actor, *, dry_run: bool
) -> Resubmitted:
    def result(outcome: Outcome, stored: int = 0, detail: str = "") -> Resubmitted:
        return Resubmitted(
            letter.id, letter.device_id, letter.seq, letter.reason, outcome, stored, detail
        )

    try:
        records = reread(letter.topic, letter.payload, letter.received_at)
    except ProtocolError as exc:
        return result(Outcome.REFUSED, detail=str(exc))
    try:
        stored = await _store(letter, records, calendar, actor, dry_run=dry_run)
    except _Gone:
        return result(Outcome.GONE)
    except DATABASE_ERRORS as exc:
        if not await database_answers():
            raise
        return result(Outcome.UNSTORABLE, detail=f"{type(exc).__name__}: {exc}")
    return result(Outcome.STORED if stored else Outcome.ALREADY_STORED, stored)


async def _store(
    letter: RejectedMessage,
    records: SortedRecords,
    calendar: WorkingCalendar,
    actor: Actor,
    *,
    dry_run: bool,
) -> int:
    """Store the letter's records, delete it and audit that, in one transaction: records new."""
    stored_before = await _stored_already(records) if dry_run else 0

    async def reviews_then_letter(conn: BaseDBAsyncClient) -> None:
        if records.reviews:
            await store_reviews(conn, records.reviews, calendar)
        if not await RejectedMessage.filter(id=letter.id).using_db(conn).delete():
            raise _Gone
        await audit.record(
            AUDIT_ACTION,
            actor,
            "dead_letter",
            letter.id,
            before={"reason": letter.reason, "device_id": letter.device_id, "seq": letter.seq},
            after={"records": len(records.rows)},
            note=letter.topic,
            using_db=conn,
        )
        if dry_run:
            raise _RollBack

    try:
        return len((await store_batch(records.rows, [], reviews_then_letter)).new)
    except _RollBack:
        return len(records.rows) - stored_before


async def _stored_already(records: SortedRecords) -> int:
    """How many of the records are stored already (a dry run cannot ask its insert)."""
    seqs = [row.seq for row in records.rows]
    device_id = records.rows[0].device_id if records.rows else ""
    return await StoredRecord.filter(device_id=device_id, seq__in=seqs).count()
