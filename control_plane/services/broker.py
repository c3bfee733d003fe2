"""Run Mosquitto with termfleet's own configuration on a port of our choosing."""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edge.atomic_file import too_open

from .processes import ManagedProcess, ProcessError

SHARED_CONF_DIR = "mosquitto.d"
DYNSEC_PLUGIN_ENV = "TERMFLEET_MOSQUITTO_DYNSEC_PLUGIN"
DYNSEC_PLUGIN_GLOBS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",  # Debian and Ubuntu (multiarch)
    "/usr/lib/mosquitto_dynamic_security.so",  # the eclipse-mosquitto image
    "/usr/lib/mosquitto/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)


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
    dynsec_file: Path | None = None
    """The dynamic-security plugin's file (``provisioning.broker_file`` writes it): logins and
    ACLs, anonymous access off. None runs the broker open to anyone, for tests of other parts."""

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


def dynsec_plugin() -> str:
    found = os.environ.get(DYNSEC_PLUGIN_ENV) or next(
        (
            str(hit)
            for pattern in DYNSEC_PLUGIN_GLOBS
            for hit in sorted(Path("/").glob(pattern[1:]))
        ),
        None,
    )
    if found is None or not Path(found).exists():
        msg = (
            "Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) is not installed"
            f" where termfleet looks; set {DYNSEC_PLUGIN_ENV} to its path"
        )
        raise ProcessError(msg)
    return found


def check_dynsec_file(path: Path) -> None:
    """Refuse to start a broker whose plugin could not save its file.

    Mosquitto 2.0.11 does not say so when a save fails: the change lives in memory only and is
    gone at the next start, or a full disk leaves a truncated file that locks everyone out.
    """
    try:
        perms = too_open(path)
    except OSError as exc:
        msg = f"the broker's dynamic-security file {path}: {exc.strerror}"
        raise ProcessError(msg) from exc
    if perms:
        msg = f"{path} holds password hashes and must be chmod 600, is {perms}"
        raise ProcessError(msg)
    if not os.access(path, os.W_OK):
        msg = f"{path} is not writable: the broker would keep every change in memory only"
        raise ProcessError(msg)
    free = shutil.disk_usage(path.parent).free
    if free < 2 * path.stat().st_size:
        msg = f"{path.parent} has {free} bytes free, too few for the broker to rewrite {path}"
        raise ProcessError(msg)


def _security_lines(settings: BrokerSettings) -> list[str]:
    if settings.dynsec_file is None:
        # For tests of parts other than broker security only; nothing termfleet deploys.
        return ["allow_anonymous true"]
    return [
        "allow_anonymous false",
        f"plugin {dynsec_plugin()}",
        f"plugin_opt_config_file {settings.dynsec_file}",
        # The plugin's only word of a failed save is an error log line; the control plane
        # reads the error log on $SYS/broker/log/E (provisioning.dynsec.LOG_ERRORS_TOPIC).
        "log_dest stderr",
        "log_dest topic",
    ]


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
                *_security_lines(settings),
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
    if settings.dynsec_file is not None:
        check_dynsec_file(settings.dynsec_file)
    config = write_config(settings)
    return ManagedProcess(
        name="mosquitto",
        argv=[mosquitto_binary(), "-c", str(config)],
        log_path=settings.workdir / "mosquitto.log",
    ).start_and_wait_port(settings.host, settings.port)
