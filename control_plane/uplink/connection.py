"""The ingest's MQTT 5 connection: an asyncio protocol over ``packets``.

The ingest receives every record of the fleet, so its client's cost per message decides how
many records a second one control plane takes. paho-mqtt (under aiomqtt, as the agent uses it)
spends about 108 µs of CPU on each QoS 1 message and its PUBACK here: it reads a packet in
three or more ``recv`` calls and builds a properties object per message. gmqtt spends about
32 µs, but acknowledges by hand only through a task per message and reconnects by itself,
which would pair a PUBACK with a packet id of a session that is gone. This connection reads
whatever the socket has in one call and parses every packet in it, and the acknowledgements
and ``Ack`` messages of one commit go out in one write (docs/benchmarks.md has the figures).

It speaks to the rest of the control plane as ``edge.mqtt.Connection`` does, with the same
``Incoming``/``Outgoing``/``SessionOptions`` types, and raises ``edge.mqtt.MqttError``.

The ingest publishes at QoS 0 only (an ``Ack`` may be lost: the agent resends and the ingest
acknowledges again). QoS 1 publishing is there for the benchmark's load generator, whose
thousands of simulated terminals must cost little CPU on the machine they share with the
control plane: it keeps within the broker's Receive Maximum and queues beyond it, and keeps no
session of its own, so what the broker has not acknowledged when the connection breaks is lost
with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from edge.mqtt import (
    CONNECT_TIMEOUT_S,
    OPERATION_TIMEOUT_S,
    BrokerAddress,
    Incoming,
    MqttError,
    Outgoing,
    SessionOptions,
    tls_context,
)

from . import packets, reading
from .packets import MalformedPacketError
from .reading import ConnAck, Disconnect, PubAck, Publish, SubAck

log = logging.getLogger(__name__)

MAXIMUM_PACKET_SIZE = 300_000
"""Larger than any uplink message the broker accepts (its max_packet_size, 270,000 bytes)."""
FAILURE = 0x80
"""Reason codes from here up are failures (section 2.4)."""
INBOX_LIMIT = 5_000
"""Messages read and not yet taken by the ingest, at most; beyond, the socket is left unread
until the ingest takes them. QoS 1 messages are bounded by the Receive Maximum anyway, QoS 0
ones (heartbeats: 1,700 a second from 50,000 terminals) are not, and while the ingest waits for
a slow commit they would pile up here without end. Unread, they wait in the broker, which
drops QoS 0 messages beyond its queue limit (a heartbeat is latest-wins)."""


class UplinkConnection(asyncio.Protocol):
    """One connection to the broker, from CONNECT until it is closed or lost."""

    def __init__(self, options: SessionOptions) -> None:
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._reader = reading.PacketReader(MAXIMUM_PACKET_SIZE)
        self._inbox: list[Incoming] = []
        self._arrived = asyncio.Event()
        self._paused = False
        """Reading stopped: ``INBOX_LIMIT`` messages wait for the ingest."""
        self._connack: asyncio.Future[ConnAck] = self._loop.create_future()
        self._replies: dict[int, asyncio.Future[SubAck]] = {}
        self._packet_ids = itertools.cycle(range(1, 0x10000))
        self._unacknowledged: set[int] = set()
        """Packet ids of our QoS 1 messages that the broker has not acknowledged yet."""
        self._send_quota = 0xFFFF
        self._held: deque[Outgoing] = deque()
        """QoS 1 messages beyond the broker's Receive Maximum, sent as PUBACKs free room."""
        self._outbox = bytearray()
        self._error: MqttError | None = None
        self._last_received = self._loop.time()
        self.keepalive_s = options.keepalive_s

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream connection
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._last_received = self._loop.time()
        try:
            received = self._reader.feed(data)
        except MalformedPacketError as exc:
            self._fail(f"the broker sent a malformed packet: {exc}")
            return
        inbox = self._inbox
        for packet in received:
            if type(packet) is Publish:
                inbox.append(
                    Incoming(
                        packet.topic, packet.payload, packet.retain, packet.qos, packet.packet_id
                    )
                )
            else:
                self._control(packet)
        if inbox:
            self._arrived.set()
            if len(inbox) >= INBOX_LIMIT and self._transport is not None:
                self._transport.pause_reading()
                self._paused = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc}" if exc else "the broker closed the connection")

    # --- what the ingest calls ----------------------------------------------------------------

    async def subscribe(self, *filters: str, qos: int = 1) -> None:
        await self._request(
            lambda packet_id: packets.subscribe(packet_id, list(filters), qos),
            filters,
            "the subscription to",
        )

    async def unsubscribe(self, *filters: str) -> None:
        await self._request(
            lambda packet_id: packets.unsubscribe(packet_id, list(filters)), filters, "leaving"
        )

    async def arrivals(self) -> AsyncIterator[list[Incoming]]:
        """Every message that arrived since the last step, until the connection breaks.

        Raises MqttError when it does; messages not yet acknowledged come again from the
        broker's session on the next connection.
        """
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if self._error is not None:
                raise self._error
            if self._inbox:
                arrived, self._inbox = self._inbox, []
                self._resume_reading()
                yield arrived

    def ack(self, message: Incoming) -> None:
        """Send a QoS 1 message's PUBACK (with the next write; see ``_send``)."""
        if message.qos:
            self._send(packets.puback(message.mid))

    def publish_nowait(self, message: Outgoing) -> None:
        """Publish at QoS 0, or at QoS 1 within the broker's Receive Maximum (queued beyond)."""
        if message.qos == 0:
            self._send(packets.publish_qos0(message.topic, message.payload, retain=message.retain))
        elif message.qos != 1:
            msg = f"the uplink connection publishes at QoS 0 or 1, not {message.qos}"
            raise ValueError(msg)
        elif self._held or len(self._unacknowledged) >= self._send_quota:
            self._held.append(message)
        else:
            self._publish_qos1(message)

    @property
    def unacknowledged(self) -> int:
        """QoS 1 messages published and not yet acknowledged by the broker, or held back."""
        return len(self._unacknowledged) + len(self._held)

    @property
    def waiting(self) -> int:
        """Messages read and not yet taken through ``arrivals``."""
        return len(self._inbox)

    @property
    def reading_paused(self) -> bool:
        return self._paused

    # --- inside -------------------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if self._paused and self._transport is not None and not self._transport.is_closing():
            self._paused = False
            # The broker was not silent: its packets waited in the socket, unread.
            self._last_received = self._loop.time()
            self._transport.resume_reading()

    async def handshake(self, address: BrokerAddress) -> ConnAck:
        options = self._options
        self._send(
            packets.connect(
                options.client_id,
                clean_start=options.clean_start,
                keepalive_s=options.keepalive_s,
                session_expiry_s=options.expiry_s,
                receive_maximum=options.max_inflight,
                maximum_packet_size=MAXIMUM_PACKET_SIZE,
                username=address.username,
                password=address.password,
            )
        )
        try:
            connack = await asyncio.wait_for(asyncio.shield(self._connack), CONNECT_TIMEOUT_S)
        except TimeoutError:
            msg = f"{address}: no CONNACK within {CONNECT_TIMEOUT_S:.0f}s"
            raise MqttError(msg) from None
        if connack.reason_code >= FAILURE:
            why = connack.reason or f"reason code 0x{connack.reason_code:02x}"
            msg = f"{address} refused the connection: {why}"
            raise MqttError(msg)
        if connack.server_keepalive_s is not None:
            self.keepalive_s = connack.server_keepalive_s
        self._send_quota = connack.receive_maximum
        return connack

    async def keep_alive(self) -> None:
        """PINGREQ every half keepalive; a broker silent for a whole keepalive is dead.

        Not while reading is paused: what the broker sends then waits unread in the socket.
        """
        if not self.keepalive_s:
            return
        interval = self.keepalive_s / 2
        while self._error is None:
            await asyncio.sleep(interval)
            silent = self._loop.time() - self._last_received > self.keepalive_s
            if silent and not self._paused:
                self._fail(f"the broker was silent for {self.keepalive_s}s (keepalive)")
                self.close()
                return
            self._send(packets.PINGREQ)

    def close(self, *, clean: bool = False) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if clean and self._error is None:
            self._send(packets.DISCONNECT)
            self._flush()
        self._transport.close()

    async def _request(
        self, build: Callable[[int], bytes], filters: tuple[str, ...], what: str
    ) -> None:
        """Send a SUBSCRIBE or UNSUBSCRIBE and wait for its reply; a failure code raises."""
        packet_id = self._free_packet_id()
        reply: asyncio.Future[SubAck] = self._loop.create_future()
        self._replies[packet_id] = reply
        try:
            self._send(build(packet_id))
            ack = await asyncio.wait_for(asyncio.shield(reply), OPERATION_TIMEOUT_S)
        except TimeoutError:
            msg = f"no reply to {filters} within {OPERATION_TIMEOUT_S:.0f}s"
            raise MqttError(msg) from None
        finally:
            self._replies.pop(packet_id, None)
        refused = [
            f"{f} (0x{code:02x})"
            for f, code in zip(filters, ack.reason_codes, strict=False)
            if code >= FAILURE
        ]
        if refused or len(ack.reason_codes) != len(filters):
            msg = f"the broker refused {what} {', '.join(refused) or filters}"
            raise MqttError(msg)

    def _free_packet_id(self) -> int:
        """The next packet id that no message or request of ours in flight holds."""
        while True:
            packet_id = next(self._packet_ids)
            if packet_id not in self._unacknowledged and packet_id not in self._replies:
                return packet_id

    def _publish_qos1(self, message: Outgoing) -> None:
        packet_id = self._free_packet_id()
        self._unacknowledged.add(packet_id)
        self._send(
            packets.publish_qos1(message.topic, message.payload, packet_id, retain=message.retain)
        )

    def _acknowledged(self, ack: PubAck) -> None:
        if ack.packet_id not in self._unacknowledged:
            self._fail(f"a PUBACK for packet id {ack.packet_id}, which is not in flight")
            return
        self._unacknowledged.discard(ack.packet_id)
        if ack.reason_code >= FAILURE:
            log.warning("the broker refused a message: reason code 0x%02x", ack.reason_code)
        while self._held and len(self._unacknowledged) < self._send_quota:
            self._publish_qos1(self._held.popleft())

    def _control(self, packet: reading.Packet) -> None:
        if type(packet) is PubAck:
            self._acknowledged(packet)
        elif isinstance(packet, ConnAck):
            if self._connack.done():
                self._fail("a second CONNACK")
            else:
                self._connack.set_result(packet)
        elif isinstance(packet, SubAck):
            reply = self._replies.get(packet.packet_id)
            if reply is not None and not reply.done():
                reply.set_result(packet)
        elif isinstance(packet, Disconnect):
            why = packet.reason or f"reason code 0x{packet.reason_code:02x}"
            self._fail(f"the broker disconnected us: {why}")
            self.close()

    def _send(self, data: bytes) -> None:
        """Queue bytes for one write at the end of this step of the event loop.

        The PUBACKs and ``Ack`` messages of a commit are produced in one go; writing them
        together costs one system call instead of one each.
        """
        if self._error is not None:
            raise self._error
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox += data

    def _flush(self) -> None:
        if self._outbox and self._transport is not None and not self._transport.is_closing():
            self._transport.write(bytes(self._outbox))
        self._outbox.clear()

    def _fail(self, reason: str) -> None:
        if self._error is None:
            self._error = MqttError(reason)
        if not self._connack.done():
            self._connack.set_exception(self._error)
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(self._error)
        self._arrived.set()


@contextlib.asynccontextmanager
async def connect(
    address: BrokerAddress, options: SessionOptions
) -> AsyncIterator[UplinkConnection]:
    """Connect and wait for the CONNACK; leaving the block disconnects cleanly."""
    loop = asyncio.get_running_loop()
    try:
        # asyncio sets TCP_NODELAY on TCP transports: small PUBACKs are not held back.
        _, connection = await asyncio.wait_for(
            loop.create_connection(
                lambda: UplinkConnection(options),
                address.host,
                address.port,
                ssl=tls_context(address),
            ),
            CONNECT_TIMEOUT_S,
        )
    except (OSError, TimeoutError) as exc:
        msg = f"{address}: {exc}" if str(exc) else f"{address}: connection timed out"
        raise MqttError(msg) from exc
    keeper: asyncio.Task[None] | None = None
    try:
        await connection.handshake(address)
        keeper = asyncio.create_task(connection.keep_alive(), name="uplink-keepalive")
        yield connection
        connection.close(clean=True)
    finally:
        if keeper is not None:
            keeper.cancel()
        connection.close()
