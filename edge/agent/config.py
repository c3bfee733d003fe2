"""The agent's TOML config: identity written by provisioning plus runtime settings.

Unknown keys are refused with the key named, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from edge.atomic_file import too_open
from edge.protocol import MAX_RECORDS_PER_MESSAGE, DeviceKind, PeripheralKind
from edge.protocol.common import DeviceId
from firmware_bridge.usb_ids import UsbId

from .delivery import ACK_TIMEOUT_S, MAX_IN_FLIGHT
from .outbox import DEFAULT_MAX_BYTES

PASSWORD_ENV = "TERMFLEET_MQTT_PASSWORD"  # noqa: S105 - a variable name, not a secret


class ConfigError(ValueError):
    """The agent's config file is missing, malformed or unsafe."""


class BrokerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str = "mqtt://127.0.0.1:1883"
    username: str = ""
    password_file: str = ""
    """A file with the broker password, readable by its owner only (0600)."""
    ca_file: str = ""
    cert_file: str = ""
    """This terminal's client certificate (PEM), for a broker that requires one (mqtts:// only)."""
    key_file: str = ""
    """The client certificate's private key (PEM, no passphrase), owner-only (0600)."""
    session_expiry_s: Annotated[int, msgspec.Meta(ge=0)] = 7 * 24 * 3600
    keepalive_s: Annotated[int, msgspec.Meta(ge=4, le=65535)] = 30
    """A dead link is noticed within about this long; the broker sends the will after 0.75 x.

    At least 4: the MQTT client checks its timers once a second.
    """


class TelemetryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    heartbeat_interval_s: Annotated[float, msgspec.Meta(ge=0.1)] = 30.0
    full_snapshot_every: Annotated[int, msgspec.Meta(ge=1)] = 10
    """Every Nth heartbeat is a full snapshot; the others carry only what changed."""


class OutboxConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_bytes: Annotated[int, msgspec.Meta(ge=1024 * 1024)] = DEFAULT_MAX_BYTES
    """Disk the outbox (``state_dir/outbox.sqlite3``) may use before the near-full alarm fires
    at 80 %; records are kept past it, never dropped."""


class DeliveryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = MAX_IN_FLIGHT
    """Records published and not yet acknowledged by the control plane, at most."""
    ack_timeout_s: Annotated[float, msgspec.Meta(ge=0.1)] = ACK_TIMEOUT_S
    """A record unacknowledged this long after publishing is published again."""
    records_per_message: Annotated[int, msgspec.Meta(ge=1, le=MAX_RECORDS_PER_MESSAGE)] = (
        MAX_RECORDS_PER_MESSAGE
    )
    """A backlog goes up this many records to a message (a JSON array); 1 sends each record on
    its own, for a control plane older than record arrays."""


class ContentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Packages (content, catalogs, firmware) on this terminal (docs/content.md)."""

    dir: str = ""
    """Where installed packages live; default ``state_dir/content``."""
    idle_after_s: Annotated[float, msgspec.Meta(ge=0)] = 600.0
    """No citizen session for this long and the terminal is idle (installs ``when_idle``)."""
    ca_file: str = ""
    """The CA for HTTPS package downloads; default: the broker's ``ca_file``, else the system's."""


PeripheralName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class UsbPeripheralConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One USB peripheral of this terminal (``[[usb_peripherals]]``), replacing the defaults."""

    name: PeripheralName
    """Unique on the terminal, e.g. printer0; the heartbeat and the self-test name it so."""
    kind: PeripheralKind
    ids: tuple[str, ...] = ()
    """Vendor:product ids in hex as lsusb prints them (``0416:5011``); empty for the driver's."""
    presence_only: bool = False
    """Only watch that it is there, never claim it: for a printer the kiosk's own application
    prints to through its kernel driver (usblp, CUPS)."""


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    device_id: DeviceId
    kind: DeviceKind
    state_dir: str = "/var/lib/termfleet-agent"
    broker: BrokerConfig = BrokerConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    outbox: OutboxConfig = OutboxConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    content_keys: tuple[str, ...] = ()
    """Ed25519 public keys (base64) whose signatures the agent accepts on content (enrollment)."""
    content: ContentConfig = ContentConfig()
    initial_config: dict[str, str] = msgspec.field(default_factory=dict)
    """The settings the control plane handed over at enrollment, until its first desired config."""
    peripherals: Literal["none", "simulated", "usb"] = "none"
    """Where the peripherals are: none; ``usb``, driven through libusb; or ``simulated``, the
    same drivers on a simulated USB bus with this kind's virtual devices (demos, tests)."""
    usb_peripherals: tuple[UsbPeripheralConfig, ...] = ()
    """This terminal's peripherals where they differ from its kind's (docs/peripherals.md)."""


