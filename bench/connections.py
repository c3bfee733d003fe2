"""Connections: 50,000+ terminals held across several brokers, and how fast presence moves.

One Mosquitto process holds at most about 19,900 connections on a machine that caps a process
at 20,000 open files. Here the terminals are spread over several *edge* Mosquittos (≤ 17,000
each), each bridged to one *core* Mosquitto that the control plane (`termfleet server run`, SQLite)
subscribes to as it is deployed, with one broker URL (``bench/connections_brokers.py`` says
why a bridge rather than several listeners). One worker process per edge broker holds its
terminals, each saying what an agent says: a last will, an online presence, a heartbeat every
30 s and a ping between (``bench/connections_terminals.py``).

Measured, in one run:

- the ramp: every terminal connects in a paced ramp (1,000/s asked); when half, 99 % and all
  of the CONNACKs came, and when the control plane counts them all online (``termfleet_devices``
  on ``/metrics``) and has handled the heartbeats sent. The terminals are not registered: the
  control plane records a terminal it does not know at its first presence, as it does for an
  enrolled one;
- a steady window with every terminal held: CPU and RSS of each broker, each worker and the
  control plane, and the control plane's CPU per heartbeat;
- presence latency on a sample of terminals, while all others stay held: each sampled terminal's
  socket is closed without DISCONNECT (its edge broker publishes its will at once: the will is
  sent when the broker sees the socket close, not after the keepalive), one after another over
  ``SPREAD_S``; later each connects again and says online. For each: from the close (or the new
  connection) to the message's arrival at a subscriber on the core broker (edge broker and
  bridge), and to the moment the control plane's device list shows it (polled every 250 ms);
- at the end, that the control plane counts all N terminals online.

    python -m bench.connections [--quick] [--terminals N] [--brokers B]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench import connections_probe as probe
from bench import connections_terminals as terminals
from bench.connections_brokers import ControlPlane, Topology, control_plane, topology
from bench.connections_report import (
    CATCH_UP_S,
    CAUGHT_UP,
    PER_BROKER_MAX,
    SPREAD_S,
    Latencies,
    Results,
    report,
)
from edge import mqtt
from edge.protocol import Channel, DeviceKind, OfflineReason, PresenceState


class Fleet:
    """The worker processes, one per edge broker, and the terminals each holds."""

    def __init__(self, top: Topology, total: int, sample: int) -> None:
        edges = len(top.edges)
        self.devices: list[list[tuple[str, DeviceKind]]] = []
        for edge in range(edges):
            count = len(range(edge, total, edges))
            every = max(1, count * edges // sample)  # the sample spread evenly over the brokers
            self.devices.append(
                [
                    (
                        f"conn-{edge}-{n:05d}",
                        probe.SAMPLE_KIND if n % every == 0 else DeviceKind.KIOSK,
                    )
                    for n in range(count)
                ]
            )
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for broker, devices in zip(top.edges, self.devices, strict=True):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=terminals.main, args=(theirs, broker.host, broker.port, devices), daemon=True
            )
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def sample(self, worker: int) -> list[str]:
        return [d for d, kind in self.devices[worker] if kind is probe.SAMPLE_KIND]

    async def ask_all(self, commands: list[dict[str, Any]]) -> list[Any]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        return [await asyncio.to_thread(pipe.recv) for pipe in self.pipes]

    async def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            await asyncio.wait_for(self.ask_all([{"op": "stop"}] * len(self.pipes)), 30)
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


async def measure(total: int, edges: int, sample: int, steady_s: float, rate: float) -> str:
    results = Results(total, edges, rate, steady_s=steady_s)
    with (
        tempfile.TemporaryDirectory(prefix="termfleet-connections-") as tmp,
        topology(Path(tmp), edges) as top,
        control_plane(Path(tmp), top.core) as cp,
    ):
        fleet = Fleet(top, total, sample)
        try:
            async with aiohttp.ClientSession() as http:
                await _measure(top, cp, fleet, http, results)
        finally:
            await fleet.stop()
    return report(results)


async def _measure(
    top: Topology, cp: ControlPlane, fleet: Fleet, http: aiohttp.ClientSession, r: Results
) -> None:
    workers = len(fleet.pipes)
    r.loads.append(os.getloadavg())
    # The ramp, and the control plane catching up with it.
    ramp_started = time.time()
    ramp = asyncio.ensure_future(
        fleet.ask_all([{"op": "ramp", "rate": r.rate / workers}] * workers)
    )
    while time.time() - ramp_started < CATCH_UP_S:
        await asyncio.sleep(2)
        if ramp.done() and await _caught_up(fleet, http, cp, r.total):
            r.catch_up_s = time.time() - ramp_started
            break
    ramps = await ramp
    started = min(part["started"] for part in ramps)
    r.connacked_s = sorted(t - started for part in ramps for t in part["connacked_at"])
    # The steady window, once every terminal's first heartbeat is behind: that one writes its
    # inventory (agent, OS, peripherals) for the first time, which later ones do not.
    last_connected = started + max(r.connacked_s, default=0.0)
    await asyncio.sleep(max(0.0, last_connected + terminals.CYCLE_S + 2 - time.time()))
    pids = {"core broker": top.processes["core"].pid}
    pids |= {f"edge broker {n}": top.processes[f"edge-{n}"].pid for n in range(len(top.edges))}
    pids["control plane"] = cp.server.pid
    pids |= {f"worker {n}": p.pid for n, p in enumerate(fleet.processes) if p.pid is not None}
    procs = {name: psutil.Process(pid) for name, pid in pids.items()}
    r.connections = {name: _tcp_connections(p) for name, p in procs.items() if "broker" in name}
    cpu0 = {name: _cpu(p) for name, p in procs.items()}
    handled0 = await probe.ingest_messages(http, cp.api, Channel.HEALTH)
    sent0 = sum(s["heartbeats"] for s in await fleet.ask_all([{"op": "stats"}] * workers))
    await asyncio.sleep(r.steady_s)
    r.beats_sent = sum(s["heartbeats"] for s in await fleet.ask_all([{"op": "stats"}] * workers))
    r.beats_sent -= sent0
    r.beats_handled = await probe.ingest_messages(http, cp.api, Channel.HEALTH) - handled0
    r.cpu_s = {name: _cpu(p) - cpu0[name] for name, p in procs.items()}
    r.rss = {name: p.memory_info().rss for name, p in procs.items()}
    r.loads.append(os.getloadavg())
    # Presence latency: drops, then reconnections.
    samples = [fleet.sample(w) for w in range(workers)]
    everyone = [device for part in samples for device in part]
    watch = probe.CoreWatch(mqtt.BrokerAddress(top.core.host, top.core.port), everyone)
    watching = asyncio.create_task(watch.run())
    await asyncio.wait_for(watch.ready(), 30)
    try:
        r.drop = await _event(fleet, watch, http, cp, samples, reconnect=False)
        r.back = await _event(fleet, watch, http, cp, samples, reconnect=True)
    finally:
        watching.cancel()
    await asyncio.sleep(3)
    r.presence = dict(await probe.fleet_presence(http, cp.api))
    r.held = sum(s["held"] for s in await fleet.ask_all([{"op": "stats"}] * workers))
    r.loads.append(os.getloadavg())


async def _event(  # noqa: PLR0913 - the event and its observers
    fleet: Fleet,
    watch: probe.CoreWatch,
    http: aiohttp.ClientSession,
    cp: ControlPlane,
    samples: list[list[str]],
    *,
    reconnect: bool,
) -> Latencies:
    """Drop or reconnect the sample; the latencies to the core broker and to the API."""
    state = PresenceState.ONLINE if reconnect else PresenceState.OFFLINE
    watch.clear()
    # The session each terminal is in: its will carries it, its next connection the one after.
    sessions: dict[str, int] = {}
    for part in await fleet.ask_all([{"op": "sessions", "devices": s} for s in samples]):
        sessions |= part
    reason = "" if reconnect else OfflineReason.WILL.value
    awaited = {
        device: (state, sessions.get(device, 0) + int(reconnect), reason)
        for s in samples
        for device in s
    }
    at = time.time() + 1.0
    op = "reconnect" if reconnect else "drop"
    commands = [
        {"op": op, "devices": s, "at": at, "spacing": SPREAD_S / max(1, len(s))} for s in samples
    ]
    asked = asyncio.ensure_future(fleet.ask_all(commands))
    seen, polls = await probe.poll_devices(http, cp.api, cp.token, awaited, SPREAD_S + 60)
    started: dict[str, float] = {}
    for part in await asked:
        started |= part
    core = [watch.arrived[d, state] - t for d, t in started.items() if (d, state) in watch.arrived]
    api = [seen[d] - t for d, t in started.items() if d in seen]
    return Latencies(len(started), core, api, polls)


async def _caught_up(
    fleet: Fleet, http: aiohttp.ClientSession, cp: ControlPlane, total: int
) -> bool:
    """Whether the control plane counts every terminal online and has handled their heartbeats."""
    if (await probe.fleet_presence(http, cp.api))["online"] < total:
        return False
    stats = await fleet.ask_all([{"op": "stats"}] * len(fleet.pipes))
    sent: int = sum(s["heartbeats"] for s in stats)
    return await probe.ingest_messages(http, cp.api, Channel.HEALTH) >= CAUGHT_UP * sent


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _tcp_connections(process: psutil.Process) -> int:
    return sum(1 for c in process.net_connections("tcp") if c.status == psutil.CONN_ESTABLISHED)


def run(*, quick: bool = False, terminals_n: int | None = None, brokers: int | None = None) -> str:
    total = terminals_n or (6_000 if quick else 51_000)
    edges = brokers or max(2 if quick else 3, -(-total // PER_BROKER_MAX))
    sample = 100 if quick else 300
    steady_s = 20.0 if quick else 60.0
    rate = 1_000.0
    return asyncio.run(measure(total, edges, sample, steady_s, rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--terminals", type=int, default=None)
    parser.add_argument("--brokers", type=int, default=None)
    args = parser.parse_args()
    print(run(quick=args.quick, terminals_n=args.terminals, brokers=args.brokers))


if __name__ == "__main__":
    main()
