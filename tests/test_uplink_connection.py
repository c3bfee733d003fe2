"""The ingest's own MQTT connection against a real Mosquitto, and against a broker that lies."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

import pytest

from control_plane import uplink
from control_plane.services.broker import BrokerSettings
from control_plane.services.processes import ManagedProcess, free_port
from control_plane.uplink import packets, reading
from control_plane.uplink.connection import INBOX_LIMIT
from edge import mqtt

pytestmark = pytest.mark.asyncio


def address(broker: BrokerSettings) -> mqtt.BrokerAddress:
    return mqtt.BrokerAddress(broker.host, broker.port)


def options(client_id: str, **overrides: object) -> mqtt.SessionOptions:
    settings: dict[str, object] = {
        "client_id": client_id,
        "clean_start": False,
        "expiry_s": 60,
        "manual_ack": True,
        "max_inflight": 100,
    }
    settings.update(overrides)
    return mqtt.SessionOptions(**settings)  # type: ignore[arg-type]


async def publish(broker: BrokerSettings, topic: str, count: int, client_id: str) -> None:
    async with mqtt.connect(address(broker), mqtt.SessionOptions(client_id=client_id)) as conn:
        for n in range(count):
            await conn.publish(mqtt.Outgoing(topic, str(n).encode(), qos=1))


async def drain(conn: uplink.UplinkConnection, timeout_s: float) -> None:
    """Read until the connection breaks (the caller expects MqttError) or the time is up."""
    async with asyncio.timeout(timeout_s):
        async for _ in conn.arrivals():
            pass


async def receive(conn: uplink.UplinkConnection, count: int) -> list[mqtt.Incoming]:
    got: list[mqtt.Incoming] = []
    async with asyncio.timeout(10):
        async for arrived in conn.arrivals():
            got += arrived
            if len(got) >= count:
                return got
    return got


async def test_messages_not_acknowledged_come_again_and_acknowledged_ones_do_not(
    broker: BrokerSettings, device_prefix: str
) -> None:
    topic = f"{device_prefix}/up"
    session = options(f"{device_prefix}-ingest")
    async with uplink.connect(address(broker), session) as conn:
        await conn.subscribe(topic, qos=1)
        await publish(broker, topic, 6, f"{device_prefix}-pub")
        first = await receive(conn, 6)
        for message in first[:3]:
            conn.ack(message)
        await asyncio.sleep(0.2)  # let the acknowledgements reach the broker before we leave

    async with uplink.connect(address(broker), session) as conn:
        again = await receive(conn, 3)
        for message in again:
            conn.ack(message)

    assert [m.payload for m in first] == [str(n).encode() for n in range(6)]
    assert all(m.qos == 1 and m.mid for m in first)
    assert [m.payload for m in again] == [b"3", b"4", b"5"]


async def test_a_publish_at_qos_0_reaches_a_subscriber(
    broker: BrokerSettings, device_prefix: str
) -> None:
    topic = f"{device_prefix}/down/ack"
    watcher_options = mqtt.SessionOptions(client_id=f"{device_prefix}-watch")
    async with (
        mqtt.connect(address(broker), watcher_options) as watcher,
        uplink.connect(address(broker), options(f"{device_prefix}-ingest")) as conn,
    ):
        await watcher.subscribe(topic, qos=0)
        conn.publish_nowait(mqtt.Outgoing(topic, b'{"seqs":[1]}', qos=0))
        async with asyncio.timeout(10):
            message = await anext(watcher.messages())

        with pytest.raises(ValueError, match="QoS 0 or 1, not 2"):
            conn.publish_nowait(mqtt.Outgoing(topic, b"{}", qos=2))

    assert message.payload == b'{"seqs":[1]}'


async def test_a_flood_of_qos_0_messages_pauses_reading_until_the_ingest_takes_them(
    broker: BrokerSettings, device_prefix: str
) -> None:
    """Heartbeats (QoS 0) have no Receive Maximum: an ingest busy elsewhere must not buffer them.

    Nor may it take its own pause for a silent broker (keepalive 1 s, paused for 3 s).
    """
    topic = f"{device_prefix}/up/health"
    sent = 3 * INBOX_LIMIT
    async with (
        uplink.connect(address(broker), options(f"{device_prefix}-ingest", keepalive_s=1)) as conn,
        uplink.connect(address(broker), options(f"{device_prefix}-fleet")) as fleet,
    ):
        await conn.subscribe(topic, qos=0)
        for n in range(sent):
            fleet.publish_nowait(mqtt.Outgoing(topic, str(n).encode(), qos=0))
        async with asyncio.timeout(10):
            while conn.waiting < INBOX_LIMIT:  # noqa: ASYNC110 - nothing to wait on but the reads
                await asyncio.sleep(0.01)
        await asyncio.sleep(3)  # the ingest is busy: nothing taken for three keepalives
        paused_while_busy = conn.reading_paused
        assert paused_while_busy
        assert INBOX_LIMIT <= conn.waiting < 2 * INBOX_LIMIT

        got: list[mqtt.Incoming] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                async for arrived in conn.arrivals():
                    got += arrived
                    assert conn.waiting < 2 * INBOX_LIMIT
        assert not conn.reading_paused
    # The broker kept what did not fit its queue for a slow reader, or dropped it (QoS 0).
    assert 2 * INBOX_LIMIT <= len(got) <= sent
    assert [int(m.payload) for m in got] == sorted(int(m.payload) for m in got)


async def test_qos_1_publishes_all_arrive_and_are_acknowledged(
    broker: BrokerSettings, device_prefix: str
) -> None:
    """More at once than the broker's Receive Maximum (1,000): the rest wait their turn."""
    topic, count = f"{device_prefix}/up/usage", 2_500
    async with (
        uplink.connect(address(broker), options(f"{device_prefix}-watch")) as watcher,
        uplink.connect(address(broker), options(f"{device_prefix}-terminal")) as conn,
    ):
        await watcher.subscribe(topic, qos=1)
        for n in range(count):
            conn.publish_nowait(mqtt.Outgoing(topic, str(n).encode(), qos=1))
        waiting = conn.unacknowledged
        got: list[mqtt.Incoming] = []
        async with asyncio.timeout(20):
            async for arrived in watcher.arrivals():
                for message in arrived:
                    watcher.ack(message)
                got += arrived
                if len(got) >= count:
                    break
        async with asyncio.timeout(10):
            while conn.unacknowledged:  # noqa: ASYNC110 - a count, polled until it drains
                await asyncio.sleep(0.01)

    assert waiting == count
    assert [m.payload for m in got] == [str(n).encode() for n in range(count)]


