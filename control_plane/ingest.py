"""The uplink ingest: every device's messages in, decoded by the wire contract, applied.

Bad input is refused with a reason, counted and logged; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime

from edge import mqtt
from edge.protocol import (
    Channel,
    Direction,
    Heartbeat,
    Presence,
    ProtocolError,
    RejectReason,
    decode_message,
)
from edge.protocol import topics as wire

from . import registry
from .fleet import FleetState
from .metrics import ControlPlaneMetrics

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 15.0
SHARE_GROUP = "termfleet-ingest"
# Retained state topics are cleared with an empty payload; that is housekeeping, not bad input.
_CLEARABLE = frozenset({Channel.PRESENCE, Channel.REPORTED})


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

    async def handle(self, incoming: mqtt.Incoming) -> None:
        """Handle one message; never raises for bad input."""
        try:
            message = decode_message(incoming.topic, incoming.payload)
        except ProtocolError as exc:
            if not incoming.payload and _is_clearable(incoming.topic):
                return
            self._reject(exc.reason, incoming.topic, str(exc))
            return
        if message.topic.direction is not Direction.UP:
            self._reject(RejectReason.TOPIC, incoming.topic, "not an uplink topic")
            return
        channel = message.topic.channel
        self._metrics.ingest_messages.labels(channel.value).inc()
        device_id = message.topic.subject
        payload = message.payload
        if isinstance(payload, Presence):
            changed = self._fleet.apply_presence(device_id, payload, self._clock())
            if changed is not None:
                await registry.save_state(changed)
        elif isinstance(payload, Heartbeat):
            state = self._fleet.apply_heartbeat(device_id, payload, self._clock())
            await registry.save_health(state, payload)
        else:
            # Records, reported config and command results are stored by the delivery issue's
            # pipeline; until then they are counted and left for the agent to resend.
            log.debug("%s from %s not stored yet", channel.value, device_id)

    def _reject(self, reason: RejectReason, topic: str, detail: str) -> None:
        self._metrics.ingest_rejected.labels(reason.value).inc()
        log.warning("rejected message on %r (%s): %s", topic, reason.value, detail)

    async def run(
        self, address: mqtt.BrokerAddress, client_id: str, *, shared: bool = True
    ) -> None:
        """Consume the uplink until cancelled, reconnecting with capped jittered backoff."""
        topic_filter = wire.all_uplink_filter()
        if shared:
            topic_filter = wire.shared(SHARE_GROUP, topic_filter)
        delay = RECONNECT_MIN_S
        while True:
            try:
                async with mqtt.connect(address, mqtt.SessionOptions(client_id=client_id)) as conn:
                    await conn.subscribe(topic_filter, qos=1)
                    self._metrics.mqtt_connected.set(1)
                    log.info("ingest subscribed to %s on %s", topic_filter, address)
                    delay = RECONNECT_MIN_S
                    async for incoming in conn.messages():
                        await self._handle_logged(incoming)
            except mqtt.MqttError as exc:
                log.warning("ingest lost the broker: %s; retrying in %.1fs", exc, delay)
            finally:
                self._metrics.mqtt_connected.set(0)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _handle_logged(self, incoming: mqtt.Incoming) -> None:
        try:
            await self.handle(incoming)
        except Exception:
            # A database hiccup must not end the ingest; the message is lost only for the
            # skeleton's latest-wins state, which the next heartbeat restores.
            log.exception("failed to handle a message on %r", incoming.topic)


def _is_clearable(topic: str) -> bool:
    try:
        return wire.parse(topic).channel in _CLEARABLE
    except ProtocolError:
        return False