def load_config(path: Path) -> AgentConfig:
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read agent config {path}: {exc.strerror}"
        raise ConfigError(msg) from exc
    try:
        config = msgspec.toml.decode(data, type=AgentConfig)
    except msgspec.DecodeError as exc:
        msg = f"{path}: {exc}"
        raise ConfigError(msg) from exc
    config = _resolve_paths(config, path.parent)
    _check_broker_files(path, config.broker)
    if config.content.ca_file and not Path(config.content.ca_file).is_file():
        msg = f"{path}: content.ca_file {config.content.ca_file} is not a readable file"
        raise ConfigError(msg)
    _check_peripherals(path, config.usb_peripherals)
    if config.kind is DeviceKind.UNKNOWN:
        # Over the wire an unknown kind is tolerated; in our own file it is a typo.
        known = ", ".join(k.value for k in DeviceKind if k is not DeviceKind.UNKNOWN)
        msg = f"{path}: kind must be one of {known}"
        raise ConfigError(msg)
    return config


def _check_broker_files(path: Path, broker: BrokerConfig) -> None:
    for key, value in (("ca_file", broker.ca_file), ("cert_file", broker.cert_file)):
        if value and not Path(value).is_file():
            msg = f"{path}: broker.{key} {value} is not a readable file"
            raise ConfigError(msg)
    if broker.cert_file or broker.key_file:
        _check_client_certificate(path, broker)


def _check_client_certificate(path: Path, broker: BrokerConfig) -> None:
    if not broker.cert_file or not broker.key_file:
        missing = "key_file" if broker.cert_file else "cert_file"
        msg = f"{path}: broker.{missing} is missing: a client certificate needs cert and key"
        raise ConfigError(msg)
    if urlsplit(broker.url).scheme != "mqtts":
        # Over plain TCP the certificate would never be presented: say so rather than ignore it.
        msg = f"{path}: broker.cert_file and key_file need an mqtts:// url, not {broker.url}"
        raise ConfigError(msg)
    key = Path(broker.key_file)
    if not key.is_file():
        msg = f"{path}: broker.key_file {key} is not a readable file"
        raise ConfigError(msg)
    try:
        perms = too_open(key)
    except OSError as exc:
        msg = f"{path}: cannot examine broker.key_file {key}: {exc.strerror}"
        raise ConfigError(msg) from exc
    if perms:
        msg = f"{path}: broker.key_file {key} must be readable by its owner only (chmod 600), is "
        raise ConfigError(msg + perms)


def _check_peripherals(path: Path, peripherals: tuple[UsbPeripheralConfig, ...]) -> None:
    names = [p.name for p in peripherals]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        msg = f"{path}: usb_peripherals names must be unique; repeated: {', '.join(duplicates)}"
        raise ConfigError(msg)
    for peripheral in peripherals:
        if peripheral.kind is PeripheralKind.UNKNOWN:
            msg = f"{path}: usb_peripherals {peripheral.name}: unknown kind"
            raise ConfigError(msg)
        if peripheral.presence_only and not peripheral.ids:
            msg = f"{path}: usb_peripherals {peripheral.name}: presence_only needs its ids"
            raise ConfigError(msg)
        for usb_id in peripheral.ids:
            try:
                UsbId.parse(usb_id)
            except ValueError as exc:
                msg = f"{path}: usb_peripherals {peripheral.name}: {exc}"
                raise ConfigError(msg) from None


def _resolve_paths(config: AgentConfig, base: Path) -> AgentConfig:
    """Relative paths in the file are relative to the file, not to wherever the agent starts."""

    def resolve(value: str) -> str:
        return str(base / value) if value and not Path(value).is_absolute() else value

    broker = msgspec.structs.replace(
        config.broker,
        password_file=resolve(config.broker.password_file),
        ca_file=resolve(config.broker.ca_file),
        cert_file=resolve(config.broker.cert_file),
        key_file=resolve(config.broker.key_file),
    )
    content = msgspec.structs.replace(
        config.content, dir=resolve(config.content.dir), ca_file=resolve(config.content.ca_file)
    )
    return msgspec.structs.replace(
        config, state_dir=resolve(config.state_dir), broker=broker, content=content
    )


def read_password(config: BrokerConfig) -> str | None:
    """The broker password from the environment, else from a 0600 file, else None."""
    if secret := os.environ.get(PASSWORD_ENV):
        return secret
    if not config.password_file:
        return None
    path = Path(config.password_file)
    try:
        perms = too_open(path)
    except OSError as exc:
        msg = f"cannot read password file {path}: {exc.strerror}"
        raise ConfigError(msg) from exc
    if perms:
        msg = f"password file {path} must be readable by its owner only (chmod 600), is {perms}"
        raise ConfigError(msg)
    try:
        return path.read_text().strip()
    except OSError as exc:
        msg = f"cannot read password file {path}: {exc.strerror}"
        raise ConfigError(msg) from exc