async def test_qos_1_publishes_beyond_the_receive_maximum_wait_for_pubacks() -> None:
    connack_receive_maximum_2 = b"\x20\x06\x00\x00\x03\x21\x00\x02"
    received: asyncio.Queue[list[tuple[int, bytes]]] = asyncio.Queue()
    acknowledge: asyncio.Queue[bytes] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # CONNECT
        writer.write(connack_receive_maximum_2)
        parse = ClientPackets()
        while data := await reader.read(1024):
            await received.put(parse.feed(data))
            writer.write(await acknowledge.get())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    fake = mqtt.BrokerAddress("127.0.0.1", server.sockets[0].getsockname()[1])
    async with server, uplink.connect(fake, options("terminal")) as conn:
        for n in range(4):
            conn.publish_nowait(mqtt.Outgoing("u/x", str(n).encode(), qos=1))
        first = await asyncio.wait_for(received.get(), 5)
        await acknowledge.put(packets.puback(1))
        second = await asyncio.wait_for(received.get(), 5)
        left = conn.unacknowledged
        await acknowledge.put(b"")

    assert first == [(1, b"0"), (2, b"1")]  # two in flight, as the broker allows
    assert second == [(3, b"2")]  # one more once the first was acknowledged
    assert left == 3  # messages 1 and 2 in flight, message 3 held back


class ClientPackets:
    """The (packet id, payload) of each PUBLISH a client sends: the packet reads the same."""

    def __init__(self) -> None:
        self._reader = reading.PacketReader(1024)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        read = self._reader.feed(data)
        return [(p.packet_id, p.payload) for p in read if isinstance(p, reading.Publish)]


