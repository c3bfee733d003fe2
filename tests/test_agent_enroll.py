"""`termfleet agent enroll` against a real Mosquitto and a fake claim service in the test.

The fake answers only requests carrying the test's own serial, so tests sharing the broker never
answer each other's claims.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import pwd
import stat
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey

import edge
from control_plane.cli import cli
from control_plane.services.broker import BrokerSettings, mosquitto_binary
from control_plane.services.processes import ManagedProcess, free_port
from edge import mqtt
from edge.agent.config import PASSWORD_ENV, load_config, read_password
from edge.agent.enroll import (
    CLAIM_PASSWORD_ENV,
    DEFAULT_CONFIG_PATH,
    DEFAULT_STATE_DIR,
    EnrollError,
    EnrollOptions,
    claim_server,
    enroll,
    read_serial,
)
from edge.protocol import (
    CLAIM_USERNAME,
    BrokerEndpoint,
    Channel,
    ClaimRequest,
    ClaimResponse,
    ClaimStatus,
    DeviceKind,
    decode_message,
    encode,
    topics,
)
from edge.protocol.claim_code import ClaimInput, enroll_link, new_code

BROKER_PASSWORD = "broker-pw-\u653f\u52a1-\"'\\"
CONTENT_KEY = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
INITIAL_CONFIG = {"heartbeat_interval_s": "60", "screen.idle\nnote": 'say "hi" \\ 你好'}
TLS_ENDPOINT = BrokerEndpoint(host="broker.example.org", port=8883, tls=True)

Answer = Callable[[ClaimRequest], ClaimResponse | bytes]


@dataclass
class Terminal:
    """One enrolling terminal of a test: its serial, where it writes, what the fake heard."""

    broker: BrokerSettings
    root: Path
    serial: str = field(default_factory=lambda: f"SN-{uuid.uuid4().hex[:12]}")
    heard: list[ClaimRequest] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / "etc" / "agent.toml"

    def options(self, **changes: Any) -> EnrollOptions:  # noqa: ANN401 - EnrollOptions fields
        base = EnrollOptions(
            claim=new_code(),
            kind=DeviceKind.KIOSK,
            server=self.broker.url,
            claim_password="claim-pw",
            serial=self.serial,
            hardware_model="HX-9000",
            config_path=self.config_path,
            state_dir=self.root / "state",
            timeout_s=5.0,
        )
        return dataclasses.replace(base, **changes)

    def written(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


@pytest.fixture
def terminal(broker: BrokerSettings, tmp_path: Path) -> Terminal:
    return Terminal(broker, tmp_path / "terminal")


def accept(endpoint: BrokerEndpoint = TLS_ENDPOINT, password: str = BROKER_PASSWORD) -> Answer:
    def answer(request: ClaimRequest) -> ClaimResponse:
        agent_key = PublicKey(base64.b64decode(request.agent_public_key))
        sealed = SealedBox(agent_key).encrypt(password.encode())
        return accepted(sealed_password=base64.b64encode(sealed).decode(), broker=endpoint)

    return answer


def accepted(**changes: object) -> ClaimResponse:
    response = ClaimResponse(
        status=ClaimStatus.ACCEPTED,
        device_id="kiosk-440117000-07",
        username="kiosk-440117000-07",
        broker=TLS_ENDPOINT,
        content_keys=(CONTENT_KEY,),
        config=INITIAL_CONFIG,
    )
    return msgspec.structs.replace(response, **changes)


@contextlib.asynccontextmanager
async def claim_service(terminal: Terminal, answer: Answer) -> AsyncIterator[None]:
    """A fake claim service answering ``terminal``'s requests with ``answer``."""
    address = mqtt.BrokerAddress.from_url(terminal.broker.url)
    session = mqtt.SessionOptions(client_id=f"claim-service-{uuid.uuid4().hex[:8]}")
    async with mqtt.connect(address, session) as connection:
        await connection.subscribe(topics.claim_request_filter())

        async def serve() -> None:
            async for incoming in connection.messages():
                message = decode_message(incoming.topic, incoming.payload)
                request = message.payload
                if not isinstance(request, ClaimRequest) or request.serial != terminal.serial:
                    continue
                terminal.heard.append(request)
                reply = answer(request)
                data = reply if isinstance(reply, bytes) else encode(reply)
                response_topic = topics.claim(message.topic.subject, Channel.RESPONSE)
                await connection.publish(mqtt.Outgoing(response_topic, data))

        task = asyncio.create_task(serve(), name="fake-claim-service")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def enroll_answered(terminal: Terminal, answer: Answer, **changes: Any) -> None:  # noqa: ANN401
    async with claim_service(terminal, answer):
        await enroll(terminal.options(**changes))


