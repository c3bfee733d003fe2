"""The ``termfleet`` command tree: help everywhere, JSON for listings, clean errors, broker URLs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner, Result

from control_plane.cli import cli
from control_plane.fleet import Availability
from control_plane.services.processes import free_port
from edge.mqtt import DEFAULT_PORT, DEFAULT_TLS_PORT, BrokerAddress
from edge.protocol import DeviceKind, PresenceState


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def flags(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="termfleet")


PATHS = list(walk(cli))


def test_the_tree_has_the_expected_commands() -> None:
    assert set(PATHS) >= {
        (),
        ("agent",),
        ("agent", "run"),
        ("agent", "peripherals"),
        ("agent", "self-test"),
        ("content", "keygen"),
        ("content", "pack"),
        ("content", "verify"),
        ("content", "show"),
        ("content", "upload"),
        ("content", "ls"),
        ("demo",),
        ("devices",),
        ("devices", "ls"),
        ("server",),
        ("server", "run"),
        ("simulate",),
        ("tokens", "create"),
        ("tokens", "list"),
        ("tokens", "revoke"),
        ("audit", "ls"),
    }


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(("termfleet", *p)))
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_works_everywhere(path: tuple[str, ...], option: str) -> None:
    result = run(*path, option)

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: {' '.join(('termfleet', *path))} ")
    command = command_at(path)
    if command.help:
        assert command.help.split("\n", 1)[0].strip() in " ".join(result.output.split())
    if isinstance(command, click.Group):
        assert "Commands:" in result.output


def listing_paths() -> list[tuple[str, ...]]:
    return [
        path
        for path in PATHS
        if path and (path[-1] in {"ls", "list"} or "--list" in flags(command_at(path)))
    ]


def test_there_are_listing_commands() -> None:
    assert {("devices", "ls"), ("simulate",), ("tokens", "list"), ("audit", "ls")} <= set(
        listing_paths()
    )


@pytest.mark.parametrize("path", listing_paths(), ids=" ".join)
def test_every_listing_command_offers_json(path: tuple[str, ...]) -> None:
    assert "--json" in flags(command_at(path))
    assert "--json" in run(*path, "--help").output


def test_version() -> None:
    result = run("--version")

    assert result.exit_code == 0
    assert result.output.startswith("termfleet, version ")


def test_simulate_list_json_prints_the_first_terminals() -> None:
    result = run("simulate", "--list", "--json", "--devices", "3")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    assert len(rows) == 3
    assert all(set(row) == {"device_id", "kind", "site", "level", "switched_on"} for row in rows)
    assert all(row["switched_on"] is True for row in rows)  # --always-on is the default
    assert rows[0]["device_id"] == "kiosk-440117000-01"
    assert {row["kind"] for row in rows} <= {k.value for k in DeviceKind}


def test_simulate_list_as_a_table() -> None:
    result = run("simulate", "--list", "--devices", "2")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["DEVICE_ID", "KIND", "SITE", "LEVEL", "SWITCHED_ON"]
    assert len(lines) == 3


@pytest.mark.parametrize("command", ["simulate", "demo"])
def test_unknown_district_is_a_usage_error_naming_the_known_ones(command: str) -> None:
    result = run(command, "--district", "atlantis")

    assert result.exit_code == 2
    assert "'atlantis' is not 'conghua'" in result.stderr
    assert "Traceback" not in result.output


def test_devices_ls_without_a_control_plane_says_so() -> None:
    server = f"http://127.0.0.1:{free_port()}"

    result = run("devices", "ls", "--server", server, "--token", "tf_x", "--json")

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), "a traceback, not a clean error"
    assert result.stderr.startswith(f"Error: cannot reach the control plane at {server}: ")
    assert result.stdout == ""


def test_devices_ls_filters_match_the_protocol_enums() -> None:
    params = {p.name: p for p in command_at(("devices", "ls")).params}
    kind, presence = params["kind"], params["presence"]

    assert isinstance(kind.type, click.Choice)
    assert isinstance(presence.type, click.Choice)
    assert set(kind.type.choices) == {k.value for k in DeviceKind}
    availability = {a.value for a in Availability}
    assert set(presence.type.choices) == {p.value for p in PresenceState} | availability


@pytest.mark.parametrize("url", ["http://x", "x:1883", "mqtt://", "ws://broker:8083"])
def test_simulate_refuses_a_non_mqtt_url_as_a_usage_error(url: str) -> None:
    result = run("simulate", "--mqtt-url", url, "--list")

    assert result.exit_code == 2
    assert "Invalid value for '--mqtt-url'" in result.stderr
    assert "mqtt://host:port" in result.stderr


def test_mqtt_url_from_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERMFLEET_MQTT_URL", "http://x")

    result = run("simulate", "--list", "--devices", "1")

    assert result.exit_code == 2
    assert "--mqtt-url" in result.stderr


# --- broker URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker", BrokerAddress("broker", DEFAULT_PORT, tls=False)),
        ("mqtts://broker", BrokerAddress("broker", DEFAULT_TLS_PORT, tls=True)),
        ("mqtt://127.0.0.1:18830", BrokerAddress("127.0.0.1", 18830)),
        ("mqtts://broker.example.org:9883", BrokerAddress("broker.example.org", 9883, tls=True)),
        (
            "mqtt://kiosk-1:s3cret@broker:1884",
            BrokerAddress("broker", 1884, username="kiosk-1", password="s3cret"),
        ),
        (
            "mqtts://kiosk-1:s3cret@broker",
            BrokerAddress(
                "broker", DEFAULT_TLS_PORT, tls=True, username="kiosk-1", password="s3cret"
            ),
        ),
        (
            "mqtt://us%40er:p%3As%2Fs@broker",
            BrokerAddress("broker", DEFAULT_PORT, username="us@er", password="p:s/s"),
        ),
        ("mqtt://only-user@broker", BrokerAddress("broker", DEFAULT_PORT, username="only-user")),
        ("mqtt://[::1]:1884", BrokerAddress("::1", 1884)),
    ],
)
def test_broker_address_from_url(url: str, expected: BrokerAddress) -> None:
    assert BrokerAddress.from_url(url) == expected


def test_default_ports() -> None:
    assert (DEFAULT_PORT, DEFAULT_TLS_PORT) == (1883, 8883)


def test_broker_address_str_never_shows_credentials() -> None:
    address = BrokerAddress.from_url("mqtts://kiosk-1:s3cret@broker:8884")

    assert str(address) == "mqtts://broker:8884"


@pytest.mark.parametrize(
    "url",
    [
        "http://broker:1883",
        "https://broker",
        "tcp://broker:1883",
        "broker:1883",
        "",
        "mqtt://",
        "mqtts://:8883",
        "mqtt://user:pw@:1883",
        "mqtt://broker:99999",
        "mqtt://broker:port",
    ],
)
def test_broker_address_refuses(url: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        BrokerAddress.from_url(url)


def test_broker_address_refusal_names_the_expected_form() -> None:
    with pytest.raises(ValueError, match=r"'http://x' must look like mqtt://host:port"):
        BrokerAddress.from_url("http://x")
