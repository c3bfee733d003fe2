"""The edge agent beside ThingsBoard's IoT Gateway doing comparable work: idle and under a burst.

Both run at the same time against one real Mosquitto, measured from outside with psutil:

- **the agent** (``bench/tb_gateway_agent.py``: ``python -m edge.agent`` plus a burst trigger)
  connected to the real control plane (``termfleet server run`` on SQLite), its heartbeat set to
  every ``INTERVAL_S`` seconds, its outbox SQLite in WAL with an fsync per record;
- **the gateway** (``thingsboard-gateway`` from PyPI, installed by ``bench/tb_gateway_setup.py``)
  taking the broker for ThingsBoard (``bench/tb_gateway_upstream.py`` answers the one request
  that must be answered), with SQLite storage and its MQTT connector subscribed to a sensor topic
  on which the bench publishes one reading every ``INTERVAL_S`` seconds.

Idle: once both are up, after a settle, CPU over a window, RSS and USS at its end. Burst: each
in turn, the other idling meanwhile, takes N records as fast as it accepts them (the agent
through ``Agent.record``, the gateway from ``mosquitto_pub -l`` on its sensor topic), timed until
every one has arrived at the broker upstream (a subscriber counting distinct ``seq``), and for
the agent also until the control plane has acknowledged every one (its outbox empty); CPU
seconds per record and the peak RSS (``VmHWM``). Ratios are the agent's over the gateway's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.agent import cpu_s, reporting
from bench.stand import Stand, stand
from bench.tb_gateway_report import Burst, Idle, report, unavailable
from bench.tb_gateway_setup import (
    GatewayUnavailableError,
    gateway_argv,
    gateway_venv,
    installed_version,
    write_config,
)
from bench.tb_gateway_upstream import BURST_SEQ_FROM, READINGS_TOPIC, TS_BASE_MS, Upstream, reading
from control_plane.services.processes import ManagedProcess
from edge.agent.outbox import OUTBOX_FILE

INTERVAL_S = 5.0
"""Telemetry period on both sides: the agent's heartbeat, the sensor's readings."""
AGENT_DEVICE = "bench-kiosk-beside-gateway"
READY_WAIT_S = 90.0
SETTLE_S = 10.0
"""After both are up: the gateway's start-up work (its first statistics, device connect) done."""
BURST_LIMIT_S = 300.0
"""The agent's burst is bound by an fsync per record: minutes on a slow disk."""
POLL_S = 0.05
PROBE_COMMITS = 200
UPDATE_CHECK_FAILED = "Cannot connect to the update service"
"""What the gateway logs when its update check (at start, then hourly) gets no answer."""


@dataclass(frozen=True)
class Subjects:
    agent: ManagedProcess
    gateway: ManagedProcess
    outbox: Path


def run(*, quick: bool = False) -> str:
    window_s = 10.0 if quick else 30.0
    records = 2_000 if quick else 10_000
    rounds = 1 if quick else 2
    try:
        venv = gateway_venv()
        version = installed_version(venv)
    except (GatewayUnavailableError, subprocess.SubprocessError, OSError) as exc:
        return unavailable(f"thingsboard-gateway could not be installed or found: {exc}")
    try:
        return measure(venv, version, window_s, records, rounds)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        # ProcessError (a subject that never got ready, a stand that did not start) included.
        return unavailable(f"the run failed: {exc}")


def measure(venv: Path, version: str, window_s: float, records: int, rounds: int) -> str:
    with (
        tempfile.TemporaryDirectory() as tmp,
        stand(Path(tmp), with_token=True) as bench,
        contextlib.closing(
            Upstream(bench.broker.host, bench.broker.port, AGENT_DEVICE, INTERVAL_S)
        ) as upstream,
        subjects(bench, venv, upstream, records) as both,
    ):
        time.sleep(SETTLE_S)
        idle = measure_idle(both, upstream, window_s, bench.broker.port)
        commit_s = durable_commit_s(bench.workdir / "fsync-probe.sqlite3")
        bursts = []
        for n in range(rounds):
            bursts.append(agent_burst(both, upstream, records))
            bursts.append(gateway_burst(both, bench, upstream, records, first_seq(n, records)))
        offline = UPDATE_CHECK_FAILED in both.gateway.log_path.read_text(errors="replace")
    return report(
        version,
        interval_s=INTERVAL_S,
        settle_s=SETTLE_S,
        idle=idle,
        bursts=bursts,
        commit_s=commit_s,
        update_check_failed=offline,
    )