@pytest.fixture(autouse=True)
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(CLAIM_PASSWORD_ENV, raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_an_accepted_claim_writes_a_private_config_the_agent_loads(
    terminal: Terminal,
) -> None:
    code = new_code()
    async with claim_service(terminal, accept()):
        enrolled = await enroll(terminal.options(claim=code.lower().replace("-", " ")))

    config_path, password_file = (
        terminal.config_path,
        terminal.config_path.parent / "broker-password",
    )
    assert terminal.written() == sorted([config_path, password_file])
    assert (mode(config_path), mode(password_file)) == (0o600, 0o600)
    config = load_config(config_path)
    assert config.device_id == enrolled.device_id == "kiosk-440117000-07"
    assert config.kind is DeviceKind.KIOSK
    assert config.state_dir == str(terminal.root / "state")
    assert config.broker.url == enrolled.broker_url == "mqtts://broker.example.org:8883"
    assert config.broker.username == "kiosk-440117000-07"
    assert config.content_keys == (CONTENT_KEY,)
    assert config.initial_config == INITIAL_CONFIG
    assert read_password(config.broker) == BROKER_PASSWORD
    assert (enrolled.config_path, enrolled.password_file) == (config_path, password_file)

    [request] = terminal.heard
    assert request.claim_code == code.replace("-", "")
    assert (request.serial, request.kind, request.hardware_model) == (
        terminal.serial,
        DeviceKind.KIOSK,
        "HX-9000",
    )
    assert request.agent_version == edge.__version__
    assert request.at is not None
    assert len(base64.b64decode(request.agent_public_key)) == 32


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        (BrokerEndpoint(host="10.1.2.3", port=1883, tls=False), "mqtt://10.1.2.3:1883"),
        (BrokerEndpoint(host="mq.example.org", port=8884, tls=True), "mqtts://mq.example.org:8884"),
        (BrokerEndpoint(host="fd00::7", port=8883, tls=True), "mqtts://[fd00::7]:8883"),
    ],
)
async def test_the_broker_url_follows_the_endpoint(
    terminal: Terminal, endpoint: BrokerEndpoint, url: str
) -> None:
    await enroll_answered(terminal, accept(endpoint))

    assert load_config(terminal.config_path).broker.url == url


async def test_the_ca_file_is_kept_in_the_config(terminal: Terminal, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")

    await enroll_answered(terminal, accept(), ca_file=ca_file)

    assert load_config(terminal.config_path).broker.ca_file == str(ca_file)


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("expired", "claim refused: the claim code has expired"),
        ("used", "claim refused: the claim code has been used already"),
        ("unknown", "claim refused: the control plane does not know this claim code"),
        ("rate_limited", "claim refused: too many claim attempts"),
        ("already_enrolled", "claim refused: .* `termfleet provision reenroll` first"),
        ("site closed for audit", "claim refused: site closed for audit$"),
        ("", "claim refused: no reason given$"),
    ],
)
async def test_each_refusal_says_why_and_writes_nothing(
    terminal: Terminal, reason: str, message: str
) -> None:
    def refuse(_: ClaimRequest) -> ClaimResponse:
        return ClaimResponse(status=ClaimStatus.REFUSED, reason=reason)

    with pytest.raises(EnrollError, match=message):
        await enroll_answered(terminal, refuse)

    assert len(terminal.heard) == 1
    assert terminal.written() == []


async def test_no_answer_times_out_and_writes_nothing(terminal: Terminal) -> None:
    with pytest.raises(EnrollError) as raised:
        await enroll(terminal.options(timeout_s=0.3))

    assert str(raised.value) == (
        "no answer from the claim service within 0.3 s (is the control plane running?)"
    )
    assert terminal.written() == []


def sealed_to_another_key(_: ClaimRequest) -> ClaimResponse:
    sealed = SealedBox(PrivateKey.generate().public_key).encrypt(b"pw")
    return accepted(sealed_password=base64.b64encode(sealed).decode())


