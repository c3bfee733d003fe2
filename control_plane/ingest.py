"""The uplink ingest: every device's messages in, decoded by the wire contract, applied.

Bad input is refused with a reason, counted and logged; it never stops the loop. Each update is
computed on the fleet state, stored, and only then applied in memory, so memory and database
never disagree about what was stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from edge import mqtt
from edge.agent.backoff import Backoff
from edge.protocol import (
    Direction,
    Heartbeat,
    Presence,
    ProtocolError,
    RejectReason,
    decode_message,
)
from edge.protocol import topics as wire

from . import registry
from .fleet import DeviceState, FleetState, health_changed
from .metrics import ControlPlaneMetrics

log = logging.getLogger(__name__)

RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 15.0
REJECT_LOG_INTERVAL_S = 10.0
LAST_SEEN_PERSIST_S = 60.0
"""last_seen changes with every heartbeat; the database gets it at most this often per device."""


class Ingest:
    """Applies uplink messages to the fleet state and the database."""

    def __init__(
        self,
        fleet: FleetState,
        metrics: ControlPlaneMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._fleet = fleet
        self._metrics = metrics
        self._clock = clock
        self.connected = False
        self._reject_log: dict[RejectReason, tuple[float, int]] = {}
        self._persisted_last_seen: dict[str, datetime] = {
            s.device_id: s.last_seen for s in fleet if s.last_seen is not None
        }

    async def handle(self, incoming: mqtt.Incoming) -> None:
        """Handle one message; never raises for bad input."""
        try:
            message = decode_message(incoming.topic, incoming.payload)
        except ProtocolError as exc:
            if not incoming.payload and _is_retained_state(incoming.topic):
                return  # a retained message being cleared: housekeeping, not bad input
            self._reject(exc.reason, incoming.topic, str(exc))
            return
        if message.topic.direction is not Direction.UP:
            self._reject(RejectReason.TOPIC, incoming.topic, "not an uplink topic")
            return
        self._metrics.ingest_messages.labels(message.topic.channel.value).inc()
        device_id = message.topic.subject
        payload = message.payload
        now = self._clock()
        updated: DeviceState | None = None
        if isinstance(payload, Presence):
            updated = self._fleet.presence_update(
                device_id, payload, None if incoming.retain else now
            )
        elif isinstance(payload, Heartbeat):
            updated = self._fleet.heartbeat_update(device_id, payload, now)
        else:
            # Records, reported config and command results are stored by the delivery issue's
            # pipeline; until then they are counted and left for the agent to resend.
            log.debug("%s from %s not stored yet", message.topic.channel.value, device_id)
        if updated is not None:
            await self._store(updated, now)

    async def _store(self, updated: DeviceState, now: datetime) -> None:
        before = self._fleet.get(updated.device_id)
        if self._worth_writing(before, updated, now):
            await registry.save_state(updated)
            if updated.last_seen is not None:
                self._persisted_last_seen[updated.device_id] = updated.last_seen
        self._fleet.put(updated)

    def _worth_writing(self, before: DeviceState | None, after: DeviceState, now: datetime) -> bool:
        if before is None:
            return True
        tracked = (before.presence, before.session, before.kind, before.agent_version)
        if tracked != (after.presence, after.session, after.kind, after.agent_version):
            return True
        if health_changed(before.health, after.health):
            return True
        persisted = self._persisted_last_seen.get(after.device_id)
        return persisted is None or now - persisted >= timedelta(seconds=LAST_SEEN_PERSIST_S)

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

    async def run(
        self, address: mqtt.BrokerAddress, client_id: str, *, share_group: str | None = None
    ) -> None:
        """Consume the uplink until cancelled, reconnecting with capped jittered backoff."""
        filters = wire.ingest_filters(shared_group=share_group or wire.INGEST_SHARE_GROUP)
        backoff = Backoff(RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        while True:
            try:
                async with mqtt.connect(address, mqtt.SessionOptions(client_id=client_id)) as conn:
                    await conn.subscribe(*filters, qos=1)
                    self._set_connected(value=True)
                    log.info("ingest subscribed on %s", address)
                    backoff.reset()
                    async for incoming in conn.messages():
                        await self._handle_counted(incoming)
            except mqtt.MqttError as exc:
                log.warning("ingest lost the broker: %s", exc)
            finally:
                self._set_connected(value=False)
            delay = backoff.next()
            log.info("ingest reconnects in %.1fs", delay)
            await asyncio.sleep(delay)

    def _set_connected(self, *, value: bool) -> None:
        self.connected = value
        self._metrics.mqtt_connected.set(1 if value else 0)

    async def _handle_counted(self, incoming: mqtt.Incoming) -> None:
        try:
            await self.handle(incoming)
        except Exception:
            # A database hiccup must not end the ingest. The update was not applied in memory
            # either, and the next heartbeat or presence message brings it again.
            self._metrics.ingest_errors.inc()
            log.exception("failed to store a message from %r", incoming.topic)


def _is_retained_state(topic: str) -> bool:
    try:
        return wire.parse(topic).channel in wire.RETAINED_STATE_CHANNELS
    except ProtocolError:
        return False