# --- the two processes ------------------------------------------------------------------------


@contextlib.contextmanager
def subjects(bench: Stand, venv: Path, upstream: Upstream, records: int) -> Iterator[Subjects]:
    """Both started (the gateway first: it takes longer) and ready; both stopped on the way out."""
    gateway_dir = bench.workdir / "tb-gateway"
    config_dir = write_config(venv, gateway_dir, bench.broker.host, bench.broker.port)
    gateway = ManagedProcess(
        "thingsboard-gateway",
        gateway_argv(venv),
        gateway_dir / "gateway.log",
        env={**os.environ, "TB_GW_CONFIG_DIR": str(config_dir)},
        cwd=gateway_dir,
    )
    config = agent_config(bench)
    argv = [sys.executable, "-m", "bench.tb_gateway_agent", "--config", str(config),
            "--burst", str(records)]  # fmt: skip
    agent = ManagedProcess("agent", argv, bench.workdir / "agent.log")
    try:
        gateway.start()
        agent.start()
        wait_until(gateway, lambda: gateway_ready(upstream))
        wait_until(agent, lambda: reporting(bench, AGENT_DEVICE)(agent))
        yield Subjects(agent, gateway, bench.workdir / AGENT_DEVICE / OUTBOX_FILE)
    finally:
        agent.stop()
        gateway.stop()


def agent_config(bench: Stand) -> Path:
    """As provisioning writes it, with the heartbeat every ``INTERVAL_S``; defaults else."""
    path = bench.workdir / f"{AGENT_DEVICE}.toml"
    path.write_text(
        f'device_id = "{AGENT_DEVICE}"\nkind = "kiosk"\n'
        f'state_dir = "{bench.workdir / AGENT_DEVICE}"\n'
        f'[broker]\nurl = "{bench.broker.url}"\n'
        f"[telemetry]\nheartbeat_interval_s = {INTERVAL_S}\n"
    )
    return path


def gateway_ready(upstream: Upstream) -> bool:
    """Its session limits answered and a first sensor reading through to the broker."""
    return upstream.session_limits_answered.is_set() and upstream.gateway_readings() > 0


def wait_until(process: ManagedProcess, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_WAIT_S
    while not ready():
        if not process.alive() or time.monotonic() > deadline:
            msg = f"{process.name} did not get ready: {process.log_tail()}"
            raise RuntimeError(msg)
        time.sleep(POLL_S * 4)


# --- measuring --------------------------------------------------------------------------------


def thread_cpu_s(process: psutil.Process) -> tuple[float, frozenset[int]]:
    """CPU seconds of the live threads to the nanosecond (schedstat), and which threads they are.

    An idle agent uses a tick or two in half a minute, too few for the 10 ms ticks of
    ``cpu_times``; but schedstat forgets a thread once it has exited, which ticks do not.
    """
    total, tids = 0.0, []
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0]) / 1e9
            tids.append(int(task.name))
    return total, frozenset(tids)