def with_changes(**changes: object) -> Answer:
    def answer(request: ClaimRequest) -> ClaimResponse:
        response = accept()(request)
        assert isinstance(response, ClaimResponse)
        return msgspec.structs.replace(response, **changes)

    return answer


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda _: b"{not json", "malformed JSON"),
        (lambda _: b'{"v": 1, "reason": "x"}', "missing required field `status`"),
        (lambda _: b'{"v": 1, "status": "deferred"}', "a status this agent does not know"),
        (lambda _: accepted(sealed_password="%%%"), "the sealed password is not base64"),
        (sealed_to_another_key, "the sealed password does not open"),
        (accept(password=" padded "), "an empty or space-padded broker password"),
        (with_changes(device_id="../etc/passwd"), "device id '../etc/passwd'"),
        (with_changes(username=""), "no broker username"),
        (with_changes(broker=BrokerEndpoint(host="")), "broker '' port 8883"),
        (with_changes(broker=BrokerEndpoint(host="a/b")), "broker 'a/b' port 8883"),
        (with_changes(broker=BrokerEndpoint(host="h", port=70000)), "broker 'h' port 70000"),
        (with_changes(content_keys=("c2hvcnQ=",)), "is no Ed25519 public key"),
    ],
)
async def test_a_malformed_answer_is_refused_and_writes_nothing(
    terminal: Terminal, answer: Answer, message: str
) -> None:
    with pytest.raises(EnrollError, match=f"^malformed answer from the claim service: .*{message}"):
        await enroll_answered(terminal, answer)

    assert terminal.written() == []


async def test_an_existing_config_is_refused_unless_forced(terminal: Terminal) -> None:
    terminal.config_path.parent.mkdir(parents=True)
    terminal.config_path.write_text('device_id = "old"\nkind = "kiosk"\n')

    with pytest.raises(EnrollError, match=r"looks enrolled already.*provision reenroll"):
        await enroll_answered(terminal, accept())
    assert terminal.heard == []  # refused before the single-use code was spent

    await enroll_answered(terminal, accept(), force=True)
    assert load_config(terminal.config_path).device_id == "kiosk-440117000-07"


async def test_a_typo_in_the_code_is_refused_before_connecting(terminal: Terminal) -> None:
    code = new_code()
    typo = ("1" if code[0] != "1" else "2") + code[1:]

    with pytest.raises(EnrollError, match="typo"):
        await enroll_answered(terminal, accept(), claim=typo)
    assert terminal.heard == []


async def test_an_unwritable_config_directory_is_refused_before_connecting(
    terminal: Terminal,
) -> None:
    terminal.root.mkdir()
    (terminal.root / "etc").write_text("a file where the directory should be")

    with pytest.raises(EnrollError, match="not a directory this user may write"):
        await enroll_answered(terminal, accept())
    assert terminal.heard == []


async def test_an_unreachable_claim_server_says_so(terminal: Terminal) -> None:
    with pytest.raises(EnrollError, match="cannot reach the claim server"):
        await enroll(terminal.options(server=f"mqtt://127.0.0.1:{free_port()}"))
    assert terminal.written() == []