async def test_a_filter_the_broker_cannot_take_ends_the_connection_with_its_reason(
    broker: BrokerSettings, device_prefix: str
) -> None:
    # Mosquitto answers a filter deeper than it allows with DISCONNECT, not a SUBACK failure.
    too_deep = "/".join(["x"] * 300)
    async with uplink.connect(address(broker), options(f"{device_prefix}-ingest")) as conn:
        with pytest.raises(mqtt.MqttError, match="disconnected us: reason code 0x81"):
            await conn.subscribe(too_deep, qos=1)


async def test_no_broker_there_is_a_clear_error() -> None:
    nobody = mqtt.BrokerAddress("127.0.0.1", free_port())

    with pytest.raises(mqtt.MqttError, match=f"mqtt://127.0.0.1:{nobody.port}"):
        async with uplink.connect(nobody, options("nobody")):
            pass


async def test_a_hung_broker_is_noticed_within_the_keepalive(
    own_broker: tuple[BrokerSettings, ManagedProcess], device_prefix: str
) -> None:
    settings, process = own_broker
    keepalive_s = 2
    session = options(f"{device_prefix}-ingest", keepalive_s=keepalive_s)
    async with uplink.connect(address(settings), session) as conn:
        await conn.subscribe(f"{device_prefix}/up", qos=1)
        process.signal(signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(mqtt.MqttError, match="silent"):
                await drain(conn, 4 * keepalive_s)
            noticed_s = time.monotonic() - started
        finally:
            process.signal(signal.SIGCONT)

    print(  # noqa: T201 - the issue asks each reliability test to report its figures
        f"hung broker noticed after {noticed_s:.1f}s (keepalive {keepalive_s}s)"
    )
    assert noticed_s <= keepalive_s * 2  # a keepalive of silence, noticed at the next tick


@contextlib.asynccontextmanager
async def lying_broker(*replies: bytes) -> AsyncIterator[mqtt.BrokerAddress]:
    """A server that answers each packet the client sends with the next of ``replies``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            await reader.read(1024)
            writer.write(reply)
            await writer.drain()
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield mqtt.BrokerAddress("127.0.0.1", port)


CONNACK_OK = b"\x20\x03\x00\x00\x00"


@pytest.mark.parametrize(
    ("reply", "complaint"),
    [
        (b"\x20\x03\x00\x87\x00", "refused the connection: reason code 0x87"),
        (b"\x20\x10\x00\x86\x0d\x1f\x00\x0abad secret", "refused the connection: bad secret"),
        (b"\x10\x00", "malformed packet: unexpected CONNECT"),
    ],
)
async def test_a_refusal_or_garbage_instead_of_a_connack_is_a_clear_error(
    reply: bytes, complaint: str
) -> None:
    async with lying_broker(reply) as fake:
        with pytest.raises(mqtt.MqttError, match=complaint):
            async with uplink.connect(fake, options("liar")):
                pass


async def test_a_suback_failure_is_an_error_naming_the_filter() -> None:
    suback_not_authorized = b"\x90\x04\x00\x01\x00\x87"
    async with (
        lying_broker(CONNACK_OK, suback_not_authorized) as fake,
        uplink.connect(fake, options("liar")) as conn,
    ):
        with pytest.raises(mqtt.MqttError, match=r"refused the subscription to secret/\+ \(0x87\)"):
            await conn.subscribe("secret/+", qos=1)


async def test_garbage_after_the_connack_ends_the_connection_with_an_error() -> None:
    garbage = b"\x30\xff\xff\xff\xff\x01"
    async with (
        lying_broker(CONNACK_OK, garbage) as fake,
        uplink.connect(fake, options("liar")) as conn,
    ):
        with pytest.raises(mqtt.MqttError, match="malformed packet: remaining length longer"):
            await conn.subscribe("t/+", qos=1)
        with pytest.raises(mqtt.MqttError, match="longer than four bytes"):
            await drain(conn, 5)
        with pytest.raises(mqtt.MqttError):
            conn.ack(mqtt.Incoming("t", b"", retain=False, qos=1, mid=1))
