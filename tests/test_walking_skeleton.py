"""The whole path with real processes, agents killed with real signals.

`termfleet agent run` (a kiosk) → Mosquitto → `termfleet server run` on SQLite → /metrics and
`termfleet devices ls`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from control_plane.services.broker import BrokerSettings
from control_plane.services.processes import ManagedProcess, free_port
from tests.support.tokens import issue_token_with_cli

pytestmark = pytest.mark.slow

WAIT_S = 20.0


def termfleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_plane.cli", *args]


def eventually(check: Callable[[], object], timeout_s: float = WAIT_S) -> object:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout_s}s; last: {last!r}")


@pytest.fixture
def broker(own_broker: tuple[BrokerSettings, object]) -> BrokerSettings:
    """Each test's own broker, in place of the session's shared one."""
    # The tests count the fleet's kiosks in /metrics, and presence that other tests left retained
    # on a shared broker would count too.
    settings, _ = own_broker
    return settings


@pytest.fixture
def control_plane(
    broker: BrokerSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The control plane's URL; `termfleet devices ls` finds an admin token in TERMFLEET_TOKEN."""
    port = free_port()
    database_url = f"sqlite://{tmp_path / 'cp.sqlite3'}"
    monkeypatch.setenv("TERMFLEET_TOKEN", issue_token_with_cli(database_url))
    proc = ManagedProcess(
        "control-plane",
        termfleet(
            "server",
            "run",
            "--database-url",
            database_url,
            "--mqtt-url",
            broker.url,
            "--http-port",
            str(port),
        ),
        tmp_path / "cp.log",
    ).start()
    proc.wait_port("127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    assert proc.stop() == 0, proc.log_tail()


def write_agent_config(path: Path, device_id: str, broker: BrokerSettings, state_dir: Path) -> Path:
    path.write_text(
        f'device_id = "{device_id}"\n'
        'kind = "kiosk"\n'
        f'state_dir = "{state_dir}"\n'
        "[broker]\n"
        f'url = "{broker.url}"\n'
        "keepalive_s = 4\n"
        "[telemetry]\n"
        "heartbeat_interval_s = 0.5\n"
        "full_snapshot_every = 3\n"
        "[outbox]\n"
        "max_bytes = 16777216\n"
        "[delivery]\n"
        "max_in_flight = 100\n"
        "ack_timeout_s = 5\n"
    )
    return path


def devices_ls(server: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        termfleet("devices", "ls", "--server", server, "--json"),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def presence_of(server: str, device_id: str) -> str | None:
    return next((d["presence"] for d in devices_ls(server) if d["device_id"] == device_id), None)


def metrics(server: str) -> str:
    with urllib.request.urlopen(server + "/metrics", timeout=5) as resp:  # noqa: S310 - localhost
        body: bytes = resp.read()
        return body.decode()


AgentStarter = Callable[[str], ManagedProcess]


@pytest.fixture
def start_agent(tmp_path: Path, broker: BrokerSettings) -> Iterator[AgentStarter]:
    """Starts `termfleet agent run` processes; whatever a test leaves running is stopped."""
    started: list[ManagedProcess] = []

    def start(device_id: str) -> ManagedProcess:
        config = write_agent_config(
            tmp_path / f"{device_id}.toml", device_id, broker, tmp_path / device_id
        )
        argv = termfleet("agent", "run", "--config", str(config))
        process = ManagedProcess("agent", argv, tmp_path / f"{device_id}.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_kiosk_agent_appears_online_in_metrics_and_cli_then_offline_on_sigterm(
    control_plane: str, start_agent: AgentStarter, device_prefix: str
) -> None:
    device_id = f"{device_prefix}-kiosk"
    agent = start_agent(device_id)
    eventually(lambda: presence_of(control_plane, device_id) == "online")
    listed = next(d for d in devices_ls(control_plane) if d["device_id"] == device_id)
    assert listed["kind"] == "kiosk"
    assert listed["agent_version"]
    eventually(
        lambda: next(d for d in devices_ls(control_plane) if d["device_id"] == device_id)["health"]
    )
    # Placed nowhere: its hall level is none.
    unplaced_kiosks = 'termfleet_devices{kind="kiosk",level="none",presence="%s"} 1.0'
    assert unplaced_kiosks % "online" in metrics(control_plane)

    agent.signal(signal.SIGTERM)
    assert agent.popen is not None
    assert agent.popen.wait(timeout=15) == 0, agent.log_tail()
    eventually(lambda: presence_of(control_plane, device_id) == "offline")
    assert unplaced_kiosks % "offline_unexpected" in metrics(control_plane)


def test_killed_agent_goes_offline_by_last_will_and_comes_back_with_a_newer_session(
    control_plane: str, start_agent: AgentStarter, tmp_path: Path, device_prefix: str
) -> None:
    device_id = f"{device_prefix}-kiosk"
    agent = start_agent(device_id)
    eventually(lambda: presence_of(control_plane, device_id) == "online")
    first_session = int((tmp_path / device_id / "session").read_text())
    assert (tmp_path / device_id / "outbox.sqlite3").is_file()
    os.kill(agent.pid, signal.SIGKILL)
    # keepalive 4 s: the broker, told 2 s, declares the client gone after 3 s and sends the will.
    eventually(lambda: presence_of(control_plane, device_id) == "offline")

    start_agent(device_id)
    eventually(lambda: presence_of(control_plane, device_id) == "online")
    assert int((tmp_path / device_id / "session").read_text()) > first_session


def test_devices_ls_table_lists_the_agent(
    control_plane: str, start_agent: AgentStarter, device_prefix: str
) -> None:
    device_id = f"{device_prefix}-kiosk"
    start_agent(device_id)
    eventually(lambda: presence_of(control_plane, device_id) == "online")
    out = subprocess.run(
        termfleet("devices", "ls", "--server", control_plane, "--kind", "kiosk"),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    header, *rows = out.stdout.splitlines()
    assert header.split()[:3] == ["DEVICE_ID", "KIND", "AVAILABILITY"]
    assert any(r.split()[:3] == [device_id, "kiosk", "online"] for r in rows)
    assert "devices" in out.stderr


def test_agent_refuses_config_with_unknown_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "kiosk-1"\nkind = "kiosk"\nheartbeat = 5\n')
    out = subprocess.run(
        termfleet("agent", "run", "--config", str(config)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode != 0
    assert "heartbeat" in out.stderr
