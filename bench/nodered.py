"""Node-RED as a peer in the ingest ladder: MQTT in → JSON → SQLite, beside the broker alone.

What people build for this job without termfleet: Node-RED (pinned by
``bench/nodered/package-lock.json``, installed on first use by ``bench/nodered_install.py``)
running ``bench/nodered/flows.json``: an MQTT-in node (QoS 1, MQTT v5, the uplink filter the
ingest subscribes to), a JSON node, a function node that turns a message into one message per
record, and ``node-red-node-sqlite`` inserting each record with a prepared statement (device id
from the topic, seq, the record's ``at``, and SQLite's clock at the insert). The database is WAL
with ``synchronous=FULL``, as durable as termfleet's, and keyed on (device, seq) as the ingest is.
Each insert is its own transaction: the node runs one statement per message and offers no
transaction across messages.

Same load as ``bench/ingest.py`` (``bench/loadgen.py``, no acks to wait for), against
``mosquitto_sub -q 1`` on its own broker in the same run. Delivered = rows in SQLite once their
count stands still while Node-RED idles (at most ``ACK_WAIT_S`` after the load); latency =
insert time - the record's ``at``, which the generator stamps just before publishing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import nodered_flow, nodered_report
from bench.ingest import Consumer, Result, run_reference
from bench.loadgen import ACK_WAIT_S, Load, run_load
from bench.nodered_install import NodeRedInstall, NodeRedUnavailableError, ensure_installed
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import free_port

DEVICES = 200
"""Device connections, as in bench/ingest.py."""
SETTLED_S = 3.0
"""The row count has stopped growing when it has not moved for this long."""
IDLE_CPU_SHARE = 0.05
"""Node-RED idles when it uses less than this share of a core."""
POLL_S = 0.5
MIN_FOR_P99 = 100


@dataclass(frozen=True)
class NodeRedRun:
    load: Load
    delivered: int
    """Distinct (device, seq) rows in SQLite, the probe's left out."""
    sent: int
    elapsed_s: float
    """From the first publish to the later of the last publish and the last insert."""
    p50_ms: float | None
    p99_ms: float | None
    cpu_s: float
    """Node-RED's user + system CPU (with any children) from the load's start until settled."""
    rss_mib: float
    """The largest RSS seen from the load's start until settled."""
    versions: dict[str, str]
    pragmas: str
    """journal_mode and synchronous as the flow read them back from its own connection."""
    idle_share: float | None = None
    """The machine's CPU left idle during the load (``LoadResult.idle_share``)."""

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def cpu_us_per_record(self) -> float:
        return self.cpu_s / max(self.delivered, 1) * 1e6


