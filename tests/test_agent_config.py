"""The agent's TOML config: full and minimal files, refusals that name the key, the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.agent.config import (
    PASSWORD_ENV,
    AgentConfig,
    BrokerConfig,
    ConfigError,
    DeliveryConfig,
    OutboxConfig,
    TelemetryConfig,
    load_config,
    read_password,
)
from edge.protocol import DeviceKind

MINIMAL = 'device_id = "kiosk-440117000-01"\nkind = "kiosk"\n'

FULL = """\
device_id = "station-440117001001-01"
kind = "station_pc"
state_dir = "state"

[broker]
url = "mqtts://broker.example.org:8883"
username = "station-440117001001-01"
password_file = "secret"
ca_file = "ca.pem"
cert_file = "certs/station.pem"
key_file = "certs/station.key"
session_expiry_s = 3600
keepalive_s = 45

[telemetry]
heartbeat_interval_s = 12.5
full_snapshot_every = 4

[outbox]
max_bytes = 67108864

[delivery]
max_in_flight = 200
ack_timeout_s = 45.5
"""


@pytest.fixture
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> AgentConfig:
    return load_config(write(tmp_path, text))


def client_certificate(folder: Path, name: str, key_mode: int = 0o600) -> None:
    """Stand-ins for ``<name>.pem`` and ``<name>.key``: loading the config only checks the files."""
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (folder / f"{name}.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    (folder / f"{name}.key").chmod(key_mode)


def test_full_config_loads_every_field_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    client_certificate(tmp_path / "certs", "station")
    config = load_text(tmp_path, FULL)

    assert config == AgentConfig(
        device_id="station-440117001001-01",
        kind=DeviceKind.STATION_PC,
        state_dir=str(tmp_path / "state"),
        broker=BrokerConfig(
            url="mqtts://broker.example.org:8883",
            username="station-440117001001-01",
            password_file=str(tmp_path / "secret"),
            ca_file=str(tmp_path / "ca.pem"),
            cert_file=str(tmp_path / "certs" / "station.pem"),
            key_file=str(tmp_path / "certs" / "station.key"),
            session_expiry_s=3600,
            keepalive_s=45,
        ),
        telemetry=TelemetryConfig(heartbeat_interval_s=12.5, full_snapshot_every=4),
        outbox=OutboxConfig(max_bytes=64 * 1024 * 1024),
        delivery=DeliveryConfig(max_in_flight=200, ack_timeout_s=45.5),
    )


def test_minimal_config_takes_the_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL)

    assert config.device_id == "kiosk-440117000-01"
    assert config.kind is DeviceKind.KIOSK
    assert config.state_dir == "/var/lib/termfleet-agent"
    assert config.broker == BrokerConfig()
    assert config.broker.url == "mqtt://127.0.0.1:1883"
    assert config.broker.username == ""
    assert config.broker.password_file == ""
    assert config.broker.session_expiry_s == 7 * 24 * 3600
    assert config.broker.keepalive_s == 30
    assert config.telemetry.heartbeat_interval_s == 30.0
    assert config.telemetry.full_snapshot_every == 10
    assert config.outbox.max_bytes == 256 * 1024 * 1024
    assert (config.delivery.max_in_flight, config.delivery.ack_timeout_s) == (500, 30.0)


def test_an_empty_table_takes_the_defaults_too(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL + "[broker]\n[telemetry]\n[outbox]\n[delivery]\n")

    assert config.broker == BrokerConfig()
    assert config.telemetry == TelemetryConfig()
    assert config.outbox == OutboxConfig()
    assert config.delivery == DeliveryConfig()


@pytest.mark.parametrize(
    ("extra", "key", "where"),
    [
        ("heartbeat_interval_s = 5\n", "heartbeat_interval_s", None),
        ('[broker]\nurll = "mqtt://x"\n', "urll", "$.broker"),
        ('[broker]\npassword = "in-the-clear"\n', "password", "$.broker"),
        ("[telemetry]\nheartbeat_intervall_s = 5\n", "heartbeat_intervall_s", "$.telemetry"),
        ("[logging]\nlevel = 1\n", "logging", None),
        ("[outbox]\nmax_size = 1000000000\n", "max_size", "$.outbox"),
        ("[delivery]\nack_timeout = 5\n", "ack_timeout", "$.delivery"),
        ("[delivery]\nmax_inflight = 5\n", "max_inflight", "$.delivery"),
    ],
)
def test_unknown_keys_are_refused_by_name(
    tmp_path: Path, extra: str, key: str, where: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, MINIMAL + extra)

    message = str(info.value)
    assert f"`{key}`" in message
    assert "unknown field" in message
    if where is not None:
        assert where in message
    assert "agent.toml" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (MINIMAL + "state_dir = 3\n", "$.state_dir"),
        (
            MINIMAL + '[telemetry]\nheartbeat_interval_s = "30"\n',
            "$.telemetry.heartbeat_interval_s",
        ),
        (MINIMAL + "[telemetry]\nheartbeat_interval_s = 0\n", "$.telemetry.heartbeat_interval_s"),
        (MINIMAL + "[telemetry]\nfull_snapshot_every = 0\n", "$.telemetry.full_snapshot_every"),
        (MINIMAL + "[broker]\nkeepalive_s = 0\n", "$.broker.keepalive_s"),
        (MINIMAL + "[broker]\nkeepalive_s = 3\n", "$.broker.keepalive_s"),
        (MINIMAL + "[broker]\nkeepalive_s = 65536\n", "$.broker.keepalive_s"),
        (MINIMAL + "[broker]\nsession_expiry_s = -1\n", "$.broker.session_expiry_s"),
        (MINIMAL + 'broker = "mqtt://x"\n', "$.broker"),
        (MINIMAL + "[outbox]\nmax_bytes = 1000\n", "$.outbox.max_bytes"),
        (MINIMAL + '[outbox]\nmax_bytes = "1G"\n', "$.outbox.max_bytes"),
        (MINIMAL + "[delivery]\nmax_in_flight = 0\n", "$.delivery.max_in_flight"),
        (MINIMAL + "[delivery]\nmax_in_flight = 10001\n", "$.delivery.max_in_flight"),
        (MINIMAL + "[delivery]\nack_timeout_s = 0\n", "$.delivery.ack_timeout_s"),
    ],
)
def test_wrong_types_and_out_of_range_values_are_refused_with_their_path(
    tmp_path: Path, text: str, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=r"Expected") as info:
        load_text(tmp_path, text)

    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "device_id",
    ["", "-kiosk", ".kiosk", "kiosk/01", "kiosk+", "kiosk#", "kiosk 01", "a" * 65, "终端01"],
)
def test_bad_device_ids_are_refused(tmp_path: Path, device_id: str) -> None:
    with pytest.raises(ConfigError, match=r"\$\.device_id"):
        load_text(tmp_path, f'device_id = "{device_id}"\nkind = "kiosk"\n')


def test_longest_device_id_is_accepted(tmp_path: Path) -> None:
    device_id = "a" + "b" * 63

    config = load_text(tmp_path, f'device_id = "{device_id}"\nkind = "kiosk"\n')

    assert config.device_id == device_id


@pytest.mark.parametrize(
    ("text", "field"),
    [('kind = "kiosk"\n', "device_id"), ('device_id = "kiosk-1"\n', "kind")],
)
def test_identity_fields_are_required(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"missing required field `{field}`"):
        load_text(tmp_path, text)


@pytest.mark.parametrize("value", ["spaceship", "Kiosk", "kisok", "", "unknown"])
def test_unknown_kind_value_is_refused_naming_the_known_kinds(tmp_path: Path, value: str) -> None:
    # Over the wire an unknown kind reads as UNKNOWN; in the agent's own file it is a typo.
    with pytest.raises(
        ConfigError, match=r"kind must be one of kiosk, review_pad, station_pc, booth"
    ):
        load_text(tmp_path, f'device_id = "kiosk-1"\nkind = "{value}"\n')


@pytest.mark.parametrize("kind", [k for k in DeviceKind if k is not DeviceKind.UNKNOWN])
def test_every_known_kind_loads(tmp_path: Path, kind: DeviceKind) -> None:
    assert load_text(tmp_path, f'device_id = "t-1"\nkind = "{kind.value}"\n').kind is kind


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.toml"):
        load_text(tmp_path, MINIMAL + "[broker\n")


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError, match=r"cannot read agent config .*absent\.toml") as info:
        load_config(path)

    assert "No such file" in str(info.value)


def test_a_directory_in_place_of_the_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read agent config"):
        load_config(tmp_path)


# --- password ---------------------------------------------------------------------------------


def secret_file(tmp_path: Path, content: str, mode: int) -> Path:
    path = tmp_path / "mqtt-password"
    path.write_text(content, encoding="utf-8")
    path.chmod(mode)
    return path


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = secret_file(tmp_path, "from-file\n", 0o600)
    monkeypatch.setenv(PASSWORD_ENV, "from-env")

    assert read_password(BrokerConfig(password_file=str(path))) == "from-env"


def test_environment_wins_even_over_an_unsafe_or_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsafe = secret_file(tmp_path, "x", 0o644)
    monkeypatch.setenv(PASSWORD_ENV, "from-env")

    assert read_password(BrokerConfig(password_file=str(unsafe))) == "from-env"
    assert read_password(BrokerConfig(password_file=str(tmp_path / "absent"))) == "from-env"


def test_environment_alone_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-env")

    assert read_password(BrokerConfig()) == "from-env"


@pytest.mark.usefixtures("no_password_env")
def test_no_env_and_no_file_means_no_password() -> None:
    assert read_password(BrokerConfig()) is None


def test_empty_env_falls_back_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = secret_file(tmp_path, "from-file", 0o600)
    monkeypatch.setenv(PASSWORD_ENV, "")

    assert read_password(BrokerConfig(password_file=str(path))) == "from-file"


@pytest.mark.usefixtures("no_password_env")
@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_file_is_read_and_stripped(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, "  s3cret pass\n\n", mode)

    assert read_password(BrokerConfig(password_file=str(path))) == "s3cret pass"


@pytest.mark.usefixtures("no_password_env")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601, 0o610])
def test_file_readable_by_others_is_refused_naming_chmod_600(tmp_path: Path, mode: int) -> None:
    path = secret_file(tmp_path, "s3cret", mode)

    with pytest.raises(ConfigError, match=r"chmod 600") as info:
        read_password(BrokerConfig(password_file=str(path)))

    message = str(info.value)
    assert str(path) in message
    assert f"is {mode:o}" in message
    assert "s3cret" not in message


@pytest.mark.usefixtures("no_password_env")
def test_missing_password_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent"

    with pytest.raises(ConfigError, match=r"cannot read password file") as info:
        read_password(BrokerConfig(password_file=str(path)))

    assert str(path) in str(info.value)


@pytest.mark.usefixtures("no_password_env")
def test_unreadable_password_path_is_a_config_error(tmp_path: Path) -> None:
    # A directory passes the 0600 check (0700 has no group/other bits) and then cannot be read;
    # like a missing file, that must surface as ConfigError, which `termfleet agent run` reports
    # cleanly, not as a bare OSError traceback.
    path = tmp_path / "secret-dir"
    path.mkdir(mode=0o700)

    with pytest.raises(ConfigError, match=r"cannot read password file"):
        read_password(BrokerConfig(password_file=str(path)))


@pytest.mark.usefixtures("no_password_env")
def test_password_file_from_a_loaded_config(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "pw\n", 0o600)
    toml_path = str(path).replace("\\", "\\\\")
    config = load_text(tmp_path, MINIMAL + f'[broker]\npassword_file = "{toml_path}"\n')

    assert read_password(config.broker) == "pw"


def test_missing_ca_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"broker\.ca_file .*ca\.pem is not a readable file"):
        load_text(tmp_path, MINIMAL + '[broker]\nca_file = "ca.pem"\n')


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    config = load_text(tmp_path, MINIMAL + 'state_dir = "/var/lib/termfleet-agent"\n')
    assert config.state_dir == "/var/lib/termfleet-agent"


# --- client certificate -----------------------------------------------------------------------

TLS_URL = 'url = "mqtts://broker.example.org:8883"\n'
PAIR = 'cert_file = "kiosk.pem"\nkey_file = "kiosk.key"\n'


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        (TLS_URL + 'cert_file = "kiosk.pem"\n', r"broker\.key_file is missing: .* cert and key"),
        (TLS_URL + 'key_file = "kiosk.key"\n', r"broker\.cert_file is missing: .* cert and key"),
        (
            'url = "mqtt://broker.example.org:1883"\n' + PAIR,
            r"cert_file and key_file need an mqtts:// url, not mqtt://broker\.example\.org:1883",
        ),
        (
            TLS_URL + 'cert_file = "absent.pem"\nkey_file = "kiosk.key"\n',
            r"broker\.cert_file .*absent\.pem is not a readable file",
        ),
        (
            TLS_URL + 'cert_file = "kiosk.pem"\nkey_file = "absent.key"\n',
            r"broker\.key_file .*absent\.key is not a readable file",
        ),
    ],
)
def test_client_certificate_refusals_name_the_key(
    tmp_path: Path, broker: str, message: str
) -> None:
    client_certificate(tmp_path, "kiosk")

    with pytest.raises(ConfigError, match=message) as info:
        load_text(tmp_path, MINIMAL + "[broker]\n" + broker)

    assert "agent.toml" in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_may_read_is_refused_naming_chmod_600(tmp_path: Path, mode: int) -> None:
    client_certificate(tmp_path, "kiosk", key_mode=mode)

    with pytest.raises(ConfigError, match=rf"kiosk\.key must be .* \(chmod 600\), is {mode:o}$"):
        load_text(tmp_path, MINIMAL + "[broker]\n" + TLS_URL + PAIR)
