"""Enrollment: exchange a claim code for the terminal's permanent identity and write it to disk.

The exchange uses the restricted claim credentials (``CLAIM_USERNAME``), which can do nothing but
publish one request under a random claim id and read that id's response. The broker password in
the answer is sealed to a key pair made for this one exchange, so other holders of the claim
credentials cannot read it off the response topic.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nacl.public import PrivateKey

import edge
from edge import mqtt
from edge.aio import cancel_and_wait
from edge.protocol import (
    CLAIM_TIMEOUT_S,
    CLAIM_USERNAME,
    Channel,
    ClaimRequest,
    ClaimResponse,
    DeviceKind,
    ProtocolError,
    decode_message,
    encode,
    topics,
)
from edge.protocol.claim_code import ClaimCodeError, ClaimInput, parse_claim

from .config import AgentConfig, BrokerConfig
from .enroll_answer import EnrollError, Identity, MalformedAnswerError, accepted_identity
from .enroll_files import (
    PASSWORD_FILE_NAME,
    EnrollFileError,
    check_not_enrolled,
    check_writable,
    render_config,
    write_enrollment,
)

__all__ = [
    "CLAIM_PASSWORD_ENV",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STATE_DIR",
    "EnrollError",
    "EnrollOptions",
    "Enrolled",
    "enroll",
]

CLAIM_PASSWORD_ENV = "TERMFLEET_CLAIM_PASSWORD"  # noqa: S105 - a variable name, not a secret
DEFAULT_CONFIG_PATH = Path("/etc/termfleet/agent.toml")
DEFAULT_STATE_DIR = Path("/var/lib/termfleet-agent")
SERIAL_SOURCES = (Path("/sys/class/dmi/id/product_serial"), Path("/etc/machine-id"))
"""The board's serial when the firmware fills it in (readable by root only), else the machine id."""
MODEL_SOURCE = Path("/sys/class/dmi/id/product_name")
PLACEHOLDER_SERIALS = frozenset(
    {"", "0", "none", "default string", "to be filled by o.e.m.", "system serial number"}
)
"""What cheap boards' firmware leaves in the serial field: shared by every unit, so useless."""
_CREDENTIALS_REFUSED = frozenset({4, 5, 134, 135})
"""CONNACK codes for bad credentials: MQTT 3.1.1 return codes 4, 5; MQTT 5 reasons 0x86, 0x87."""


@dataclass(frozen=True, slots=True)
class EnrollOptions:
    """What ``termfleet agent enroll`` was given; None means "find it out" (see each field)."""

    claim: str
    """A typed claim code, or a ``termfleet://enroll?…`` link."""
    kind: DeviceKind
    server: str | None = None
    """mqtt(s)://host:port of the claim server; overrides the link's."""
    claim_password: str | None = None
    """Overrides the link's; without either, the environment's ``CLAIM_PASSWORD_ENV``."""
    serial: str | None = None
    """None: read from ``SERIAL_SOURCES``."""
    hardware_model: str | None = None
    """None: read from ``MODEL_SOURCE``, or empty."""
    config_path: Path = DEFAULT_CONFIG_PATH
    state_dir: Path = DEFAULT_STATE_DIR
    ca_file: Path | None = None
    """The CA of the broker's certificate, for mqtts://; also written into the config."""
    timeout_s: float = CLAIM_TIMEOUT_S
    force: bool = False
    """Overwrite an existing config (after an administrator's ``provision reenroll``)."""


@dataclass(frozen=True, slots=True)
class Enrolled:
    device_id: str
    config_path: Path
    password_file: Path
    broker_url: str


async def enroll(options: EnrollOptions, env: Mapping[str, str] | None = None) -> Enrolled:
    """Claim an identity and write the agent's config and password files; raises EnrollError.

    Everything that can be checked here is checked before connecting: a claim code is single-use
    and should not be spent by a terminal that then cannot use the answer. A refusal, a timeout
    or a malformed answer leaves the disk as it was.
    """
    claim = _parse_claim(options.claim)
    _check_options(options)
    address = claim_server(options, claim, os.environ if env is None else env)
    serial = options.serial or read_serial()
    model = read_hardware_model() if options.hardware_model is None else options.hardware_model
    key = PrivateKey.generate()
    request = ClaimRequest(
        claim_code=claim.code,
        serial=serial,
        kind=options.kind,
        hardware_model=model,
        agent_version=edge.__version__,
        agent_public_key=base64.b64encode(bytes(key.public_key)).decode("ascii"),
        at=datetime.now(UTC),
    )
    response = await exchange(address, new_claim_id(), request, options.timeout_s)
    identity = accepted_identity(response, key)
    config = agent_config(identity, options)
    try:
        text = render_config(config)
    except ValueError as exc:
        msg = f"the claim service's answer does not make a usable agent config: {exc}"
        raise EnrollError(msg) from None
    password_file = Path(config.broker.password_file)
    try:
        write_enrollment(options.config_path, text, password_file, identity.password)
    except EnrollFileError as exc:
        raise EnrollError(str(exc)) from None
    return Enrolled(identity.device_id, options.config_path, password_file, identity.broker_url)


def _parse_claim(text: str) -> ClaimInput:
    try:
        return parse_claim(text)
    except ClaimCodeError as exc:
        raise EnrollError(str(exc)) from None


def _check_options(options: EnrollOptions) -> None:
    try:
        check_not_enrolled(options.config_path, force=options.force)
        check_writable(options.config_path)
    except EnrollFileError as exc:
        raise EnrollError(str(exc)) from None
    if options.kind is DeviceKind.UNKNOWN:
        known = ", ".join(k.value for k in DeviceKind if k is not DeviceKind.UNKNOWN)
        msg = f"the terminal's kind is required: one of {known}"
        raise EnrollError(msg)
    if not options.timeout_s > 0:
        msg = f"the timeout must be a positive number of seconds, not {options.timeout_s}"
        raise EnrollError(msg)
    if options.ca_file is not None and not options.ca_file.is_file():
        msg = f"the CA file {options.ca_file} is not a readable file"
        raise EnrollError(msg)


