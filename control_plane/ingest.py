"""The uplink ingest: every device's messages in, decoded by the wire contract, applied.

State messages (presence, health) are applied to the fleet state in memory at once and reach
the database with the next batch of device states (``state_writes.py``), only when something
worth keeping changed. Records (usage, reviews, events) go into a batch that is committed in
one transaction (group commit: whatever arrived while the previous commit ran); only after the
commit does each device get its ``Ack`` and the broker its PUBACKs (``batch_commit.py``).

Bad input is refused with a reason, counted and logged; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from edge import mqtt
from edge.agent.backoff import Backoff
from edge.protocol import (
    SPECS,
    CommandResult,
    Direction,
    Heartbeat,
    PackageReport,
    Presence,
    ProtocolError,
    RejectReason,
    ReportedConfig,
    decode,
    decode_records,
)
from edge.protocol import topics as wire
from edge.protocol.commands import is_self_test

from . import commissioning, twin_devices, uplink
from .batch import BATCH_MAX_RECORDS, DeviceAck, RecordBatch
from .batch_commit import BatchCommitter, BatchStore
from .db import DATABASE_ERRORS
from .db.whole import whole
from .fleet import DeviceState, FleetState
from .metrics import ControlPlaneMetrics
from .record_intake import dead_letter, sort_records
from .reviews.working_days import WorkingCalendar, load_calendar
from .state_writes import StateWriter
from .usage_metrics import UsageCounter

log = logging.getLogger(__name__)

RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 15.0
SESSION_EXPIRY_S = 600
"""The broker keeps the ingest's subscriptions and unacknowledged messages this long, by default.

