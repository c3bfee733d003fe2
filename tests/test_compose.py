"""docker compose, checked with the real tools that run here (no Docker engine does).

The compose file is validated by Docker Compose itself (`docker-compose config`, or the v2
plugin's binary), the Prometheus config by promtool, and the broker's compose config by running it
in a real Mosquitto. The YAML is then read to check that the services find each other.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from control_plane.services.broker import dynsec_plugin, mosquitto_binary
from control_plane.services.processes import ManagedProcess, free_port
from edge.protocol import Channel, topics
from provisioning import dynsec
from provisioning.broker_file import write_dynsec_file
from tests.support.mqtt_probe import NOT_AUTHORIZED, Probe, allowed

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "monitoring" / "grafana" / "provisioning"
GRAFANA_DATASOURCE = GRAFANA_PROVISIONING / "datasources" / "prometheus.yml"
BROKER_CONFIG = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
SHARED_BROKER_CONF_DIR = ROOT / "control_plane" / "services" / "mosquitto.d"
SERVICES = {"broker-init", "broker", "control-plane", "simulator", "prometheus", "grafana"}
DYNSEC_PLUGIN_IN_IMAGE = "/usr/lib/mosquitto_dynamic_security.so"
"""Where eclipse-mosquitto:2 installs the dynamic-security plugin."""
BROKER_UID = "1883"
"""The mosquitto user of eclipse-mosquitto:2, which must be able to rewrite its login file."""
TOOL_TIMEOUT_S = 60
# Where the docker CLI looks for plugins. Ubuntu's docker-compose-v2 (and Docker's own
# docker-compose-plugin) put the binary in the last one; installed without recommends, it comes
# without the docker CLI that `docker compose` needs, but the binary also runs on its own.
COMPOSE_PLUGIN_DIRS = (
    Path.home() / ".docker" / "cli-plugins",
    Path("/usr/local/lib/docker/cli-plugins"),
    Path("/usr/local/libexec/docker/cli-plugins"),
    Path("/usr/lib/docker/cli-plugins"),
    Path("/usr/libexec/docker/cli-plugins"),
)
INSTALL_COMPOSE = (
    "run ./dev test, or install one: apt-get install docker-compose (Debian 12, Ubuntu up to"
    " 24.04) or docker-compose-v2 (Ubuntu)"
)


@functools.cache
def compose_command() -> tuple[str, ...]:
    """The first Docker Compose that runs; `./dev test` installs one.

    docker-compose on PATH (v1, or v2 installed standalone), else the v2 plugin's binary called
    directly, else `docker compose`.
    """
    candidates: list[tuple[str, ...]] = []
    if found := shutil.which("docker-compose"):
        candidates.append((found,))
    plugins = (d / "docker-compose" for d in COMPOSE_PLUGIN_DIRS)
    candidates += [(str(p),) for p in plugins if p.is_file()]
    if docker := shutil.which("docker"):
        candidates.append((docker, "compose"))
    tried = []
    for argv in candidates:
        result = run([*argv, "version"])
        if result.returncode == 0:
            return argv
        said = (result.stdout + result.stderr).strip().splitlines()[-1:]
        tried.append(f"{shlex.join(argv)} version: exit {result.returncode} {said}")
    found_none = "\n  ".join(tried) or "none on PATH or in the docker CLI's plugin folders"
    pytest.fail(f"no Docker Compose runs here ({INSTALL_COMPOSE}); tried:\n  {found_none}")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run ./dev test, or apt-get install prometheus")
    return found


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT_S
    )


def compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    return run([*compose_command(), "-f", str(file), *args], cwd=file.parent)


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


@pytest.fixture(scope="module")
def resolved_compose() -> dict[str, Any]:
    """The compose file as Docker Compose resolves it (anchors merged, paths made absolute)."""
    result = compose("config")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts, from v1 or v2 `config` output."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):  # v1: "SOURCE:TARGET[:MODE]"
            source, target = volume.split(":")[:2]
        elif volume.get("type") == "bind":  # v2: long syntax
            source, target = volume["source"], volume["target"]
        else:
            continue
        if source.startswith("/"):
            mounts[target] = source
    return mounts


def named_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path -> (named volume, read-only) of a service, from v1 or v2 `config` output."""
    mounts: dict[str, tuple[str, bool]] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):  # v1: "SOURCE:TARGET[:MODE]"
            source, target, *mode = volume.split(":")
            if not source.startswith(("/", ".")):
                mounts[target] = (source, mode == ["ro"])
        elif volume.get("type") == "volume":  # v2: long syntax
            mounts[volume["target"]] = (volume["source"], bool(volume.get("read_only")))
    return mounts


