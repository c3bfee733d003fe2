"""The agent's connection loop: presence with a last will, heartbeats, records and the downlink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import msgspec

from edge import __version__, mqtt
from edge.aio import cancel_and_wait
from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    Ack,
    CaseNotice,
    Channel,
    Command,
    ContentNotice,
    DesiredConfig,
    DeviceEvent,
    DeviceKind,
    EventType,
    Heartbeat,
    OfflineReason,
    Payload,
    Presence,
    PresenceState,
    ProtocolError,
    Record,
    Review,
    Severity,
    decode,
    decode_message,
    encode,
    spec_for,
)
from edge.protocol import topics as wire
from edge.protocol.channels import SPECS
from edge.protocol.review_chain import seal

from .backoff import Backoff
from .commissioning import SelfTests
from .delivery import DeliverySettings, RecordSender
from .outbox import Outbox, OutboxError, PendingRecord
from .peripherals import PeripheralMonitor

if TYPE_CHECKING:  # it loads pyusb; only an agent with a review pad imports it
    from .packages import PackageManager
    from .review_pad import ReviewPadLink
    from .twin_apply import TwinApplier
from .telemetry import HealthSource, heartbeat_diff

log = logging.getLogger(__name__)

REVIEW_CHAIN = "review"
"""The outbox's name for the chain of this terminal's reviews (edge.protocol.review_chain)."""


class SessionCounter(Protocol):
    def next(self) -> int: ...


@dataclass(frozen=True)
class AgentIdentity:
    device_id: str
    kind: DeviceKind


@dataclass(frozen=True)
class AgentTiming:
    heartbeat_interval_s: float = 30.0
    full_snapshot_every: int = 10
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = mqtt.KEEPALIVE_S


def _now() -> datetime:
    return datetime.now(UTC)


class RecordError(ValueError):
    """A record the control plane could never store; refused before it reaches the outbox."""


class Agent:
    """Keeps one terminal connected and reporting until ``stop`` is set.

    Records (usage, reviews, events) go through ``record`` into the outbox, which the agent
    owns from here on (``close`` closes it); without one, records live in memory only.
    """

    def __init__(  # noqa: PLR0913 - the agent's collaborators, each injected for tests
        self,
        identity: AgentIdentity,
        broker: mqtt.BrokerAddress,
        health: HealthSource,
        sessions: SessionCounter,
        *,
        timing: AgentTiming = AgentTiming(),
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = _now,
        outbox: Outbox | None = None,
        delivery: DeliverySettings | None = None,
        self_tests: SelfTests | None = None,
        peripherals: PeripheralMonitor | None = None,
        review_pad: ReviewPadLink | None = None,
        packages: PackageManager | None = None,
        twin: TwinApplier | None = None,
    ) -> None:
        self.identity = identity
        self._broker = broker
        self._health = health
        self._sessions = sessions
        self._timing = timing
        self._backoff = backoff or Backoff()
        self._clock = clock
        self.outbox = outbox or Outbox.in_memory()
        self.sender = RecordSender(self.outbox, delivery or DeliverySettings())
        self._outbox_near_full = False
        self._session = 0
        self._heartbeat_seq = 0
        self._last_reading: Heartbeat | None = None
        self.connected = asyncio.Event()
        self._self_tests = self_tests
        self.peripherals = peripherals
        self.review_pad = review_pad
        self.packages = packages
        self.twin = twin
        if twin is not None:  # what the config applied last says, from the first heartbeat on
            self._timing = twin.retimed(timing)

    def close(self) -> None:
        if self.peripherals is not None:
            self.peripherals.close()
        self.outbox.close()

    async def record(self, payload: Record) -> int:
        """Store a record durably with the next seq and hand it to the sender; returns the seq.

        Works connected or not: the record waits in the outbox until the control plane
        acknowledges it. A record the control plane would refuse raises RecordError instead.
        """
        seq = self._append(payload)
        if self.packages is not None:  # sessions decide when packages may be installed
            self.packages.observe(payload)
        try:
            self._check_outbox_space()
        except OutboxError:
            # The record is stored; failing here would have the caller record it twice.
            log.exception("%s: cannot raise the outbox alarm", self.identity.device_id)
        return seq

    def _append(self, payload: Record) -> int:
        channel, spec = spec_for(payload)
        if not spec.record:
            msg = f"{type(payload).__name__} is not a record"
            raise RecordError(msg)
        at = payload.at or self._clock()

        def encode_with_seq(seq: int) -> bytes:
            return checked(encode(msgspec.structs.replace(payload, seq=seq, at=at)))

        def checked(data: bytes) -> bytes:
            if len(data) > MAX_PAYLOAD_BYTES:
                # The broker would drop the connection over it on every resend, forever.
                msg = f"{channel.value} record of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}"
                raise RecordError(msg)
            try:
                decode(channel, data)  # what the ingest will check, checked before storing
            except ProtocolError as exc:
                raise RecordError(str(exc)) from None
            return data

        if isinstance(payload, Review):
            review: Review = payload

            def encode_linked(seq: int, prev_hash: str) -> tuple[bytes, str]:
                # Sealed once seq and at are final: both are inside the hash.
                sealed = seal(msgspec.structs.replace(review, seq=seq, at=at), prev_hash)
                return checked(encode(sealed)), sealed.hash

            seq = self.outbox.append_linked(channel, REVIEW_CHAIN, encode_linked)
        else:
            seq = self.outbox.append(channel, encode_with_seq)
        self.sender.appended()
        return seq

    def _check_outbox_space(self) -> None:
        """Raise the near-full alarm once each time the outbox crosses its warning level."""
        near_full = self.outbox.near_full()
        if near_full and not self._outbox_near_full:
            used, limit = self.outbox.used_bytes(), self.outbox.max_bytes
            log.warning(
                "%s: outbox near full (%d of %d bytes)", self.identity.device_id, used, limit
            )
            self._append(
                DeviceEvent(
                    type=EventType.OUTBOX_NEAR_FULL,
                    severity=Severity.WARNING,
                    message="outbox near full; records are kept, none dropped",
                    details={
                        "used_bytes": str(used),
                        "max_bytes": str(limit),
                        "backlog": str(self.outbox.backlog()),
                    },
                )
            )
        self._outbox_near_full = near_full

    def _outgoing(self, channel: Channel, payload: Payload) -> mqtt.Outgoing:
        spec = SPECS[channel]
        topic = wire.uplink(self.identity.device_id, channel)
        return mqtt.Outgoing(topic, encode(payload), spec.qos, spec.retain)

    def _presence(
        self, state: PresenceState, session: int, reason: OfflineReason, *, timed: bool = True
    ) -> mqtt.Outgoing:
        payload = Presence(
            state=state,
            session=session,
            at=self._clock() if timed else None,
            reason=reason,
            kind=self.identity.kind,
            agent_version=__version__,
        )
        return self._outgoing(Channel.PRESENCE, payload)

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected, reconnecting after losses, until ``stop`` is set.

        Peripherals are watched and the review pad read while offline too: what they record
        waits in the outbox.
        """
        watching = []
        if self.peripherals is not None:
            await self.peripherals.poll_once(self.record)  # for the first heartbeat
            watching.append(
                asyncio.create_task(self.peripherals.run(self.record), name="peripherals")
            )
        if self.review_pad is not None:
            watching.append(
                asyncio.create_task(self.review_pad.run(self.record), name="review-pad")
            )
        if self.packages is not None:  # downloads and installs go on while offline
            watching.append(asyncio.create_task(self.packages.run(), name="packages"))
        try:
            await self._stay_connected(stop)
        finally:
            await cancel_and_wait(watching)

    async def _stay_connected(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            session = self._sessions.next()
            options = mqtt.SessionOptions(
                client_id=self.identity.device_id,
                clean_start=False,
                expiry_s=self._timing.session_expiry_s,
                keepalive_s=self._timing.keepalive_s,
                # The broker sends the will whenever it notices the loss, so it carries no time
                # of ours; the control plane records when it received it.
                will=self._presence(
                    PresenceState.OFFLINE, session, OfflineReason.WILL, timed=False
                ),
            )
            try:
                async with mqtt.connect(self._broker, options) as conn:
                    await self._connected(conn, session, stop)
                    return
            except mqtt.MqttError as exc:
                self.connected.clear()
                delay = self._backoff.next()
                log.warning(
                    "%s: broker unavailable (%s); retry in %.1fs",
                    self.identity.device_id,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _connected(self, conn: mqtt.Connection, session: int, stop: asyncio.Event) -> None:
        await conn.subscribe(wire.device_downlink_filter(self.identity.device_id), qos=1)
        await conn.publish(self._presence(PresenceState.ONLINE, session, OfflineReason.NONE))
        self._backoff.reset()
        self._last_reading = None  # the control plane may have missed diffs while we were away
        self._session = session
        self._heartbeat_seq = 0
        if self._self_tests is not None:
            await self._self_tests.after_connect(conn, self._outgoing)
        self.connected.set()
        try:
            async with asyncio.TaskGroup() as tasks:
                running = [
                    tasks.create_task(self._heartbeats(conn), name="heartbeats"),
                    tasks.create_task(self._downlink(conn), name="downlink"),
                    tasks.create_task(self._send_records(conn), name="records"),
                ]
                if self.packages is not None:  # retained, yet sent again: it may have been missed
                    reports = self._package_reports(conn, self.packages)
                    running.append(tasks.create_task(reports, name="package-reports"))
                await stop.wait()
                await cancel_and_wait(running)
        except* mqtt.MqttError as lost:
            # A lost connection surfaces in whichever task noticed it first; unwrap it so that
            # run() reconnects instead of dying with an ExceptionGroup.
            raise lost.exceptions[0] from None
        finally:
            self.connected.clear()
        # A planned stop says goodbye itself, so the control plane can tell it from a lost link.
        await conn.publish(self._presence(PresenceState.OFFLINE, session, OfflineReason.SHUTDOWN))

    async def _package_reports(self, conn: mqtt.Connection, packages: PackageManager) -> None:
        async def publish(report: Payload) -> None:
            await conn.publish(self._outgoing(Channel.PACKAGES, report))

        await packages.publish_reports(publish)

    async def _send_records(self, conn: mqtt.Connection) -> None:
        device_id = self.identity.device_id

        async def publish(record: PendingRecord) -> None:
            spec = SPECS[record.channel]
            topic = wire.uplink(device_id, record.channel)
            await conn.publish(mqtt.Outgoing(topic, record.payload, spec.qos, spec.retain))

        await self.sender.run(publish)

    async def _heartbeats(self, conn: mqtt.Connection) -> None:
        while True:
            await conn.publish(self._next_heartbeat())
            await asyncio.sleep(self._timing.heartbeat_interval_s)

    def _next_heartbeat(self) -> mqtt.Outgoing:
        self._heartbeat_seq += 1
        self._check_outbox_space()
        reading = msgspec.structs.replace(
            self._health.read(),
            session=self._session,
            seq=self._heartbeat_seq,
            at=self._clock(),
            outbox_backlog=self.outbox.backlog(),
        )
        snapshot_due = self._heartbeat_seq % self._timing.full_snapshot_every == 1
        if self._last_reading is None or snapshot_due or self._timing.full_snapshot_every == 1:
            payload = msgspec.structs.replace(reading, full=True)
        else:
            payload = heartbeat_diff(self._last_reading, reading)
        self._last_reading = reading
        return self._outgoing(Channel.HEALTH, payload)

    async def _downlink(self, conn: mqtt.Connection) -> None:
        async for incoming in conn.messages():
            try:
                message = decode_message(incoming.topic, incoming.payload)
            except ProtocolError as exc:
                log.warning("%s: refused downlink message: %s", self.identity.device_id, exc)
                continue
            if isinstance(message.payload, Ack):
                self.sender.acknowledge(message.payload)
                continue
            if isinstance(message.payload, DesiredConfig) and self.twin is not None:
                reported = self.twin.receive(message.payload)
                if reported is not None:
                    self._timing = self.twin.retimed(self._timing)
                    await conn.publish(self._outgoing(Channel.REPORTED, reported))
                continue
            if isinstance(message.payload, ContentNotice) and self.packages is not None:
                self.packages.notice(message.payload)
                continue
            if isinstance(message.payload, CaseNotice) and self.review_pad is not None:
                await self.review_pad.case_ended(message.payload)
                continue
            if isinstance(message.payload, Command) and self._self_tests is not None:
                result = await self._self_tests.answer(message.payload)
                if result is not None:
                    await conn.publish(self._outgoing(Channel.RESULT, result))
                    continue
            # Config, catalogs, content and commands are acted on by later issues' parts.
            log.info("%s: %s received", self.identity.device_id, message.topic.channel.value)