def claim_server(
    options: EnrollOptions, claim: ClaimInput, env: Mapping[str, str]
) -> mqtt.BrokerAddress:
    """The claim server with the claim credentials: options first, then the link, then ``env``."""
    url = options.server or claim.server
    if not url:
        msg = "no claim server: pass --server mqtts://host:port, or use a link that carries it"
        raise EnrollError(msg)
    try:
        address = mqtt.BrokerAddress.from_url(url)
    except ValueError as exc:
        raise EnrollError(str(exc)) from None
    password = options.claim_password or claim.claim_password or env.get(CLAIM_PASSWORD_ENV)
    if not password:
        msg = f"no claim password: set {CLAIM_PASSWORD_ENV}, or use a link that carries it"
        raise EnrollError(msg)
    ca_file = str(options.ca_file) if options.ca_file else None
    return dataclasses.replace(address.with_credentials(CLAIM_USERNAME, password), ca_file=ca_file)


def read_serial(sources: Sequence[Path] = SERIAL_SOURCES) -> str:
    """The first real serial among ``sources``; EnrollError when none gives one."""
    for source in sources:
        serial = _read_text(source)
        if serial.lower() not in PLACEHOLDER_SERIALS:
            return serial
    tried = " or ".join(str(source) for source in sources)
    msg = f"cannot find the terminal's serial number in {tried}; pass --serial"
    raise EnrollError(msg)


def read_hardware_model(source: Path = MODEL_SOURCE) -> str:
    return _read_text(source)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


REPEAT_REQUEST_S = 2.0


def new_claim_id() -> str:
    """128 random bits in lowercase hex: unguessable, and valid as one topic level."""
    return secrets.token_hex(16)


async def exchange(
    address: mqtt.BrokerAddress, claim_id: str, request: ClaimRequest, timeout_s: float
) -> ClaimResponse:
    """Publish the request under ``claim_id`` and return the first answer; raises EnrollError."""
    session = mqtt.SessionOptions(client_id=f"claim-{claim_id}", clean_start=True, expiry_s=0)
    response_topic = topics.claim(claim_id, Channel.RESPONSE)
    # Never delivered after this terminal has given up: an answer nobody reads would use up
    # the code for nothing.
    request_message = mqtt.Outgoing(
        topics.claim(claim_id, Channel.REQUEST),
        encode(request),
        expiry_s=max(1, math.ceil(timeout_s)),
    )
    try:
        async with mqtt.connect(address, session) as connection:
            # Subscribed before asking: the claim service may answer before a later SUBACK.
            await connection.subscribe(response_topic, qos=1)
            asking = asyncio.create_task(_ask(connection, request_message))
            try:
                async with asyncio.timeout(timeout_s):
                    return await _first_response(connection, response_topic)
            except TimeoutError:
                msg = (
                    f"no answer from the claim service within {timeout_s:g} s "
                    "(is the control plane running?)"
                )
                raise EnrollError(msg) from None
            finally:
                await cancel_and_wait([asking])
    except mqtt.MqttError as exc:
        raise EnrollError(_connection_failure(address, exc)) from None


async def _ask(connection: mqtt.Connection, request: mqtt.Outgoing) -> None:
    """Send the request, and again now and then until cancelled.

    A claim service that is reconnecting (a broker restart, a control plane starting) has no
    subscription, and the broker drops what nobody subscribes to. The claim id makes a repeat
    the same exchange: the service answers it as it answered the first (provisioning.
    claim_service), never enrolling twice.
    """
    while True:
        await connection.publish(request)
        await asyncio.sleep(REPEAT_REQUEST_S)


async def _first_response(connection: mqtt.Connection, response_topic: str) -> ClaimResponse:
    async for incoming in connection.messages():
        if incoming.topic != response_topic:
            continue
        try:
            payload = decode_message(incoming.topic, incoming.payload).payload
        except ProtocolError as exc:
            raise MalformedAnswerError(str(exc)) from None
        if not isinstance(payload, ClaimResponse):
            msg = f"a {type(payload).__name__}"
            raise MalformedAnswerError(msg)
        return payload
    msg = "the connection closed before the claim service answered"
    raise EnrollError(msg)


def _connection_failure(address: mqtt.BrokerAddress, exc: mqtt.MqttError) -> str:
    # edge.mqtt keeps the client library's error as the cause; its CONNACK code is in ``rc``.
    code = getattr(exc.__cause__, "rc", None)
    if code is not None and getattr(code, "value", code) in _CREDENTIALS_REFUSED:
        return (
            f"the claim password is wrong: the claim server {address} refused it; "
            f"check {CLAIM_PASSWORD_ENV} or the enrollment link"
        )
    return f"cannot reach the claim server: {exc}"


def agent_config(identity: Identity, options: EnrollOptions) -> AgentConfig:
    """The config the terminal runs with; paths absolute, whatever directory this ran in."""
    config_dir = options.config_path.absolute().parent
    broker = BrokerConfig(
        url=identity.broker_url,
        username=identity.username,
        password_file=str(config_dir / PASSWORD_FILE_NAME),
        ca_file=str(options.ca_file.absolute()) if options.ca_file else "",
    )
    return AgentConfig(
        device_id=identity.device_id,
        kind=options.kind,
        state_dir=str(options.state_dir.absolute()),
        broker=broker,
        content_keys=identity.content_keys,
        initial_config=identity.initial_config,
    )
