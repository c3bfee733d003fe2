"""Run Prometheus scraping the control plane, for the demo and the tests."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .processes import ManagedProcess

SCRAPE_INTERVAL_S = 5


@dataclass(frozen=True)
class PrometheusSettings:
    workdir: Path
    port: int
    targets: tuple[str, ...]
    """host:port of each control plane to scrape."""
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def alert_rules_dir() -> Path:
    """The alert rules compose's Prometheus loads too: ``monitoring/prometheus/rules``.

    Package data of ``monitoring``, so an installed wheel has them as well as a checkout.
    """
    return Path(str(resources.files("monitoring") / "prometheus" / "rules"))


def write_config(settings: PrometheusSettings) -> Path:
    targets = ", ".join(f'"{t}"' for t in settings.targets)
    path = settings.workdir / "prometheus.yml"
    settings.workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by termfleet for a local run; docker compose uses monitoring/prometheus/.\n"
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL_S}s\n"
        "# The same alert rules as docker compose; the demo has no Alertmanager: see /alerts.\n"
        "rule_files:\n"
        f"  - {json.dumps(str(alert_rules_dir() / '*.yml'))}\n"
        "scrape_configs:\n"
        "  - job_name: termfleet-control-plane\n"
        "    static_configs:\n"
        f"      - targets: [{targets}]\n"
    )
    return path


def start_prometheus(settings: PrometheusSettings, binary: str) -> ManagedProcess:
    config = write_config(settings)
    return ManagedProcess(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={settings.workdir / 'data'}",
            f"--web.listen-address={settings.host}:{settings.port}",
            "--log.level=warn",
        ],
        log_path=settings.workdir / "prometheus.log",
    ).start_and_wait_port(settings.host, settings.port)
