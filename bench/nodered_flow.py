"""Node-RED running the bench flow (``bench/nodered/flows.json``): start, readiness, stop, rows.

Node-RED's user dir is a directory of the caller's work dir, never ``~/.node-red``; the flow
reads the broker port, the SQLite file and the uplink filter from the environment (``${...}``
properties), so ``flows.json`` holds no path of any machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.nodered_install import FLOW_DIR, NodeRedInstall, NodeRedUnavailableError
from control_plane.services.broker import BrokerSettings
from control_plane.services.processes import ManagedProcess
from edge.protocol import Channel, PrintJob, encode_records
from edge.protocol import topics as wire

DATABASE = "bench.sqlite3"
"""The flow's SQLite file, in Node-RED's user dir."""
READY_WAIT_S = 90.0
"""Node-RED loads its nodes, connects and subscribes in a few seconds; a busy machine is slower."""
STOP_GRACE_S = 10.0
PROBE_DEVICE = "nodered-probe"
"""A device whose record, stored, shows the whole flow is up; left out of every count."""
COUNT_DEVICE = "SELECT count(*) FROM usage_records WHERE device = ?"
COUNT_ALL_BUT_PROBE = "SELECT count(*) FROM usage_records WHERE device != ?"
PRAGMAS_LOGGED = re.compile(r"journal_mode: '(\w+)', synchronous: (\d)")
"""The debug node's console line, util.inspect of [{journal_mode, synchronous}]."""
SYNCHRONOUS = {"0": "OFF", "1": "NORMAL", "2": "FULL", "3": "EXTRA"}


@contextlib.contextmanager
def node_red(
    install: NodeRedInstall, userdir: Path, broker: BrokerSettings
) -> Iterator[ManagedProcess]:
    """Node-RED with the bench flow, its user dir ``userdir``; its process group ends on exit."""
    userdir.mkdir(parents=True, exist_ok=True)
    (userdir / "flows.json").write_bytes((FLOW_DIR / "flows.json").read_bytes())
    env = {
        **os.environ,
        # Read by the ${...} properties in flows.json.
        "TF_MQTT_PORT": str(broker.port),
        "TF_SQLITE_DB": str(userdir / DATABASE),
        "TF_UPLINK_FILTER": wire.uplink_filter(Channel.USAGE),
    }
    argv = [install.node, str(install.red_js), "--userDir", str(userdir),
            "--settings", str(FLOW_DIR / "settings.js")]  # fmt: skip
    process = ManagedProcess("node-red", argv, userdir / "node-red.log", env=env, cwd=userdir)
    process.start()
    try:
        yield process
    finally:
        _stop_group(process)


def _stop_group(process: ManagedProcess) -> None:
    """SIGTERM to the whole group, SIGKILL after a grace; children that left it are killed too.

    The group is signalled only while its leader is not yet reaped, so its id cannot have been
    reused by then.
    """
    popen = process.popen
    if popen is None:
        return
    try:
        children = psutil.Process(popen.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.stop()  # closes its log


def wait_flow_ready(process: ManagedProcess, broker: BrokerSettings, database: Path) -> None:
    """Publish a probe record until it is in SQLite: connected, subscribed, table made."""
    topic = wire.uplink(PROBE_DEVICE, Channel.USAGE)
    payload = encode_records([PrintJob(seq=1, at=datetime.now(UTC), pages=1)])
    argv = ["mosquitto_pub", "-V", "mqttv5", "-h", broker.host, "-p", str(broker.port),
            "-q", "1", "-t", topic, "-s"]  # fmt: skip
    deadline = time.monotonic() + READY_WAIT_S
    while time.monotonic() < deadline:
        if not process.alive():
            msg = f"Node-RED exited with {process.returncode()}: {process.log_tail()}"
            raise NodeRedUnavailableError(msg)
        if database.exists() and count_rows(database, PROBE_DEVICE) > 0:
            return
        subprocess.run(argv, input=payload, check=False, timeout=10)  # noqa: S603
        time.sleep(1.0)
    msg = (
        f"Node-RED's flow stored no probe record within {READY_WAIT_S:.0f} s: {process.log_tail()}"
    )
    raise NodeRedUnavailableError(msg)


def count_rows(database: Path, device: str | None = None) -> int:
    """Rows of ``device``, or of every device but the probe."""
    query = COUNT_DEVICE if device else COUNT_ALL_BUT_PROBE
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        try:
            (count,) = db.execute(query, (device or PROBE_DEVICE,)).fetchone()
        except sqlite3.OperationalError:  # the flow has not made its table yet
            return 0
    return int(count)


def published_and_inserted(database: Path) -> list[tuple[float, float]]:
    """(publish time, insert time) of every record but the probe's, in Unix seconds."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        query = "SELECT at, inserted_at FROM usage_records WHERE device != ?"
        rows = db.execute(query, (PROBE_DEVICE,)).fetchall()
    return [(datetime.fromisoformat(at).timestamp(), float(inserted)) for at, inserted in rows]


def pragmas_logged(process: ManagedProcess) -> str:
    """The flow's read-back of its pragmas, from the debug node's line in Node-RED's log."""
    found = PRAGMAS_LOGGED.search(process.log_path.read_text(errors="replace"))
    if found is None:
        return "not read back"
    mode, level = found.groups()
    return f"journal_mode={mode}, synchronous={level} ({SYNCHRONOUS.get(level, '?')})"
