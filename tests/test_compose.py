"""docker compose's production stack, checked with the real tools that run here (no Docker engine).

Docker Compose itself validates and resolves the file (with and without the simulator profile),
promtool and amtool check the monitoring configs, and the resolved YAML is read to check that
the services find each other, start in an order that means something, and hold secrets only
where they are needed. The broker's config runs in a real Mosquitto in test_compose_broker.py,
the init scripts in test_compose_init.py, the Dockerfile is read in test_dockerfile.py.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from edge.protocol import topics
from tests.support.compose import (
    ALERTMANAGER_CONFIG,
    BROKER_CONFIG,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    GRAFANA_DASHBOARDS,
    GRAFANA_DATASOURCE,
    GRAFANA_PROVISIONING,
    INIT_DIR,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    ROOT,
    SHARED_BROKER_CONF_DIR,
    bind_mounts,
    broker_setting,
    compose,
    load_yaml,
    named_mounts,
    option,
    promtool,
    resolve,
    run,
)

SIMULATOR = "simulator"
PRODUCTION_SERVICES = {
    "secrets-init",
    "postgres",
    "broker-init",
    "broker",
    "control-plane-1",
    "control-plane-2",
    "prometheus",
    "alertmanager",
    "grafana",
}
SIMULATOR_SERVICES = {"simulator-logins", "simulator"}
DYNSEC_PLUGIN_IN_IMAGE = "/usr/lib/mosquitto_dynamic_security.so"
"""Where eclipse-mosquitto:2 installs the dynamic-security plugin."""
PINNED_TAG = re.compile(r"v?\d+\.\d+(\.\d+)?([.-][0-9A-Za-z.]+)?")
"""A release: `2.0.20`, `v2.55.1`, `16.4-bookworm` (PostgreSQL's releases have two numbers);
never a major alone (`2`), `latest` or none."""
# Who may mount each volume that holds a secret: the CA's key reaches no service but the init.
SECRET_VOLUME_READERS = {
    "termfleet-secret": {
        "secrets-init",
        "broker-init",
        "control-plane-1",
        "control-plane-2",
        "simulator-logins",
        "simulator",
    },
    "postgres-secret": {"secrets-init", "postgres"},
    "grafana-secret": {"secrets-init", "grafana"},
    "broker-ca": {"secrets-init"},
    "broker-tls": {"secrets-init", "broker"},
    "mosquitto-dynsec": {"broker-init", "broker"},
}
# A key that names a secret, given a value that is not a file, a variable or empty.
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)^\s*[-\w.]*(password|passwd|secret|token|private_?key|api_?key)[\w.]*\s*[:=]\s*
    (?!\s*$)(?!\s*["']?(/|\$\{|\./|[\w.-]+/))"""
)
PEM_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
PASSWORD_IN_URL = re.compile(r"\w+://[^/\s:@]+:[^/\s@]+@")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The stack with the simulator profile, so that every service is there to check."""
    return resolve(SIMULATOR)


def replicas(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = stack["services"]
    return {n: s for n, s in services.items() if s.get("command", [])[:2] == ["server", "run"]}


def project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


def image_is_pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and PINNED_TAG.fullmatch(tag) is not None


def secret_lines(text: str) -> list[str]:
    """Lines that look like a committed password, key or token."""
    return [
        line
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        and (
            SECRET_ASSIGNMENT.search(line)
            or PEM_PRIVATE_KEY.search(line)
            or PASSWORD_IN_URL.search(line)
        )
    ]


@pytest.mark.parametrize("profiles", [(), (SIMULATOR,)], ids=["production", "simulator"])
def test_compose_file_is_valid(profiles: tuple[str, ...]) -> None:
    chosen = [arg for profile in profiles for arg in ("--profile", profile)]
    result = compose(*chosen, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr.upper(), result.stderr


def test_compose_validation_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  broker:\n    imag: eclipse-mosquitto:2.0.20\n")
    result = compose("config", "-q", file=broken)
    assert result.returncode != 0
    assert "imag" in result.stderr


def test_the_simulator_runs_only_in_its_profile(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == PRODUCTION_SERVICES | SIMULATOR_SERVICES
    for name, service in services.items():
        expected = [SIMULATOR] if name in SIMULATOR_SERVICES else None
        assert service.get("profiles") == expected, name
    # Nothing that production runs may wait for a service production does not run.
    for name in PRODUCTION_SERVICES:
        assert not set(services[name].get("depends_on", {})) & SIMULATOR_SERVICES, name


def test_every_image_is_pinned(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        assert image_is_pinned(service["image"]), f"{name}: {service['image']}"
        if "build" in service:  # ours: tagged with the version it is built from
            assert service["image"].endswith(f":{project_version()}"), name
            assert service["build"]["target"] == "control-plane", name
    for floating in ("eclipse-mosquitto:2", "postgres", "grafana/grafana:latest", "a:b/c"):
        assert not image_is_pinned(floating), floating


def test_two_replicas_share_the_uplink_and_both_may_drive_rollouts(stack: dict[str, Any]) -> None:
    found = replicas(stack)
    assert len(found) == 2, sorted(found)
    # The share group is the code's (no option changes it): the same image is the same group.
    assert len({s["image"] for s in found.values()}) == 1
    shared = [f for f in topics.ingest_filters() if f.startswith("$share/")]
    assert shared, "the ingest must subscribe through a share group"
    assert {f.split("/")[1] for f in shared} == {topics.INGEST_SHARE_GROUP}
    client_ids = {option(s["command"], "--client-id") for s in found.values()}
    assert None not in client_ids, "a stable client id keeps each replica's broker session"
    assert len(client_ids) == len(found)
    # Every replica takes part in driving the rollouts, reachable by the others at its own name.
    for name, s in found.items():
        assert "--no-rollouts" not in s["command"], name
        assert s["environment"].get("TERMFLEET_ROLLOUTS", "true").lower() not in {"0", "false"}
        assert option(s["command"], "--peer-url") == f"http://{name}:8080"


def test_replicas_use_postgres_with_the_password_from_a_file(stack: dict[str, Any]) -> None:
    services = stack["services"]
    postgres_env = services["postgres"]["environment"]
    assert "POSTGRES_PASSWORD" not in postgres_env
    password_file = postgres_env["POSTGRES_PASSWORD_FILE"]
    assert named_mounts(services["postgres"])[str(Path(password_file).parent)] == (
        "postgres-secret",
        True,
    )
    for name, service in {**replicas(stack), "broker-init": services["broker-init"]}.items():
        env = service["environment"]
        url = urlsplit(env["TERMFLEET_DATABASE_URL"])
        assert url.scheme == "postgres", name
        assert (url.hostname, url.port) == ("postgres", 5432), name
        assert url.password is None, f"{name}: the password belongs in the pgpass file"
        assert url.username == postgres_env["POSTGRES_USER"], name
        assert url.path == f"/{postgres_env['POSTGRES_DB']}", name
        secret_dir = str(Path(env["PGPASSFILE"]).parent)
        assert named_mounts(service)[secret_dir][0] == "termfleet-secret", name
    for name, service in replicas(stack).items():
        # broker-init migrates once; replicas starting together must not race to.
        assert service["environment"]["TERMFLEET_AUTO_MIGRATE"] == "0", name
        assert service["depends_on"]["broker-init"]["condition"] == (
            "service_completed_successfully"
        )


def test_replicas_trust_a_content_key_and_share_the_package_store(stack: dict[str, Any]) -> None:
    stores = set()
    for name, service in [*replicas(stack).items(), ("simulator", stack["services"]["simulator"])]:
        key = option(service["command"], "--content-key")
        assert key is not None, name
        assert key.endswith(".pub"), name
        mounts = bind_mounts(service)
        assert str(Path(key).parent) in mounts, f"{name}: the key's folder is mounted"
        if name != "simulator":
            content_dir = service["environment"]["TERMFLEET_CONTENT_DIR"]
            volume, read_only = named_mounts(service)[content_dir]
            assert not read_only, name
            stores.add(volume)
    assert len(stores) == 1, "an upload to one replica must be downloadable from the other"


def test_secret_volumes_reach_only_their_readers(stack: dict[str, Any]) -> None:
    readers: dict[str, set[str]] = defaultdict(set)
    for name, service in stack["services"].items():
        for volume, _read_only in named_mounts(service).values():
            readers[volume].add(name)
    for volume, expected in SECRET_VOLUME_READERS.items():
        assert volume in stack["volumes"], volume
        assert readers[volume] == expected, volume


def test_services_start_in_an_order_that_means_something(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            condition = how["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits on {needed}'s health"
            elif condition == "service_completed_successfully":
                assert services[needed]["restart"] == "no", f"{needed} is a one-shot"
    conditions = {
        ("postgres", "secrets-init"): "service_completed_successfully",
        ("broker-init", "postgres"): "service_healthy",
        ("broker", "broker-init"): "service_completed_successfully",
        ("control-plane-1", "broker"): "service_healthy",
        ("control-plane-2", "postgres"): "service_healthy",
        ("simulator-logins", "control-plane-1"): "service_healthy",
        ("simulator", "simulator-logins"): "service_completed_successfully",
        ("prometheus", "alertmanager"): "service_healthy",
        ("grafana", "prometheus"): "service_healthy",
    }
    for (name, needed), condition in conditions.items():
        assert services[name]["depends_on"][needed]["condition"] == condition, (name, needed)
    for name in ("postgres", "broker", "control-plane-1", "prometheus", "alertmanager", "grafana"):
        assert "healthcheck" in services[name], name


def test_one_shots_run_the_committed_init_scripts(stack: dict[str, Any]) -> None:
    for name in ("secrets-init", "broker-init", "simulator-logins"):
        service = stack["services"][name]
        shell, script = service["entrypoint"]
        assert shell == "sh"
        mounted = Path(bind_mounts(service)[str(Path(script).parent)])
        assert mounted == INIT_DIR, name
        assert (mounted / Path(script).name).is_file(), name
        lines = (mounted / Path(script).name).read_text().splitlines()
        assert "set -eu" in lines, f"{name}: a failed step must fail the service"


def test_every_bind_mount_exists(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        for target, source in bind_mounts(service).items():
            assert Path(source).exists(), f"{name}: {source} for {target}"


def test_the_broker_publishes_tls_only(stack: dict[str, Any]) -> None:
    services = stack["services"]
    broker = services["broker"]
    published = {int(p["published"]) if isinstance(p, dict) else p for p in broker["ports"]}
    assert published == {8883}, "plain MQTT must stay inside the compose network"
    assert broker_setting("listener") == ["1883", "8883"]
    tls_dir = str(Path(broker_setting("certfile")[0]).parent)
    assert named_mounts(broker)[tls_dir] == ("broker-tls", True)
    assert Path(broker_setting("keyfile")[0]).parent == Path(tls_dir)
    assert "ports" not in services["postgres"]
    for name, service in replicas(stack).items():
        env = service["environment"]
        assert env["TERMFLEET_MQTT_URL"] == "mqtt://broker:1883", name
        assert env["TERMFLEET_PUBLIC_BROKER_URL"].startswith("mqtts://"), name
        assert env["TERMFLEET_PUBLIC_BROKER_URL"].endswith(":8883"), name


def test_broker_uses_the_project_broker_config(stack: dict[str, Any]) -> None:
    mounts = bind_mounts(stack["services"]["broker"])
    assert Path(mounts["/mosquitto/config/mosquitto.conf"]) == BROKER_CONFIG
    assert Path(mounts["/mosquitto/config/conf.d"]) == SHARED_BROKER_CONF_DIR
    assert "include_dir /mosquitto/config/conf.d" in BROKER_CONFIG.read_text().splitlines()


def test_the_broker_refuses_anonymous_clients_and_loads_the_plugin(
    stack: dict[str, Any],
) -> None:
    assert broker_setting("allow_anonymous") == ["false"]
    assert broker_setting("plugin") == [DYNSEC_PLUGIN_IN_IMAGE]
    assert broker_setting("per_listener_settings") == ["false"]
    assert "topic" in broker_setting("log_dest"), "the control plane reads failed saves there"
    (config_file,) = broker_setting("plugin_opt_config_file")
    directory = str(Path(config_file).parent)
    assert named_mounts(stack["services"]["broker"])[directory] == ("mosquitto-dynsec", False)
    assert named_mounts(stack["services"]["broker-init"])[directory] == ("mosquitto-dynsec", False)


def test_prometheus_config_passes_promtool() -> None:
    result = run([promtool(), "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus.yml"
    broken.write_text("scrape_configs:\n  - job_name: x\n    scrape_interval: soon\n")
    result = run([promtool(), "check", "config", str(broken)])
    assert result.returncode != 0
    assert "not a valid duration" in result.stdout + result.stderr


def test_prometheus_scrapes_both_replicas(stack: dict[str, Any]) -> None:
    prometheus = stack["services"]["prometheus"]
    assert Path(bind_mounts(prometheus)["/etc/prometheus"]) == PROMETHEUS_DIR
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = load_yaml(PROMETHEUS_CONFIG)
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, service in replicas(stack).items():
        assert f"{name}:{option(service['command'], '--http-port')}" in targets
    # Rule files sit beside the config, in the mounted folder.
    for pattern in config.get("rule_files") or []:
        assert list(PROMETHEUS_DIR.glob(pattern)), f"rule_files {pattern} matches nothing"


def test_alertmanager_runs_the_committed_config(stack: dict[str, Any]) -> None:
    alertmanager = stack["services"]["alertmanager"]
    config_file = next(a for a in alertmanager["command"] if a.startswith("--config.file="))
    mounted = bind_mounts(alertmanager)[config_file.split("=", 1)[1]]
    assert Path(mounted) == ALERTMANAGER_CONFIG
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool not found: apt-get install prometheus-alertmanager"
    result = run([amtool, "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_compose_prometheus_and_the_dashboards(
    stack: dict[str, Any],
) -> None:
    mounts = bind_mounts(stack["services"]["grafana"])
    assert Path(mounts["/etc/grafana/provisioning"]) == GRAFANA_PROVISIONING
    assert Path(mounts["/var/lib/grafana/dashboards"]) == GRAFANA_DASHBOARDS
    assert list(GRAFANA_DASHBOARDS.glob("*.json")), "the generated dashboards"
    (datasource,) = load_yaml(GRAFANA_DATASOURCE)["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    scrape_interval = load_yaml(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
    assert datasource["jsonData"]["timeInterval"] == scrape_interval
    providers = [
        provider
        for path in (GRAFANA_PROVISIONING / "dashboards").glob("*.y*ml")
        for provider in load_yaml(path).get("providers", [])
    ]
    paths = {p.get("options", {}).get("path") for p in providers}
    assert "/var/lib/grafana/dashboards" in paths, "a provider reads the mounted dashboards"


def test_no_secret_is_committed() -> None:
    files = [COMPOSE_FILE, ENV_EXAMPLE, ROOT / ".env", *sorted((ROOT / "deploy").rglob("*"))]
    for path in files:
        if path.is_file():
            assert secret_lines(path.read_text()) == [], path
    grafana_env = load_yaml(COMPOSE_FILE)["services"]["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana_env
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE" in grafana_env


@pytest.mark.parametrize(
    "line",
    [
        "      POSTGRES_PASSWORD: hunter2",
        "GF_SECURITY_ADMIN_PASSWORD=admin",
        "  TERMFLEET_TOKEN: tf_abcdef",
        "      TERMFLEET_DATABASE_URL: postgres://termfleet:s3cret@postgres:5432/termfleet",
        "-----BEGIN EC PRIVATE KEY-----",
    ],
)
def test_the_secret_check_finds_a_planted_secret(line: str) -> None:
    assert secret_lines(f"services:\n{line}\n") == [line]


def test_the_secret_check_passes_files_and_variables() -> None:
    text = (
        "POSTGRES_PASSWORD_FILE: /run/secrets/postgres/password\n"
        "TERMFLEET_SECRET_FILE: /etc/termfleet/secret\n"
        "GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/grafana/admin-password\n"
        "TERMFLEET_DATABASE_URL: postgres://termfleet@postgres:5432/termfleet\n"
        "# a password: made on the first start\n"
    )
    assert secret_lines(text) == []