def password_line(username: str, password: str) -> str:
    """A Mosquitto password file line ($7$: PBKDF2-SHA512), as mosquitto_passwd writes it."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    encoded = [base64.b64encode(b).decode() for b in (salt, digest)]
    return f"{username}:$7$101${encoded[0]}${encoded[1]}\n"


@pytest.fixture
def guarded_broker(tmp_path: Path) -> Iterator[BrokerSettings]:
    """A Mosquitto that lets in only the claim user with the password "right-pw"."""
    settings = BrokerSettings(workdir=tmp_path / "guarded", port=free_port())
    settings.workdir.mkdir()
    passwords = settings.workdir / "passwords"
    passwords.write_text(password_line(CLAIM_USERNAME, "right-pw"))
    passwords.chmod(0o600)
    conf = settings.workdir / "mosquitto.conf"
    conf.write_text(
        # As in control_plane.services.broker: as root Mosquitto would drop to a user that cannot
        # read the test's files.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        f"listener {settings.port} {settings.host}\n"
        f"allow_anonymous false\npassword_file {passwords}\n"
    )
    argv = [mosquitto_binary(), "-c", str(conf)]
    proc = ManagedProcess("mosquitto", argv, settings.workdir / "mosquitto.log")
    proc.start_and_wait_port(settings.host, settings.port)
    yield settings
    proc.stop()


async def test_a_wrong_claim_password_is_named(
    guarded_broker: BrokerSettings, tmp_path: Path
) -> None:
    terminal = Terminal(guarded_broker, tmp_path / "terminal")

    with pytest.raises(EnrollError, match=r"^the claim password is wrong: .* refused it"):
        await enroll(terminal.options(claim_password="wrong-pw"))
    assert terminal.written() == []
    # The right one gets through to the exchange, which times out with no claim service there.
    with pytest.raises(EnrollError, match="no answer from the claim service"):
        await enroll(terminal.options(claim_password="right-pw", timeout_s=0.2))


async def test_the_cli_enrolls_from_a_link_and_prints_json(terminal: Terminal) -> None:
    link = enroll_link(new_code(), terminal.broker.url, "claim-pw-from-link")
    args = ["agent", "enroll", "--claim", link, "--kind", "review_pad", "--serial", terminal.serial]
    args += ["--config", str(terminal.config_path), "--state-dir", str(terminal.root / "st")]
    async with claim_service(terminal, accept()):
        result = await asyncio.to_thread(CliRunner().invoke, cli, [*args, "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "device_id": "kiosk-440117000-07",
        "config": str(terminal.config_path),
        "password_file": str(terminal.config_path.parent / "broker-password"),
        "broker_url": "mqtts://broker.example.org:8883",
    }
    assert load_config(terminal.config_path).kind is DeviceKind.REVIEW_PAD


async def test_the_cli_says_what_comes_next_and_reports_refusals(terminal: Terminal) -> None:
    args = ["agent", "enroll", "--claim", new_code(), "--server", terminal.broker.url]
    args += ["--kind", "kiosk", "--serial", terminal.serial, "--config", str(terminal.config_path)]
    env = {CLAIM_PASSWORD_ENV: "claim-pw"}
    async with claim_service(terminal, accept()):
        done = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
        again = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)

    assert done.exit_code == 0, done.output
    assert f"termfleet agent run --config {terminal.config_path}" in done.output
    assert "self-test" in done.output
    assert again.exit_code == 1
    assert "Error: " in again.output
    assert "looks enrolled already" in again.output


LINK_CLAIM = ClaimInput("X", server="mqtts://from-link:8883", claim_password="link-pw")
NO_LINK = ClaimInput("X")


@pytest.mark.parametrize(
    ("server", "password", "claim", "env", "expected"),
    [
        ("mqtt://opt:1", "opt-pw", LINK_CLAIM, {CLAIM_PASSWORD_ENV: "env-pw"}, ("opt", "opt-pw")),
        (None, None, LINK_CLAIM, {CLAIM_PASSWORD_ENV: "env-pw"}, ("from-link", "link-pw")),
        ("mqtt://opt:1", None, NO_LINK, {CLAIM_PASSWORD_ENV: "env-pw"}, ("opt", "env-pw")),
    ],
)
def test_options_come_before_the_link_and_the_link_before_the_environment(
    server: str | None,
    password: str | None,
    claim: ClaimInput,
    env: dict[str, str],
    expected: tuple[str, str],
) -> None:
    options = EnrollOptions(claim="", kind=DeviceKind.KIOSK, server=server, claim_password=password)

    address = claim_server(options, claim, env)

    assert (address.host, address.password, address.username) == (*expected, CLAIM_USERNAME)


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (None, "no claim server: pass --server"),
        ("http://x", "must look like mqtt://host:port"),
        ("mqtt://x:1", f"no claim password: set {CLAIM_PASSWORD_ENV}"),
    ],
)
def test_a_missing_server_or_password_is_named(server: str | None, message: str) -> None:
    options = EnrollOptions(claim="", kind=DeviceKind.KIOSK, server=server)

    with pytest.raises(EnrollError, match=message):
        claim_server(options, NO_LINK, {})


async def test_bad_local_options_are_refused_before_connecting(terminal: Terminal) -> None:
    changes: list[tuple[dict[str, Any], str]] = [
        ({"kind": DeviceKind.UNKNOWN}, "kind is required: one of kiosk, review_pad"),
        ({"timeout_s": 0.0}, "timeout must be a positive number"),
        ({"ca_file": terminal.root / "missing.pem"}, "CA file .* is not a readable file"),
    ]
    for change, message in changes:
        with pytest.raises(EnrollError, match=message):
            await enroll_answered(terminal, accept(), **change)
    assert terminal.heard == []


def test_the_serial_skips_placeholders_and_unreadable_sources(tmp_path: Path) -> None:
    dmi, machine_id = tmp_path / "product_serial", tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef\n")
    assert read_serial([dmi, machine_id]) == "0123456789abcdef"
    dmi.write_text("To Be Filled By O.E.M.\n")
    assert read_serial([dmi, machine_id]) == "0123456789abcdef"
    dmi.write_text("  PF2ABCDE \n")
    assert read_serial([dmi, machine_id]) == "PF2ABCDE"


def test_no_serial_anywhere_asks_for_one(tmp_path: Path) -> None:
    with pytest.raises(EnrollError, match=r"serial number in .*; pass --serial"):
        read_serial([tmp_path / "product_serial", tmp_path / "machine-id"])


def test_the_cli_help_shows_the_defaults_enrollment_uses() -> None:
    result = CliRunner().invoke(cli, ["agent", "enroll", "--help"], terminal_width=200)

    assert f"[default: {DEFAULT_CONFIG_PATH}]" in result.output
    assert f"[default: {DEFAULT_STATE_DIR}]" in result.output