def run_nodered(workdir: Path, load: Load, install: NodeRedInstall | None = None) -> NodeRedRun:
    """``load`` into Node-RED on its own broker; NodeRedUnavailableError if it cannot run."""
    install = install or ensure_installed()
    broker = BrokerSettings(workdir / "nodered-broker", free_port())
    broker_process = start_broker(broker)
    try:
        userdir = workdir / "nodered"
        database = userdir / nodered_flow.DATABASE
        with nodered_flow.node_red(install, userdir, broker) as process:
            nodered_flow.wait_flow_ready(process, broker, database)
            watch = psutil.Process(process.pid)
            cpu_before = _cpu_s(watch)
            with _peak_rss(watch) as peak:
                no_acks = dataclasses.replace(load, want_acks=False)
                result = run_load(broker.host, broker.port, no_acks)
                _wait_settled(database, result.sent, watch)
            if not process.alive():
                msg = (
                    f"Node-RED died during the load ({process.returncode()}): {process.log_tail()}"
                )
                raise NodeRedUnavailableError(msg)
            cpu = _cpu_s(watch) - cpu_before
            # Read while Node-RED runs: rows it would still insert while stopping came too late.
            rows = nodered_flow.published_and_inserted(database)
            pragmas = nodered_flow.pragmas_logged(process)
    finally:
        broker_process.stop()
    latencies = sorted(inserted - published for published, inserted in rows)
    first_publish = min((published for published, _ in rows), default=0.0)
    last_insert = max((inserted for _, inserted in rows), default=0.0)
    return NodeRedRun(
        load=load,
        delivered=len(rows),
        sent=result.sent,
        elapsed_s=max(result.elapsed_s, last_insert - first_publish),
        p50_ms=latencies[len(latencies) // 2] * 1000 if latencies else None,
        p99_ms=_p99(latencies),
        cpu_s=cpu,
        rss_mib=peak[0] / 2**20,
        versions=install.versions(),
        pragmas=pragmas,
        idle_share=result.idle_share,
    )


def _p99(ordered: list[float]) -> float | None:
    """In ms, as bench/ingest.py takes it; None from too few samples to mean anything."""
    return ordered[int(len(ordered) * 0.99) - 1] * 1000 if len(ordered) >= MIN_FOR_P99 else None


def _wait_settled(database: Path, sent: int, watch: psutil.Process) -> None:
    """Until every record is in, or the count stands still while Node-RED idles, or ACK_WAIT_S.

    A count that stands still is not enough: on a busy machine Node-RED can go seconds without
    an insert while it still works through what it has received.
    """
    deadline = time.monotonic() + ACK_WAIT_S
    last, moved_at, cpu_at_move = -1, time.monotonic(), _cpu_s(watch)
    while time.monotonic() < deadline:
        count = nodered_flow.count_rows(database)
        if count >= sent:
            return
        if count != last:
            last, moved_at, cpu_at_move = count, time.monotonic(), _cpu_s(watch)
        elif time.monotonic() - moved_at >= SETTLED_S:
            idle = _cpu_s(watch) - cpu_at_move < IDLE_CPU_SHARE * (time.monotonic() - moved_at)
            if idle:
                return
        time.sleep(POLL_S)


def _cpu_s(watch: psutil.Process) -> float:
    total = 0.0
    for process in [watch, *watch.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


@contextlib.contextmanager
def _peak_rss(watch: psutil.Process) -> Iterator[list[int]]:
    """The largest RSS of ``watch`` seen every POLL_S while inside, in ``peak[0]`` (bytes)."""
    peak = [watch.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(POLL_S):
            with contextlib.suppress(psutil.NoSuchProcess):
                peak[0] = max(peak[0], watch.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()
        with contextlib.suppress(psutil.NoSuchProcess):
            peak[0] = max(peak[0], watch.memory_info().rss)


def ladder(*, quick: bool) -> list[Load]:
    steps = [(1_000, 1), (10_000, 100)] if quick else [(5_000, 1), (20_000, 1), (20_000, 100)]
    duration_s = 5.0 if quick else 10.0
    return [
        Load(rate=rate, duration_s=duration_s, devices=DEVICES, records_per_message=per_message)
        for rate, per_message in steps
    ]


LADDER_NAME = "Node-RED (MQTT in → SQLite; latency to the insert)"


def ladder_consumer() -> tuple[Consumer | None, str]:
    """Node-RED as a row of ``bench/ingest.py``'s ladder, or None and why it cannot run here.

    A step Node-RED fails at (it died, never got ready) counts as nothing delivered.
    """
    try:
        install = ensure_installed()
    except NodeRedUnavailableError as exc:
        return None, nodered_report.quoted(str(exc))

    def consume(workdir: Path, load: Load) -> Result:
        try:
            peer = run_nodered(workdir, load, install)
        except NodeRedUnavailableError as exc:
            print(f"bench/nodered.py: {exc}", file=sys.stderr)
            return Result(LADDER_NAME, load, 0.0, 0, 0, None, None, None, None)
        return Result(
            LADDER_NAME,
            load,
            peer.delivered_per_s,
            peer.delivered,
            peer.sent,
            peer.p50_ms,
            peer.p99_ms,
            peer.cpu_us_per_record,
            peer.rss_mib,
            None if peer.idle_share is None else peer.idle_share * 100,
        )

    versions = ", ".join(f"{name} {version}" for name, version in install.versions().items())
    return consume, versions


def run(*, quick: bool = False) -> str:
    """Each step against ``mosquitto_sub -q 1``; says so plainly if Node-RED cannot run here."""
    try:
        install = ensure_installed()
    except NodeRedUnavailableError as exc:
        return nodered_report.unavailable(str(exc))
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, load in enumerate(ladder(quick=quick)):
            workdir = Path(tmp) / str(n)
            reference = run_reference(workdir, load)
            try:
                peer: NodeRedRun | str = run_nodered(workdir, load, install)
            except NodeRedUnavailableError as exc:
                peer = str(exc)
            steps.append((reference, peer))
    return nodered_report.report(steps)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
