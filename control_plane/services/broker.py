"""Run Mosquitto with termfleet's own configuration on a port of our choosing."""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .processes import ManagedProcess, ProcessError

SHARED_CONF_DIR = "mosquitto.d"


@dataclass(frozen=True)
class TlsFiles:
    """The broker's certificate and key (PEM) for an MQTT-over-TLS listener."""

    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class BrokerSettings:
    """Where one broker instance listens and keeps its state."""

    workdir: Path
    port: int
    host: str = "127.0.0.1"
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if found is None:
        msg = "mosquitto is not installed (Debian: apt-get install mosquitto mosquitto-clients)"
        raise ProcessError(msg)
    return found


def write_config(settings: BrokerSettings) -> Path:
    """Render the broker's main config into ``workdir``; it includes the shared settings file."""
    conf_dir = settings.workdir / "conf.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    shared = resources.files(__package__).joinpath(SHARED_CONF_DIR)
    for entry in shared.iterdir():
        if entry.name.endswith(".conf"):
            (conf_dir / entry.name).write_text(entry.read_text())
    data_dir = settings.workdir / "data"
    data_dir.mkdir(exist_ok=True)
    main = settings.workdir / "mosquitto.conf"
    main.write_text(
        "\n".join(
            [
                "# Written by termfleet; edit control_plane/services/mosquitto.d/ instead.",
                # Mosquitto started as root drops to the 'mosquitto' user, which could not write
                # our work directory; run as whoever started it.
                f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                "per_listener_settings false",
                # Anonymous access is for the unauthenticated walking skeleton only; enrollment
                # (dynamic security, one client per terminal) replaces it.
                "allow_anonymous true",
                f"listener {settings.port} {settings.host}",
                *(
                    [f"certfile {settings.tls.certfile}", f"keyfile {settings.tls.keyfile}"]
                    if settings.tls
                    else []
                ),
                "persistence true",
                f"persistence_location {data_dir}/",
                f"include_dir {conf_dir}",
                "",
            ]
        )
    )
    return main


def start_broker(settings: BrokerSettings) -> ManagedProcess:
    """Start Mosquitto and wait until it accepts connections."""
    config = write_config(settings)
    return ManagedProcess(
        name="mosquitto",
        argv=[mosquitto_binary(), "-c", str(config)],
        log_path=settings.workdir / "mosquitto.log",
    ).start_and_wait_port(settings.host, settings.port)
