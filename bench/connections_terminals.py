"""A worker process of ``bench/connections.py``: thousands of terminals on one edge broker.

Each terminal is one TCP connection that says what an agent says (``edge/agent/runner.py``): an
MQTT 5 CONNECT with a persistent session and its offline presence as last will (QoS 1, retained,
reason ``will``), its downlink subscription, its online presence (QoS 1, retained), then a
heartbeat every 30 s, a full snapshot first and every tenth time, otherwise what changed
(uptime, CPU, memory), and a PINGREQ in between: the agent gives paho half its 30 s keepalive,
and paho pings after 15 s without traffic. Every terminal has its own phase in that 15 s cycle.

A terminal is an ``asyncio.Protocol`` with a few fields, not paho (about 100 µs of CPU a
message) and not a task each: one worker holds 17,000 of them, and the broker, the control plane
and the other workers share the machine's two cores with it. The replies from the broker
(CONNACK, PUBACK, SUBACK, PINGRESP) are not parsed beyond the CONNACK's first byte.

The worker obeys commands from ``bench/connections.py`` over a pipe: ramp, drop (close some
sockets abruptly, without DISCONNECT, so the broker publishes their wills), reconnect, stats.
"""

from __future__ import annotations

import asyncio
import random
import resource
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

from control_plane.uplink import packets
from edge import __version__
from edge.protocol import (
    Channel,
    DeviceKind,
    Heartbeat,
    Network,
    NetworkType,
    OfflineReason,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    Presence,
    PresenceState,
    encode,
)
from edge.protocol import topics as wire

CYCLE_S = 30.0
"""A terminal sends a heartbeat every 30 s, and a PINGREQ half-way between two."""
KEEPALIVE_S = 15
"""What the agent gives paho (half its 30 s keepalive): the broker fires the will after 22.5 s."""
SESSION_EXPIRY_S = 7 * 24 * 3600
"""The agent's ``session_expiry_s``."""
FULL_EVERY = 10
SLOTS = 300
"""The cycle in 100 ms slots; each terminal beats in one of them and pings 150 slots later."""
CONNECTS_IN_FLIGHT = 256
PERIPHERALS = (
    PeripheralStatus(
        name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK
    ),
    PeripheralStatus(name="idcard0", kind=PeripheralKind.ID_CARD_READER, state=PeripheralState.OK),
    PeripheralStatus(name="screen0", kind=PeripheralKind.SCREEN, state=PeripheralState.OK),
)


def connect_with_will(client_id: str, will_topic: str, will_payload: bytes) -> bytes:
    """CONNECT (MQTT 5, section 3.1) with a QoS 1 retained will, as the agent's paho sends it."""
    flags = 0x04 | 0x08 | 0x20  # will flag, will QoS 1, will retain; clean start off
    properties = (
        bytes((packets.Property.SESSION_EXPIRY_INTERVAL,))
        + struct.pack("!I", SESSION_EXPIRY_S)
        + bytes((packets.Property.RECEIVE_MAXIMUM,))
        + struct.pack("!H", 100)
    )
    header = packets.PROTOCOL_NAME + bytes((packets.PROTOCOL_LEVEL, flags))
    header += struct.pack("!H", KEEPALIVE_S) + packets.varint(len(properties)) + properties
    payload = packets.utf8(client_id) + b"\x00" + packets.utf8(will_topic)
    payload += struct.pack("!H", len(will_payload)) + will_payload
    body = header + payload
    return bytes((packets.PacketType.CONNECT << 4,)) + packets.varint(len(body)) + body