def broker_setting(name: str) -> list[str]:
    """The values of one setting in the compose broker's main config."""
    lines = (line.split(maxsplit=1) for line in BROKER_CONFIG.read_text().splitlines())
    return [words[1] for words in lines if len(words) == 2 and words[0] == name]


def init_script(resolved: dict[str, Any]) -> str:
    init = resolved["services"]["broker-init"]
    assert init["entrypoint"] == ["sh", "-c"]
    (script,) = init["command"]
    assert isinstance(script, str)
    return script


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr.upper(), result.stderr


def test_compose_validation_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  broker:\n    imag: eclipse-mosquitto:2\n")
    result = compose("config", "-q", file=broken)
    assert result.returncode != 0
    assert "imag" in result.stderr


def test_compose_lists_the_fleet_services() -> None:
    result = compose("config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES


def test_broker_uses_the_project_broker_config(resolved_compose: dict[str, Any]) -> None:
    mounts = bind_mounts(resolved_compose["services"]["broker"])
    assert Path(mounts["/mosquitto/config/mosquitto.conf"]) == BROKER_CONFIG
    assert Path(mounts["/mosquitto/config/conf.d"]) == SHARED_BROKER_CONF_DIR
    assert "include_dir /mosquitto/config/conf.d" in BROKER_CONFIG.read_text().splitlines()


def test_control_plane_and_simulator_reach_the_broker(resolved_compose: dict[str, Any]) -> None:
    services = resolved_compose["services"]
    server = services["control-plane"]
    assert server["command"][:2] == ["server", "run"]
    assert "mqtt://broker:1883" in server["command"]
    http_host = server["command"][server["command"].index("--http-host") + 1]
    assert http_host == "0.0.0.0"  # noqa: S104 - in a container, loopback is unreachable
    assert "http://127.0.0.1:8080/readyz" in " ".join(server["healthcheck"]["test"])
    assert services["simulator"]["command"][0] == "simulate"
    assert "mqtt://broker:1883" in services["simulator"]["command"]
    assert "/var/lib/termfleet" in {
        v["target"] if isinstance(v, dict) else v.split(":")[1] for v in server["volumes"]
    }


def test_the_broker_refuses_anonymous_clients_and_loads_the_plugin() -> None:
    assert broker_setting("allow_anonymous") == ["false"]
    assert broker_setting("plugin") == [DYNSEC_PLUGIN_IN_IMAGE]
    assert broker_setting("per_listener_settings") == ["false"]
    assert "topic" in broker_setting("log_dest"), "the control plane reads failed saves there"
    (config_file,) = broker_setting("plugin_opt_config_file")
    assert config_file.startswith("/mosquitto/dynsec/")


def test_broker_init_writes_the_login_file_before_the_broker_starts(
    resolved_compose: dict[str, Any],
) -> None:
    services = resolved_compose["services"]
    init, broker = services["broker-init"], services["broker"]
    assert broker["depends_on"]["broker-init"]["condition"] == "service_completed_successfully"
    assert services["control-plane"]["depends_on"]["broker"]["condition"] == "service_healthy"
    assert init["restart"] == "no", "a one-shot service must not be restarted after it is done"
    assert init["image"] == services["control-plane"]["image"]
    # The file the init writes is the file the broker loads, through one volume.
    (config_file,) = broker_setting("plugin_opt_config_file")
    directory = str(Path(config_file).parent)
    volume, read_only = named_mounts(broker)[directory]
    assert not read_only, "the broker rewrites its login file on every change"
    assert named_mounts(init)[directory] == (volume, False)
    script = init_script(resolved_compose)
    assert "python -m provisioning.demo_logins --district conghua" in script
    assert f"--broker-file {config_file}" in script
    assert f"chown -R {BROKER_UID}:{BROKER_UID} {directory}" in script
    assert script.startswith("set -eu"), "a failed step must fail the service"
    # The database it enrolls the district in is the control plane's.
    assert (
        named_mounts(init)["/var/lib/termfleet"]
        == named_mounts(services["control-plane"])["/var/lib/termfleet"]
    )


def test_the_secret_is_shared_by_init_control_plane_and_simulator(
    resolved_compose: dict[str, Any],
) -> None:
    services = resolved_compose["services"]
    secret_files = {
        name: services[name]["environment"]["TERMFLEET_SECRET_FILE"]
        for name in ("broker-init", "control-plane", "simulator")
    }
    (secret_file,) = set(secret_files.values())
    directory = str(Path(secret_file).parent)
    volume, read_only = named_mounts(services["broker-init"])[directory]
    assert not read_only, "broker-init makes the secret on the first start"
    assert volume in resolved_compose["volumes"]
    for name in ("control-plane", "simulator"):
        assert named_mounts(services[name])[directory] == (volume, True), name
    assert "--public-broker-url" in services["control-plane"]["command"]


def test_the_broker_healthcheck_knows_a_broker_from_none(tmp_path: Path) -> None:
    """The healthcheck's own shell line, on a broker that refuses anonymous clients."""
    test = load_yaml(COMPOSE_FILE)["services"]["broker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    line = test[1].replace("$$", "$")
    assert "-p 1883 " in line
    port = free_port()
    with secured_broker(tmp_path, port):
        up = run(["sh", "-c", line.replace("-p 1883 ", f"-p {port} ")])
    assert up.returncode == 0, up.stdout + up.stderr
    down = run(["sh", "-c", line.replace("-p 1883 ", f"-p {free_port()} ")])
    assert down.returncode != 0


def test_prometheus_config_passes_promtool() -> None:
    result = run([promtool(), "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "is valid prometheus config file syntax" in result.stdout


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus.yml"
    broken.write_text("scrape_configs:\n  - job_name: x\n    scrape_interval: soon\n")
    result = run([promtool(), "check", "config", str(broken)])
    assert result.returncode != 0
    assert "not a valid duration" in result.stdout + result.stderr


def test_prometheus_scrapes_the_control_plane_service(resolved_compose: dict[str, Any]) -> None:
    mounts = bind_mounts(resolved_compose["services"]["prometheus"])
    assert Path(mounts["/etc/prometheus/prometheus.yml"]) == PROMETHEUS_CONFIG
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert "control-plane:8080" in targets
    assert "control-plane" in resolved_compose["services"]


def test_grafana_provisions_the_compose_prometheus(resolved_compose: dict[str, Any]) -> None:
    mounts = bind_mounts(resolved_compose["services"]["grafana"])
    assert Path(mounts["/etc/grafana/provisioning"]) == GRAFANA_PROVISIONING
    (datasource,) = load_yaml(GRAFANA_DATASOURCE)["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    # Grafana's minimum step should match what Prometheus actually scrapes.
    scrape_interval = load_yaml(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
    assert datasource["jsonData"]["timeInterval"] == scrape_interval


DEVICE_ID = "kiosk-compose-01"


@contextlib.contextmanager
def secured_broker(tmp_path: Path, port: int) -> Iterator[str]:
    """The compose main config plus the shared include dir, in a real Mosquitto; its password.

    Only the container paths and the port are swapped for local ones; every other line runs as
    is. Its login file holds termfleet's own logins and one terminal's, ``DEVICE_ID``.
    """
    dynsec_file = tmp_path / "dynsec" / "dynamic-security.json"
    password = "compose-test-" + "x" * 20
    write_dynsec_file(
        dynsec_file,
        [
            *dynsec.service_clients(lambda _name: password),
            dynsec.device_client(DEVICE_ID, password),
        ],
        [*dynsec.SERVICE_ROLES, dynsec.device_role(DEVICE_ID)],
    )
    swaps = {
        r"^listener 1883$": f"listener {port} 127.0.0.1",
        r"^persistence_location .*$": f"persistence_location {tmp_path}/",
        r"^include_dir .*$": f"include_dir {SHARED_BROKER_CONF_DIR}",
        r"^plugin .*$": f"plugin {dynsec_plugin()}",
        r"^plugin_opt_config_file .*$": f"plugin_opt_config_file {dynsec_file}",
    }
    text = BROKER_CONFIG.read_text()
    for pattern, replacement in swaps.items():
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{BROKER_CONFIG.name} should have exactly one line matching {pattern}"
    # The container runs as the mosquitto user; here, as whoever runs the tests.
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"{text}\nuser {getpass.getuser()}\n")

    broker = ManagedProcess(
        name="mosquitto", argv=[mosquitto_binary(), "-c", str(config)], log_path=tmp_path / "log"
    ).start()
    try:
        broker.wait_port("127.0.0.1", port)
        yield password
    finally:
        broker.stop()
    assert "Error" not in broker.log_path.read_text()


def test_compose_broker_config_runs_in_mosquitto(tmp_path: Path) -> None:
    """Anonymous clients are refused; a terminal logs in as itself and sends its uplink."""
    port = free_port()
    with secured_broker(tmp_path, port) as password:
        anonymous = Probe(port, None, None, "anonymous")
        terminal = Probe(port, DEVICE_ID, password, DEVICE_ID)
        try:
            assert anonymous.connect() == NOT_AUTHORIZED
            assert terminal.connect() == 0
            assert allowed(terminal.publish(topics.uplink(DEVICE_ID, Channel.HEALTH)))
            assert not allowed(terminal.publish(topics.uplink("kiosk-other", Channel.HEALTH)))
        finally:
            anonymous.close()
            terminal.close()
