"""ThingsBoard's IoT Gateway for ``bench/tb_gateway.py``: its install and its configuration.

Installed on first use from PyPI into a virtualenv in the user's cache (never in the repo), with
the interpreter that runs the benchmarks; ``TERMFLEET_BENCH_TB_GATEWAY_VENV`` names another one
with ``thingsboard-gateway`` in it instead. The configuration is the package's own sample
``tb_gateway.json`` and ``logs.json`` (as shipped: INFO logs to files, statistics every 60 s,
QoS 1) with only what the comparison needs changed: the server is our broker, remote
configuration is off (nothing would answer it), the storage is SQLite, and one MQTT connector
reads the sensor topic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.tb_gateway_upstream import READINGS_TOPIC, SENSOR_DEVICE

TB_GATEWAY_VERSION = "3.8.5"
"""The latest release on PyPI when this benchmark was written; it installs on Python 3.11."""
VENV_ENV = "TERMFLEET_BENCH_TB_GATEWAY_VENV"
INSTALLED_MARK = ".termfleet-bench-installed"
"""Written once pip has succeeded: a venv without it is a broken install, made again."""
INSTALL_TIMEOUT_S = 600


class GatewayUnavailableError(RuntimeError):
    """The gateway cannot be installed or found; the report says why."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "termfleet-bench"


def gateway_venv() -> Path:
    """A virtualenv with the gateway in it: the one the env names, else ours, installed now."""
    named = os.environ.get(VENV_ENV)
    if named:
        if not (Path(named) / "bin" / "thingsboard-gateway").exists():
            msg = f"the virtualenv {VENV_ENV} names has no bin/thingsboard-gateway"
            raise GatewayUnavailableError(msg)
        return Path(named)
    venv = cache_dir() / f"tb-gateway-{TB_GATEWAY_VERSION}"
    if not (venv / INSTALLED_MARK).exists():
        install(venv)
    return venv


def install(venv: Path) -> None:
    print(f"installing thingsboard-gateway {TB_GATEWAY_VERSION} in {venv} ...", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", f"thingsboard-gateway=={TB_GATEWAY_VERSION}"],
    ]  # fmt: skip
    for argv in steps:
        try:
            done = subprocess.run(  # noqa: S603 - argv built here
                argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            msg = f"`{' '.join(argv[-3:])}` failed: {exc}"
            raise GatewayUnavailableError(msg) from exc
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            msg = f"`{' '.join(argv[-3:])}` exited with {done.returncode}: {tail}"
            raise GatewayUnavailableError(msg)
    (venv / INSTALLED_MARK).write_text(TB_GATEWAY_VERSION + "\n")


def installed_version(venv: Path) -> str:
    code = "from importlib.metadata import version; print(version('thingsboard-gateway'))"
    argv = [str(venv / "bin" / "python"), "-c", code]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)  # noqa: S603
    return done.stdout.strip()


def packaged_config(venv: Path) -> Path:
    found = next(venv.glob("lib/python3*/site-packages/thingsboard_gateway/config"), None)
    if found is None:
        msg = f"{venv} has no thingsboard_gateway/config"
        raise GatewayUnavailableError(msg)
    return found


def write_config(venv: Path, workdir: Path, broker_host: str, broker_port: int) -> Path:
    """The gateway's config dir in ``workdir`` (``TB_GW_CONFIG_DIR``); logs and data beside it."""
    packaged = packaged_config(venv)
    config_dir = workdir / "config"
    config_dir.mkdir(parents=True)
    (workdir / "logs").mkdir()  # logs.json writes to ./logs, relative to the gateway's cwd
    (config_dir / "logs.json").write_text((packaged / "logs.json").read_text())
    config = json.loads((packaged / "tb_gateway.json").read_text())
    config["thingsboard"].update(
        host=broker_host,
        port=broker_port,
        security={"type": "accessToken", "accessToken": "bench-gateway"},
        remoteConfiguration=False,
    )
    # The SQLite storage as ThingsBoard's documentation configures it: WAL, written by a
    # thread in batches, ``synchronous=NORMAL`` (no fsync per commit).
    config["storage"] = {
        "type": "sqlite",
        "data_file_path": f"{workdir / 'data'}/",
        "messages_ttl_check_in_hours": 1,
        "messages_ttl_in_days": 7,
    }
    config["connectors"] = [{"type": "mqtt", "name": "sensor", "configuration": "sensor.json"}]
    (config_dir / "tb_gateway.json").write_text(json.dumps(config, indent=2))
    connector = sensor_connector(broker_host, broker_port)
    (config_dir / "sensor.json").write_text(json.dumps(connector, indent=2))
    return config_dir


def sensor_connector(host: str, port: int) -> dict[str, object]:
    """The MQTT connector of the package's sample ``mqtt.json``, with one mapping: our topic."""

    def series(key: str, kind: str) -> dict[str, str]:
        return {"type": kind, "key": key, "value": f"${{{key}}}"}

    return {
        "broker": {
            "host": host,
            "port": port,
            "clientId": "bench-gateway-sensor",
            "version": 5,
            "maxMessageNumberPerWorker": 10,
            "maxNumberOfWorkers": 100,
            "cleanSession": True,
            "cleanStart": True,
            "sessionExpiryInterval": 0,
            "security": {"type": "anonymous"},
        },
        "mapping": [
            {
                "topicFilter": READINGS_TOPIC,
                "subscriptionQos": 1,
                "converter": {
                    "type": "json",
                    "deviceInfo": {
                        "deviceNameExpressionSource": "constant",
                        "deviceNameExpression": SENSOR_DEVICE,
                        "deviceProfileExpressionSource": "constant",
                        "deviceProfileExpression": "default",
                    },
                    "sendDataOnlyOnChange": False,
                    "timeout": 60000,
                    "attributes": [],
                    "timeseries": [
                        series("seq", "integer"),
                        series("pages", "integer"),
                        series("printer", "string"),
                    ],
                },
            }
        ],
    }


def gateway_argv(venv: Path) -> list[str]:
    """The package's own command (``daemon()``), run by the venv's interpreter."""
    return [str(venv / "bin" / "python"), str(venv / "bin" / "thingsboard-gateway")]
