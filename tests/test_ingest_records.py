"""Records through a real broker into a real database.

Stored once per (device_id, seq), acknowledged only after the commit, duplicates acknowledged
again, the unstorable kept raw and rejected by seq.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from tortoise.backends.base.client import BaseDBAsyncClient

from control_plane import batch_commit
from control_plane.db import database
from control_plane.db.models import RejectedMessage, StoredRecord
from control_plane.records import RecordRow, RejectedRow, store_batch
from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.protocol import (
    Ack,
    Channel,
    DeviceEvent,
    EventType,
    PrintJob,
    Rating,
    Record,
    Review,
    Transaction,
    decode,
    encode,
    encode_records,
)
from edge.protocol import topics as wire
from monitoring.metrics import INGEST_ERRORS
from tests.support.control_plane import running_control_plane
from tests.support.refusing_database import POISON, refuse_poison

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


class AckListener:
    """Collects the Acks the control plane sends one device."""

    def __init__(self) -> None:
        self.acks: list[Ack] = []
        self.changed = asyncio.Event()

    def acked(self) -> set[int]:
        return {s for a in self.acks for s in a.seqs}

    def rejected(self) -> set[int]:
        return {s for a in self.acks for s in a.rejected}

    async def until(
        self, want: set[int], *, rejected: frozenset[int] = frozenset(), timeout_s: float = 10
    ) -> None:
        async def reached() -> None:
            while not (want <= self.acked() and rejected <= self.rejected()):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(reached(), timeout_s)


async def listen(conn: mqtt.Connection, device_id: str, listener: AckListener) -> None:
    async for message in conn.messages():
        if message.topic == wire.downlink(device_id, Channel.ACK):
            payload = decode(Channel.ACK, message.payload)
            assert isinstance(payload, Ack)
            listener.acks.append(payload)
            listener.changed.set()


@pytest.fixture
async def device(
    broker: BrokerSettings, device_prefix: str
) -> AsyncIterator[tuple[str, mqtt.Connection, AckListener]]:
    device_id = f"{device_prefix}-kiosk"
    address = mqtt.BrokerAddress(broker.host, broker.port)
    async with mqtt.connect(address, mqtt.SessionOptions(client_id=device_id)) as conn:
        await conn.subscribe(wire.device_downlink_filter(device_id), qos=1)
        listener = AckListener()
        task = asyncio.create_task(listen(conn, device_id, listener))
        yield device_id, conn, listener
        task.cancel()


async def send(conn: mqtt.Connection, device_id: str, channel: Channel, payload: bytes) -> None:
    await conn.publish(mqtt.Outgoing(wire.uplink(device_id, channel), payload, qos=1))


async def stored(database_url: str, device_id: str) -> list[int]:
    # A second database context of our own, read-only, beside the control plane's.
    async with database(database_url):
        rows = await StoredRecord.filter(device_id=device_id).order_by("seq")
        return [r.seq for r in rows]


async def test_records_are_stored_once_and_acknowledged_after_commit(
    broker: BrokerSettings, database_url: str, device: tuple[str, mqtt.Connection, AckListener]
) -> None:
    device_id, conn, listener = device
    records: list[tuple[Channel, Record]] = [
        (Channel.USAGE, Transaction(seq=s, at=NOW, department="rs", item_code="RS-0012"))
        for s in range(1, 301)
    ]
    records += [
        (
            Channel.REVIEW,
            Review(seq=301, at=NOW, case_number="4401172026112200001", rating=Rating.SATISFIED),
        ),
        (Channel.EVENT, DeviceEvent(seq=302, at=NOW, type=EventType.AGENT_STARTED)),
        (Channel.USAGE, PrintJob(seq=303, at=NOW, pages=2)),
    ]
    async with running_control_plane(broker, database_url):
        for channel, payload in records:
            await send(conn, device_id, channel, encode(payload))
        await listener.until(set(range(1, 304)))
        # Resent after a lost ack: acknowledged again, stored once.
        for channel, payload in records[:50]:
            await send(conn, device_id, channel, encode(payload))
        acks_before = len(listener.acks)
        await listener.until(set(range(1, 51)))
        await asyncio.wait_for(_more_acks(listener, acks_before), 10)
    assert await stored(database_url, device_id) == list(range(1, 304))
    async with database(database_url):
        review = await StoredRecord.get(device_id=device_id, seq=301)
        assert (review.channel, review.type) == ("review", "review")
        event = await StoredRecord.get(device_id=device_id, seq=302)
        assert event.type == "agent_started"
        # The payload is kept exactly as the device sent it.
        assert decode(Channel.EVENT, event.payload.encode()) == records[-2][1]


async def _more_acks(listener: AckListener, count: int) -> None:
    while len(listener.acks) <= count:
        listener.changed.clear()
        await listener.changed.wait()


async def test_unstorable_record_is_kept_raw_and_rejected_by_seq(
    broker: BrokerSettings, database_url: str, device: tuple[str, mqtt.Connection, AckListener]
) -> None:
    device_id, conn, listener = device
    async with running_control_plane(broker, database_url):
        await send(conn, device_id, Channel.USAGE, b'{"type":"print","seq":7,"pages":"many"}')
        await send(conn, device_id, Channel.USAGE, encode(PrintJob(seq=8, pages=1)))
        await listener.until({8}, rejected=frozenset({7}))
    assert await stored(database_url, device_id) == [8]
    async with database(database_url):
        dead = await RejectedMessage.get(device_id=device_id)
        assert (dead.seq, dead.reason) == (7, "schema")
        assert '"pages":"many"' in dead.payload


async def test_a_record_array_is_stored_record_by_record(
    broker: BrokerSettings, database_url: str, device: tuple[str, mqtt.Connection, AckListener]
) -> None:
    device_id, conn, listener = device
    batch = [PrintJob(seq=s, at=NOW, pages=1) for s in range(1, 101)]
    bad = b'[{"type":"print","seq":101,"pages":1},{"type":"print","seq":102,"pages":"x"}]'
    async with running_control_plane(broker, database_url):
        await send(conn, device_id, Channel.USAGE, encode_records(batch))
        await send(conn, device_id, Channel.USAGE, bad)
        # An array nobody could store (too many records) is kept raw; no seq can be named.
        too_many = encode_records([PrintJob(seq=s, pages=1) for s in range(200, 301)])
        await send(conn, device_id, Channel.USAGE, too_many)
        await listener.until(set(range(1, 102)), rejected=frozenset({102}))
        await send(conn, device_id, Channel.USAGE, encode_records(batch[:10]))  # a resend
        acks_before = len(listener.acks)
        await asyncio.wait_for(_more_acks(listener, acks_before), 10)
    assert await stored(database_url, device_id) == list(range(1, 102))
    assert listener.rejected() == {102}
    async with database(database_url):
        dead = await RejectedMessage.filter(device_id=device_id).order_by("id")
        assert [(d.seq, d.reason) for d in dead] == [(102, "schema"), (None, "too_large")]
        assert dead[0].payload == '{"type":"print","seq":102,"pages":"x"}'
        first = await StoredRecord.get(device_id=device_id, seq=1)
        assert decode(Channel.USAGE, first.payload.encode()) == batch[0]
        # Receive times are written pre-formatted on SQLite; they read back as tortoise's own.
        assert first.received_at.tzinfo is not None
        assert abs(datetime.now(UTC) - first.received_at) < timedelta(minutes=5)
        assert first.device_time == NOW


@pytest.mark.parametrize("database_answers", [True, False], ids=["answering", "gone"])
async def test_a_failed_commit_is_retried_and_the_server_stays_up(
    broker: BrokerSettings,
    database_url: str,
    device: tuple[str, mqtt.Connection, AckListener],
    monkeypatch: pytest.MonkeyPatch,
    database_answers: bool,  # noqa: FBT001 - a parameter of the test
) -> None:
    """The database fails one commit (on PostgreSQL, as when its connection breaks).

    Nothing of that batch was acknowledged. While the database answers, the batch is committed
    again at once, in halves; when it does not, the ingest leaves the broker and comes back, and
    the broker delivers the batch again. Either way it is stored once.
    """
    device_id, conn, listener = device
    failures: list[int] = []
    probes: list[bool] = []

    async def fails_once(
        records: list[RecordRow],
        rejected: list[RejectedRow],
        then: Callable[[BaseDBAsyncClient], Awaitable[object]] | None = None,
    ) -> object:
        if not failures:
            failures.append(len(records))
            raise asyncpg.InternalClientError("cannot switch to state 12")
        return await store_batch(records, rejected, then)

    async def probe() -> bool:
        probes.append(database_answers)
        return database_answers

    monkeypatch.setattr(batch_commit, "store_batch", fails_once)
    monkeypatch.setattr(batch_commit, "database_answers", probe)
    async with running_control_plane(broker, database_url) as cp:
        for seq in range(1, 21):
            await send(conn, device_id, Channel.USAGE, encode(PrintJob(seq=seq, at=NOW, pages=1)))
        await listener.until(set(range(1, 21)), timeout_s=20)
        metrics = await cp.metrics()
    assert failures, "the failing commit was never tried"
    assert probes == [database_answers]
    assert await stored(database_url, device_id) == list(range(1, 21))
    # Messages left unstored count as errors: none when the retry stored them at once.
    assert f"{INGEST_ERRORS.name} {0 if database_answers else failures[0]}.0" in metrics
    assert 'termfleet_ingest_rejected_total{reason="unstorable"} 0.0' in metrics


async def test_an_unknown_usage_type_that_cannot_be_stored_is_refused_alone(
    broker: BrokerSettings, database_url: str, device: tuple[str, mqtt.Connection, AckListener]
) -> None:
    """A usage type this build does not know is kept as sent, unless no column could hold it.

    A type longer than the column, or a NUL in any string or in the raw bytes of a dead letter,
    failed the whole batch on PostgreSQL every time the broker delivered it again: every record
    behind it waited for ever.
    """
    device_id, conn, listener = device
    long_type = b'{"type":"' + b"x" * 40 + b'","seq":1}'
    nul_type = b'{"type":"fax\\u0000","seq":2}'
    nul_byte = b'{"type":"print","seq":5,"printer":"\x00"}'  # not JSON: no seq to name
    async with running_control_plane(broker, database_url):
        await send(conn, device_id, Channel.USAGE, long_type)
        await send(conn, device_id, Channel.USAGE, nul_type)
        await send(conn, device_id, Channel.USAGE, b'{"type":"fax_sent","seq":3}')
        await send(conn, device_id, Channel.USAGE, nul_byte)
        await send(conn, device_id, Channel.USAGE, encode(PrintJob(seq=4, pages=1)))
        await listener.until({3, 4}, rejected=frozenset({1, 2}))
    assert await stored(database_url, device_id) == [3, 4]
    async with database(database_url):
        kept = await StoredRecord.get(device_id=device_id, seq=3)
        assert kept.type == "fax_sent"
        dead = await RejectedMessage.filter(device_id=device_id).order_by("id")
        assert [(d.seq, d.reason) for d in dead] == [(1, "schema"), (2, "schema"), (None, "json")]
        assert dead[1].payload == nul_type.decode()
        assert dead[2].payload == '{"type":"print","seq":5,"printer":"\ufffd"}'


async def test_a_review_too_long_for_its_columns_is_refused_alone(
    broker: BrokerSettings, database_url: str, device: tuple[str, mqtt.Connection, AckListener]
) -> None:
    """A review with a field longer than the review tables' column for it fails no batch.

    Such a review failed the commit of its whole batch (tortoise refused the row on both
    databases), again on every redelivery: the ingest reconnected for ever, storing nothing.
    The wire contract bounds those fields now, so it is refused alone and kept raw.
    """
    device_id, conn, listener = device
    overlong = Review(seq=1, at=NOW, case_number="4" * 80, rating=Rating.SATISFIED, window="W" * 40)
    fine = Review(seq=2, at=NOW, case_number="4401172026112200002", rating=Rating.SATISFIED)
    async with running_control_plane(broker, database_url):
        await send(conn, device_id, Channel.REVIEW, encode(overlong))
        await send(conn, device_id, Channel.REVIEW, encode(fine))
        await send(conn, device_id, Channel.USAGE, encode(PrintJob(seq=3, pages=1)))
        await listener.until({2, 3}, rejected=frozenset({1}))
    assert await stored(database_url, device_id) == [2, 3]
    async with database(database_url):
        dead = await RejectedMessage.get(device_id=device_id)
        assert (dead.seq, dead.reason) == (1, "schema")
        assert "case_number" in dead.detail


async def test_absurd_times_and_counts_are_refused_alone(
    broker: BrokerSettings, database_url: str, device: tuple[str, mqtt.Connection, AckListener]
) -> None:
    """Values the wire contract let through and storing or counting them could not hold.

    A review at year 1 with an offset (year 0 in UTC) raised OverflowError in the commit on
    SQLite, which stopped the ingest, and so the server, on every redelivery; a print job of 2^63
    pages stopped the roll-ups. Refused now, each alone, and kept raw; a wrong clock that
    says 1970 still passes.
    """
    device_id, conn, listener = device
    year_one = (
        b'{"seq":1,"at":"0001-01-01T00:00:00+01:00","case_number":"C-1","rating":"satisfied"}'
    )
    pages = b'{"type":"print","seq":2,"pages":9223372036854775808}'
    reset_clock = Review(seq=3, at=datetime(1970, 1, 1, 0, 5, tzinfo=UTC), case_number="C-3",
                         rating=Rating.SATISFIED)  # fmt: skip
    async with running_control_plane(broker, database_url) as cp:
        await send(conn, device_id, Channel.REVIEW, year_one)
        await send(conn, device_id, Channel.USAGE, pages)
        await send(conn, device_id, Channel.REVIEW, encode(reset_clock))
        await listener.until({3}, rejected=frozenset({1, 2}))
        assert (await cp.get_json("/healthz"))["mqtt_connected"]
    assert await stored(database_url, device_id) == [3]
    async with database(database_url):
        dead = await RejectedMessage.filter(device_id=device_id).order_by("seq")
        assert [(d.seq, d.reason) for d in dead] == [(1, "schema"), (2, "schema")]
        assert "outside 1970-2199" in dead[0].detail


async def test_a_record_the_database_refuses_is_kept_raw_and_holds_up_nothing(
    broker: BrokerSettings, database_url: str, device: tuple[str, mqtt.Connection, AckListener]
) -> None:
    """The database refuses records (a trigger here; a defect in real life).

    The batch is committed again in halves down to the message, and a message of several
    records record by record; the refused record becomes a dead letter, every other one is
    stored, and the device is told to stop sending it. Before, the whole batch failed on every
    redelivery and nothing more was stored.
    """
    device_id, conn, listener = device
    await refuse_poison(database_url)
    records = [PrintJob(seq=s, at=NOW, pages=1) for s in range(1, 41)]
    records[12] = PrintJob(seq=13, at=NOW, pages=1, printer=POISON)
    backlog = [PrintJob(seq=s, at=NOW, pages=1) for s in range(41, 51)]
    backlog[4] = PrintJob(seq=45, at=NOW, pages=1, printer=POISON)
    async with running_control_plane(broker, database_url) as cp:
        for record in records:
            await send(conn, device_id, Channel.USAGE, encode(record))
        # A backlog message of ten records: only its refused one is a dead letter.
        await send(conn, device_id, Channel.USAGE, encode_records(backlog))
        good = set(range(1, 51)) - {13, 45}
        await listener.until(good, rejected=frozenset({13, 45}), timeout_s=20)
        assert (await cp.get_json("/healthz"))["mqtt_connected"]
        metrics = await cp.metrics()
    assert await stored(database_url, device_id) == sorted(good)
    assert not {13, 45} & listener.acked()
    assert 'termfleet_ingest_rejected_total{reason="unstorable"} 2.0' in metrics
    assert f"{INGEST_ERRORS.name} 0.0" in metrics  # every message was stored or dead-lettered
    async with database(database_url):
        dead = await RejectedMessage.filter(device_id=device_id).order_by("seq")
        assert [(d.seq, d.reason) for d in dead] == [(13, "unstorable"), (45, "unstorable")]
        assert "refused by a test trigger" in dead[0].detail
        assert decode(Channel.USAGE, dead[0].payload.encode()) == records[12]
        assert decode(Channel.USAGE, dead[1].payload.encode()) == backlog[4]


async def test_a_dead_letters_nul_is_stored_as_the_replacement_character(
    database_url: str,
) -> None:
    """No PostgreSQL text holds a NUL.

    A dead letter's detail or payload with one (a database's error quoting a value, raw bytes
    that are no JSON) is stored with U+FFFD, on both databases.
    """
    topic = "termfleet/v1/up/nul-kiosk/usage"
    dead = RejectedRow(
        topic, "nul-kiosk", 4, "unstorable", "refused 'a\x00b'", '{"seq":4,"x":"\x00"}', NOW
    )
    async with database(database_url):
        await store_batch([], [dead])
        kept = await RejectedMessage.get(device_id="nul-kiosk")
    assert (kept.detail, kept.payload) == ("refused 'a\ufffdb'", '{"seq":4,"x":"\ufffd"}')