def peak_rss_bytes(process: psutil.Process) -> int:
    """``VmHWM``: the most RSS the process has ever had."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def measure_idle(
    both: Subjects, upstream: Upstream, window_s: float, broker_port: int
) -> list[Idle]:
    watched = [psutil.Process(both.agent.pid), psutil.Process(both.gateway.pid)]
    fine_before = [thread_cpu_s(p) for p in watched]
    ticks_before = [cpu_s(p) for p in watched]
    telemetry_before = (upstream.agent_heartbeats(), upstream.gateway_readings())
    started = time.monotonic()
    time.sleep(window_s)
    elapsed = time.monotonic() - started
    telemetry = (upstream.agent_heartbeats(), upstream.gateway_readings())
    rows = []
    for n, (name, process) in enumerate(zip(("agent", "gateway"), watched, strict=True)):
        fine, tids = thread_cpu_s(process)
        # Threads that came and went in the window took their schedstat time with them.
        same_threads = tids == fine_before[n][1]
        cpu = fine - fine_before[n][0] if same_threads else cpu_s(process) - ticks_before[n]
        memory = process.memory_full_info()
        rows.append(
            Idle(
                name=name,
                rss_bytes=memory.rss,
                uss_bytes=memory.uss,
                cpu_percent=cpu / elapsed * 100,
                threads=process.num_threads(),
                connections=sum(
                    getattr(c.raddr, "port", None) == broker_port
                    for c in process.net_connections("tcp")
                ),
                telemetry_sent=telemetry[n] - telemetry_before[n],
                window_s=elapsed,
            )
        )
    return rows


def durable_commit_s(path: Path, commits: int = PROBE_COMMITS) -> float:
    """Seconds per SQLite commit in WAL with ``synchronous=FULL``, one small row each, here.

    What the agent's outbox pays for every record it is given: the floor of its burst's time.
    """
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE probe (payload BLOB)")
        started = time.monotonic()
        for _ in range(commits):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO probe VALUES (?)", (bytes(160),))
            db.execute("COMMIT")
        return (time.monotonic() - started) / commits


def first_seq(round_no: int, records: int) -> int:
    return BURST_SEQ_FROM + round_no * records


def agent_burst(both: Subjects, upstream: Upstream, records: int) -> Burst:
    watch = psutil.Process(both.agent.pid)
    before, cpu_before = upstream.agent_records(), cpu_s(watch)
    messages_before = upstream.messages("agent")
    started = time.monotonic()
    both.agent.signal(signal.SIGUSR1)
    arrived_s = wait_for(lambda: upstream.agent_records() - before >= records, both.agent, started)
    with contextlib.closing(sqlite3.connect(both.outbox, timeout=10)) as outbox:
        empty_s = wait_for(lambda: outbox_empty(outbox), both.agent, started)
    return Burst(
        name="agent",
        records=upstream.agent_records() - before,
        messages=upstream.messages("agent") - messages_before,
        arrived_s=arrived_s,
        acknowledged_s=empty_s,
        cpu_s=cpu_s(watch) - cpu_before,
        peak_rss_bytes=peak_rss_bytes(watch),
    )


def outbox_empty(outbox: sqlite3.Connection) -> bool:
    (left,) = outbox.execute("SELECT count(*) FROM record").fetchone()
    return int(left) == 0


def gateway_burst(
    both: Subjects, bench: Stand, upstream: Upstream, records: int, first: int
) -> Burst:
    lines = b"".join(
        reading(seq, TS_BASE_MS + seq) + b"\n" for seq in range(first, first + records)
    )
    watch = psutil.Process(both.gateway.pid)
    cpu_before, messages_before = cpu_s(watch), upstream.messages("gateway")
    started = time.monotonic()
    # mosquitto_pub (C) at QoS 1, as fast as the broker takes them; the broker queues up to
    # 100,000 for the connector, so none is dropped while the gateway catches up.
    publisher = ["mosquitto_pub", "-h", bench.broker.host, "-p", str(bench.broker.port),
                 "-q", "1", "-t", READINGS_TOPIC, "-l"]  # fmt: skip
    subprocess.run(publisher, input=lines, check=True, timeout=BURST_LIMIT_S)  # noqa: S603
    arrived_s = wait_for(lambda: upstream.gateway_records(first) >= records, both.gateway, started)
    return Burst(
        name="gateway",
        records=upstream.gateway_records(first),
        messages=upstream.messages("gateway") - messages_before,
        arrived_s=arrived_s,
        acknowledged_s=None,
        cpu_s=cpu_s(watch) - cpu_before,
        peak_rss_bytes=peak_rss_bytes(watch),
    )


def wait_for(done: Callable[[], bool], process: ManagedProcess, started: float) -> float:
    """Seconds from ``started`` until ``done()``; fails if the process dies or it takes too long."""
    while not done():
        if not process.alive() or time.monotonic() - started > BURST_LIMIT_S:
            msg = (
                f"{process.name}: burst not through in {BURST_LIMIT_S:.0f} s: {process.log_tail()}"
            )
            raise RuntimeError(msg)
        time.sleep(POLL_S)
    return time.monotonic() - started


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