class Terminal(asyncio.Protocol):
    """One simulated terminal's connection."""

    __slots__ = ("connacked_at", "device_id", "kind", "lost", "seq", "session", "transport")

    def __init__(self, device_id: str, kind: DeviceKind) -> None:
        self.device_id = device_id
        self.kind = kind
        self.session = 0
        self.seq = 0
        self.transport: asyncio.Transport | None = None
        self.connacked_at = 0.0
        self.lost = False

    def opening(self) -> bytes:
        """CONNECT, SUBSCRIBE and the online presence, written at once (MQTT allows it)."""
        self.session += 1
        self.seq = 0
        will = Presence(
            state=PresenceState.OFFLINE,
            session=self.session,
            reason=OfflineReason.WILL,
            kind=self.kind,
            agent_version=__version__,
        )
        online = Presence(
            state=PresenceState.ONLINE,
            session=self.session,
            at=datetime.now(UTC),
            kind=self.kind,
            agent_version=__version__,
        )
        presence_topic = wire.uplink(self.device_id, Channel.PRESENCE)
        return (
            connect_with_will(self.device_id, presence_topic, encode(will))
            + packets.subscribe(1, [wire.device_downlink_filter(self.device_id)], 1)
            + packets.publish_qos1(presence_topic, encode(online), 2, retain=True)
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream connection
        self.transport = transport
        self.connacked_at = 0.0
        self.lost = False
        transport.write(self.opening())

    def data_received(self, data: bytes) -> None:
        if not self.connacked_at and data[0] >> 4 == packets.PacketType.CONNACK:
            self.connacked_at = time.time()

    def connection_lost(self, exc: Exception | None) -> None:
        del exc
        self.transport = None
        self.lost = True

    def heartbeat(self) -> bytes:
        self.seq += 1
        now = datetime.now(UTC)
        uptime = int(self.seq * CYCLE_S)
        cpu, memory = round(random.uniform(2, 40), 1), round(random.uniform(20, 60), 1)
        if self.seq % FULL_EVERY == 1:
            beat = Heartbeat(
                session=self.session, seq=self.seq, at=now, full=True, uptime_s=uptime,
                cpu_percent=cpu, memory_percent=memory, disk_percent=41.0,
                network=Network(type=NetworkType.ETHERNET), agent_version=__version__,
                os="Kylin V10 (SP1)", hardware_model="bench terminal", outbox_backlog=0,
                peripherals=PERIPHERALS,
            )  # fmt: skip
        else:
            beat = Heartbeat(
                session=self.session, seq=self.seq, at=now, uptime_s=uptime,
                cpu_percent=cpu, memory_percent=memory,
            )  # fmt: skip
        return packets.publish_qos0(wire.uplink(self.device_id, Channel.HEALTH), encode(beat))


@dataclass
class Counters:
    heartbeats: int = 0
    pings: int = 0
    connect_failures: int = 0


class Worker:
    def __init__(self, host: str, port: int, devices: list[tuple[str, DeviceKind]]) -> None:
        self.host, self.port = host, port
        self.terminals = {device: Terminal(device, kind) for device, kind in devices}
        self.slots: list[list[Terminal]] = [[] for _ in range(SLOTS)]
        self.counters = Counters()
        self.ticks = 0
        self.stopping = asyncio.Event()

    async def open(self, terminal: Terminal, gate: asyncio.Semaphore) -> None:
        async with gate:
            loop = asyncio.get_running_loop()
            try:
                await loop.create_connection(lambda: terminal, self.host, self.port)
            except OSError:
                self.counters.connect_failures += 1

    async def ramp(self, rate: float) -> dict[str, Any]:
        """Connect every terminal, ``rate`` a second; place each at a random slot of the cycle."""
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        opening: set[asyncio.Task[None]] = set()
        started = time.time()
        for n, terminal in enumerate(self.terminals.values()):
            self.slots[random.randrange(SLOTS)].append(terminal)
            await asyncio.sleep(max(0.0, started + n / rate - time.time()))
            task = asyncio.create_task(self.open(terminal, gate))
            opening.add(task)
            task.add_done_callback(opening.discard)
        await asyncio.gather(*opening)
        deadline = time.time() + 30
        # Polls: CONNACKs come within milliseconds, or the broker is overwhelmed.
        while time.time() < deadline and any(  # noqa: ASYNC110
            t.transport is not None and not t.connacked_at for t in self.terminals.values()
        ):
            await asyncio.sleep(0.1)
        acked = sorted(t.connacked_at for t in self.terminals.values() if t.connacked_at)
        return {"started": started, "connacked_at": acked}

    async def cycle(self) -> None:
        """Every 100 ms, the terminals of one slot beat, and those half a cycle away ping."""
        tick_at = time.monotonic()
        while not self.stopping.is_set():
            slot = self.ticks % SLOTS
            for terminal in self.slots[slot]:
                if terminal.transport is not None and terminal.connacked_at:
                    terminal.transport.write(terminal.heartbeat())
                    self.counters.heartbeats += 1
            for terminal in self.slots[(slot + SLOTS // 2) % SLOTS]:
                if terminal.transport is not None and terminal.connacked_at:
                    terminal.transport.write(packets.PINGREQ)
                    self.counters.pings += 1
            self.ticks += 1
            tick_at += CYCLE_S / SLOTS
            await asyncio.sleep(max(0.0, tick_at - time.monotonic()))

    async def drop(self, devices: list[str], start_at: float, spacing_s: float) -> dict[str, float]:
        """Close each socket without DISCONNECT, one every ``spacing_s``: the broker sends wills."""
        closed = {}
        for n, device in enumerate(devices):
            await asyncio.sleep(max(0.0, start_at + n * spacing_s - time.time()))
            transport = self.terminals[device].transport
            if transport is not None:
                closed[device] = time.time()
                transport.abort()
        return closed

    async def reconnect(
        self, devices: list[str], start_at: float, spacing_s: float
    ) -> dict[str, float]:
        """Connect each again, with the next session: it says online again."""
        sent = {}
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        tasks = []
        for n, device in enumerate(devices):
            await asyncio.sleep(max(0.0, start_at + n * spacing_s - time.time()))
            sent[device] = time.time()
            tasks.append(asyncio.create_task(self.open(self.terminals[device], gate)))
        await asyncio.gather(*tasks)
        return sent

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        held = sum(1 for t in self.terminals.values() if t.transport is not None and t.connacked_at)
        return {
            "held": held,
            "lost": sum(1 for t in self.terminals.values() if t.lost),
            "heartbeats": self.counters.heartbeats,
            "pings": self.counters.pings,
            "connect_failures": self.counters.connect_failures,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }

    def close_all(self) -> None:
        """A planned stop: DISCONNECT first, so the broker sends no wills."""
        for terminal in self.terminals.values():
            if terminal.transport is not None:
                terminal.transport.write(packets.DISCONNECT)
                terminal.transport.close()


def main(pipe: Connection, host: str, port: int, devices: list[tuple[str, DeviceKind]]) -> None:
    """The worker process: obey commands from ``pipe`` until told to stop."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_serve(pipe, Worker(host, port, devices)))


async def _serve(pipe: Connection, worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    cycling = asyncio.create_task(worker.cycle())
    try:
        while True:
            command = await commands.get()
            op = command["op"]
            if op == "stop":
                worker.stopping.set()
                worker.close_all()
                await asyncio.sleep(0.5)  # let the DISCONNECTs leave
                pipe.send({"stopped": True})
                return
            if op == "ramp":
                pipe.send(await worker.ramp(command["rate"]))
            elif op == "drop":
                pipe.send(await worker.drop(command["devices"], command["at"], command["spacing"]))
            elif op == "reconnect":
                sent = await worker.reconnect(command["devices"], command["at"], command["spacing"])
                pipe.send(sent)
            elif op == "sessions":
                pipe.send({d: worker.terminals[d].session for d in command["devices"]})
            elif op == "stats":
                pipe.send(worker.stats())
    finally:
        loop.remove_reader(pipe.fileno())
        cycling.cancel()
