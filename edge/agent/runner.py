"""The agent's connection loop: presence with a last will, heartbeats, and the device's downlink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from edge import __version__, mqtt
from edge.protocol import (
    Channel,
    DeviceKind,
    Heartbeat,
    OfflineReason,
    Payload,
    Presence,
    PresenceState,
    ProtocolError,
    decode_message,
    encode,
)
from edge.protocol import topics as wire
from edge.protocol.channels import SPECS

from .backoff import Backoff
from .telemetry import HealthSource, heartbeat_diff

log = logging.getLogger(__name__)


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


class Agent:
    """Keeps one terminal connected and reporting until ``stop`` is set."""

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
    ) -> None:
        self.identity = identity
        self._broker = broker
        self._health = health
        self._sessions = sessions
        self._timing = timing
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._session = 0
        self._heartbeat_seq = 0
        self._last_reading: Heartbeat | None = None
        self.connected = asyncio.Event()

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
        self.connected.set()
        try:
            async with asyncio.TaskGroup() as tasks:
                heartbeat = tasks.create_task(self._heartbeats(conn), name="heartbeats")
                downlink = tasks.create_task(self._downlink(conn), name="downlink")
                await stop.wait()
                heartbeat.cancel()
                downlink.cancel()
        except* mqtt.MqttError as lost:
            # A lost connection surfaces in whichever task noticed it first; unwrap it so that
            # run() reconnects instead of dying with an ExceptionGroup.
            raise lost.exceptions[0] from None
        finally:
            self.connected.clear()
        # A planned stop says goodbye itself, so the control plane can tell it from a lost link.
        await conn.publish(self._presence(PresenceState.OFFLINE, session, OfflineReason.SHUTDOWN))

    async def _heartbeats(self, conn: mqtt.Connection) -> None:
        while True:
            await conn.publish(self._next_heartbeat())
            await asyncio.sleep(self._timing.heartbeat_interval_s)

    def _next_heartbeat(self) -> mqtt.Outgoing:
        self._heartbeat_seq += 1
        reading = msgspec.structs.replace(
            self._health.read(), session=self._session, seq=self._heartbeat_seq, at=self._clock()
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
            # Acks, config, catalogs, content and commands are acted on by later issues' parts.
            log.info("%s: %s received", self.identity.device_id, message.topic.channel.value)
