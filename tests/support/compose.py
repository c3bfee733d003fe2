"""The compose stack's files and the real tools that check them (no Docker engine runs here).

Docker Compose itself (`docker-compose config`, or the v2 plugin's binary) resolves the compose
file; `promtool` checks Prometheus' config. Shared by tests/test_compose*.py.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
INIT_DIR = ROOT / "deploy" / "init"
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"
GRAFANA_PROVISIONING = ROOT / "monitoring" / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = ROOT / "monitoring" / "grafana" / "dashboards"
GRAFANA_DATASOURCE = GRAFANA_PROVISIONING / "datasources" / "prometheus.yml"
BROKER_CONFIG = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
SHARED_BROKER_CONF_DIR = ROOT / "control_plane" / "services" / "mosquitto.d"
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


def run(
    argv: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=TOOL_TIMEOUT_S,
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


def compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    return run([*compose_command(), "-f", str(file), *args], cwd=file.parent)


def resolve(*profiles: str) -> dict[str, Any]:
    """The compose file as Docker Compose resolves it (anchors merged, paths made absolute)."""
    chosen = [arg for profile in profiles for arg in ("--profile", profile)]
    result = compose(*chosen, "config")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run ./dev test, or apt-get install prometheus")
    return found


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
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


def option(command: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in an argv, None when absent."""
    for index, word in enumerate(command):
        if word == name and index + 1 < len(command):
            return command[index + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None