Long enough for a crashed control plane to restart and resume. With several replicas in the
share group it should be 0 (``--ingest-session-expiry``): Mosquitto hands a killed replica's
persistent session its share of every record message until the session expires, so each device
resend reaches a live replica only every other time (bench/replicas.py: a quarter of the records
made after a SIGKILL still unstored half a minute after the load). With 0, the broker drops the
dead member at once; only what it held in flight comes again, from the agents.
"""
LEAVE_TIMEOUT_S = 2.0
REJECT_LOG_INTERVAL_S = 10.0
TOPICS_REMEMBERED = 1 << 17
"""Parsed topics kept: parsing and validating one costs ~9 µs, for every message. A few per
device, so a fleet of tens of thousands is all hits; the bound keeps it under ~30 MB (past it,
the least recently seen are parsed again, as before)."""

_parse_topic = functools.lru_cache(maxsize=TOPICS_REMEMBERED)(wire.parse)
"""``wire.parse``, remembered: a ``Topic`` is immutable, and a refused topic raises again."""


class Ingest:
    """Applies uplink messages to the fleet state and the database."""

    def __init__(
        self,
        fleet: FleetState,
        metrics: ControlPlaneMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        calendar: WorkingCalendar | None = None,
        store: BatchStore | None = None,
    ) -> None:
        self._fleet = fleet
        self._metrics = metrics
        self._clock = clock
        self.connected = False
        self._batch = RecordBatch()
        self._flush_lock = asyncio.Lock()
        self._work = asyncio.Event()
        """Set when the batch has something to commit."""
        self._committed = asyncio.Event()
        """Set after each commit, for a consumer waiting for room in the batch."""
        self._reject_log: dict[RejectReason, tuple[float, int]] = {}
        self.usage = UsageCounter(metrics, fleet)
        """Counts stored usage records; its ``departments`` are refreshed by the server."""
        self.calendar = calendar if calendar is not None else load_calendar()
        """The working days of reviews' work orders; resubmitted dead letters use it too."""
        self._committer = BatchCommitter(metrics, self.usage, clock, self.calendar, store)
        # The labelled counters, looked up once: ``labels()`` costs a lock and a dict per call.
        # (Their series start at 0, as Prometheus prefers, rather than at a channel's first use.)
        self._messages_by_channel = {
            channel: metrics.ingest_messages.labels(channel.value)
            for channel in wire.CHANNELS_BY_DIRECTION[Direction.UP]
        }
        self.states = StateWriter(fleet, on_failure=metrics.ingest_errors.inc)
        """Device states on their way to the database, written in batches by ``run``."""
        self.downlink: uplink.UplinkConnection | None = None
        """The connection while subscribed: the device twin publishes desired config on it."""
        self.on_config_reported: Callable[[str], None] | None = None
        """Told each device whose stored ``ReportedConfig`` changed (the twin's counts)."""
        self.on_packages_reported: Callable[[str, PackageReport], Awaitable[None]] | None = None
        """Given each device's package report: the rollout executor moves its steps."""

    @property
    def batch(self) -> RecordBatch:
        return self._batch

    async def handle(self, incoming: mqtt.Incoming, now: datetime | None = None) -> bool:
        """Handle one message received at ``now`` (None: the clock's); never raises for bad input.

        Returns True when the message is finished with (acknowledge it now) and False when it
        waits in the record batch (acknowledge it after the batch is committed).
        """
        if now is None:
            now = self._clock()
        try:
            topic = _parse_topic(incoming.topic)
        except ProtocolError as exc:
            self._reject(exc.reason, incoming.topic, str(exc))
            return True
        if topic.direction is not Direction.UP:
            self._reject(RejectReason.TOPIC, incoming.topic, "not an uplink topic")
            return True
        channel = topic.channel
        self._messages_by_channel[channel].inc()
        if SPECS[channel].record:
            self._take_records(incoming, topic, now)
            return False
        try:
            payload = decode(channel, incoming.payload)
        except ProtocolError as exc:
            if not incoming.payload and channel in wire.RETAINED_STATE_CHANNELS:
                return True  # a retained message being cleared: housekeeping, not bad input
            self._reject(exc.reason, incoming.topic, str(exc))
            return True
        await self._handle_state(topic.subject, payload, retained=incoming.retain, now=now)
        return True

    async def _handle_state(
        self, device_id: str, payload: object, *, retained: bool, now: datetime
    ) -> None:
        """Presence, a heartbeat or a command result: what the device says of itself."""
        updated: DeviceState | None = None
        if isinstance(payload, Presence):
            updated = self._fleet.presence_update(device_id, payload, None if retained else now)
        elif isinstance(payload, Heartbeat):
            updated = self._fleet.heartbeat_update(device_id, payload, now)
        elif isinstance(payload, CommandResult) and is_self_test(payload.command_id):
            if not await commissioning.record_self_test(device_id, payload, now):
                log.info("self-test from unknown device %s not kept", device_id)
        elif isinstance(payload, PackageReport):
            if self.on_packages_reported is not None:
                await self.on_packages_reported(device_id, payload)
        elif isinstance(payload, ReportedConfig):
            changed = await twin_devices.record_reported(device_id, payload, now)
            if changed and self.on_config_reported is not None:
                self.on_config_reported(device_id)
        else:
            # Other command results are acted on by the issue that sends commands; until then
            # they are counted.
            log.debug("%s from %s not acted on yet", type(payload).__name__, device_id)
        if updated is not None:
            self._remember(updated, now)

    def _take_records(self, incoming: mqtt.Incoming, topic: wire.Topic, now: datetime) -> None:
        """Put a record message's records into the batch; refused ones become dead letters.

        A record that can never be stored as sent is kept raw for an operator; when its seq can
        be read, the device is told (Ack.rejected) so that it stops resending it.
        """
        try:
            items = decode_records(topic.channel, incoming.payload)
        except ProtocolError as exc:  # the message as a whole: not JSON, too large, ...
            self._reject(exc.reason, incoming.topic, str(exc))
            raw = bytes(incoming.payload)
            self._batch.add(incoming, rejected=[dead_letter(topic, raw, None, exc, now)])
            return
        records = sort_records(topic, items, now)
        for error in records.errors:
            self._reject(error.reason, incoming.topic, str(error))
        self._batch.add(incoming, records.rows, records.dead, records.reviews)

    def _remember(self, updated: DeviceState, now: datetime) -> None:
        """The new state in memory at once; in the database with the next batch, if worth it."""
        self.states.offer(self._fleet.get(updated.device_id), updated, now)
        self._fleet.put(updated)

    def _reject(self, reason: RejectReason, topic: str, detail: str) -> None:
        self._metrics.ingest_rejected.labels(reason.value).inc()
        # One misbehaving terminal can send thousands a second; the counter has them all, the
        # log one example per reason and interval with the number left out.
        now = time.monotonic()
        last, skipped = self._reject_log.get(reason, (-REJECT_LOG_INTERVAL_S, 0))
        if now - last < REJECT_LOG_INTERVAL_S:
            self._reject_log[reason] = (last, skipped + 1)
            return
        self._reject_log[reason] = (now, 0)
        more = f" ({skipped} more {reason.value} rejects not logged)" if skipped else ""
        log.warning("rejected message on %r (%s): %s%s", topic, reason.value, detail, more)

    async def flush(self, conn: uplink.UplinkConnection | None) -> list[DeviceAck]:
        """Commit the batch, then acknowledge: an ``Ack`` per device, then each message's PUBACK.

        A commit that fails while the database answers is tried again in parts, down to the
        record the database refuses (``BatchCommitter``). A failed commit with the
        database gone raises, and the caller drops the connection: the broker then delivers
        every unacknowledged message again (persistent session), and nothing is acknowledged
        that was not stored. With ``conn`` None (tests) nothing is sent.
        """
        async with self._flush_lock:
            batch, self._batch = self._batch, RecordBatch()
            if not batch:
                return []
            return await self._committer.commit(batch, conn)

    async def _commit_continuously(
        self, conn: uplink.UplinkConnection, over: asyncio.Event
    ) -> None:
        """Group commit: commit whatever arrived while the previous commit ran.

        Under light load a record is committed as soon as it arrives; under heavy load the
        batches grow by themselves (up to ``BATCH_MAX_RECORDS``) and each commit's fixed cost,
        the fsync above all, is shared by more records. Ends once ``over`` is set.
        """
        try:
            while True:
                await self._work.wait()
                self._work.clear()
                if over.is_set():
                    return
                await self.flush(conn)
                self._committed.set()
        finally:
            self._committed.set()  # a consumer waiting for room must not wait for ever

    async def run(
        self,
        address: mqtt.BrokerAddress,
        client_id: str,
        *,
        share_group: str | None = None,
        session_expiry_s: int = SESSION_EXPIRY_S,
    ) -> None:
        """Consume the uplink until cancelled, reconnecting with capped jittered backoff."""
        filters = wire.ingest_filters(shared_group=share_group or wire.INGEST_SHARE_GROUP)
        options = mqtt.SessionOptions(
            client_id=client_id,
            clean_start=False,
            expiry_s=session_expiry_s,
            manual_ack=True,
            max_inflight=2 * BATCH_MAX_RECORDS,
        )
        writer = asyncio.create_task(self.states.run(), name="state-writes")
        try:
            await self._connect_and_consume(address, client_id, options, filters)
        finally:
            writer.cancel()  # it writes what is left on its way out
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _connect_and_consume(
        self,
        address: mqtt.BrokerAddress,
        client_id: str,
        options: mqtt.SessionOptions,
        filters: list[str],
    ) -> None:
        backoff = Backoff(RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        while True:
            try:
                async with uplink.connect(address, options) as conn:
                    await conn.subscribe(*filters, qos=1)
                    self._set_connected(value=True)
                    self.downlink = conn
                    log.info("ingest subscribed on %s as %s", address, client_id)
                    backoff.reset()
                    try:
                        await self._consume(conn)
                    except asyncio.CancelledError:
                        await self._leave(conn, filters)
                        raise
            except mqtt.MqttError as exc:
                log.warning("ingest lost the broker: %s", exc)
            except DATABASE_ERRORS as exc:
                # A failed commit: nothing of the batch was acknowledged, so leaving the broker
                # has it deliver the batch again on the next connection.
                log.warning(
                    "ingest could not commit, reconnecting: %s: %s", type(exc).__name__, exc
                )
            finally:
                self.downlink = None
                self._set_connected(value=False)
                # Whatever was not committed will come again from the broker's session.
                self._batch = RecordBatch()
            delay = backoff.next()
            log.info("ingest reconnects in %.1fs", delay)
            await asyncio.sleep(delay)

    async def _leave(self, conn: uplink.UplinkConnection, filters: list[str]) -> None:
        """On a planned stop, leave the share group.

        Otherwise the broker keeps queueing this replica's share of the uplink for its
        persistent session until the session expires.
        """
        try:
            await asyncio.wait_for(conn.unsubscribe(*filters), LEAVE_TIMEOUT_S)
        except (mqtt.MqttError, TimeoutError) as exc:
            log.warning("could not leave the share group cleanly: %s", exc)

    async def _consume(self, conn: uplink.UplinkConnection) -> None:
        over = asyncio.Event()
        committer = asyncio.create_task(self._commit_continuously(conn, over), name="ingest-commit")
        try:
            async for arrived in conn.arrivals():
                await whole(self._handle_arrived(arrived, conn))
                if self._batch:
                    self._work.set()
                # Back-pressure: a full batch waits for the commit under way; meanwhile the
                # broker holds the rest (its in-flight window is sized for two batches, though
                # Mosquitto overshoots it: see BATCH_MAX_RECORDS).
                while self._batch.full() and not committer.done():
                    self._committed.clear()
                    await self._committed.wait()
                if committer.done():
                    committer.result()  # a failed commit ends this connection
        finally:
            # Not cancelled: a commit cancelled inside its database transaction can leave the
            # driver's transaction lock held, and every later write would wait on it for ever.
            # Told to stop, it finishes the commit under way (or fails on the dead connection).
            over.set()
            self._work.set()
            await asyncio.gather(committer, return_exceptions=True)

    async def _handle_arrived(
        self, arrived: list[mqtt.Incoming], conn: uplink.UplinkConnection
    ) -> None:
        # One time for what one read of the socket brought: they arrived together, and one
        # clock reading instead of one per message (the rows' received_at, formatted once).
        now = self._clock()
        for incoming in arrived:
            if await self._handle_counted(incoming, now):
                conn.ack(incoming)

    def _set_connected(self, *, value: bool) -> None:
        self.connected = value
        self._metrics.mqtt_connected.set(1 if value else 0)

    async def _handle_counted(self, incoming: mqtt.Incoming, now: datetime | None = None) -> bool:
        try:
            return await self.handle(incoming, now)
        except Exception:
            # A database hiccup (a self-test result, reported config) must not end the ingest;
            # the device sends its next message anyway.
            self._metrics.ingest_errors.inc()
            log.exception("failed to store a message from %r", incoming.topic)
            return True
