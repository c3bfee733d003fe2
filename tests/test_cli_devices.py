"""`termfleet devices ls/show/label/move/retire` against the real API, and the CLI's config file.

The API runs in-process on the registry of ``tests/support/device_fleet.py`` (SQLite and
PostgreSQL); each command runs in a thread with its own event loop, as it does in a shell.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from control_plane import tokens
from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.db.models import Device
from tests.support.device_fleet import DeviceApi, device_api
from tests.support.scoped_fleet import DISTRICT, TOWN_A
from tests.support.tokens import TEST_ACTOR


async def secret_for(role: Role = Role.OPERATOR, scope: str | None = None) -> str:
    issued = await tokens.issue(f"cli-{role}-{scope}", role, actor=TEST_ACTOR, scope_code=scope)
    return issued.secret


async def termfleet(
    api: DeviceApi,
    *args: str,
    token: str | None = None,
    env: Mapping[str, str | None] | None = None,
    stdin: str | None = None,
) -> Result:
    """Run ``termfleet ARGS --server <the API>`` in a thread, with no config file around."""
    server = str(api.client.make_url("")).rstrip("/")
    environ: dict[str, str | None] = {"TERMFLEET_TOKEN": token, "TERMFLEET_CONFIG": None,
                                      "XDG_CONFIG_HOME": "/nonexistent", **(env or {})}  # fmt: skip
    argv = [*args, "--server", server] if "--server" not in args else list(args)
    return await asyncio.to_thread(
        CliRunner().invoke, cli, argv, prog_name="termfleet", env=environ, input=stdin
    )


def listed(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [row["device_id"] for row in json.loads(result.stdout)]


# --- ls and show ---------------------------------------------------------------------------------


async def test_ls_sends_the_token_from_the_environment_and_lists_its_scope(
    database_url: str,
) -> None:
    async with device_api(database_url) as api:
        result = await termfleet(
            api, "devices", "ls", "--json", token=await secret_for(scope=TOWN_A)
        )

    assert listed(result) == ["booth-a", "kiosk-a", "station-a1"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--node", DISTRICT, "--kind", "review_pad"], ["pad-d1", "pad-d2"]),
        (["--label", "vendor=inspur", "--label", "floor=1"], ["kiosk-d1"]),
        (["--presence", "offline_expected"], ["station-a1"]),
        (["--fault", "receipt_printer", "--site", f"s{DISTRICT}"], ["kiosk-d1"]),
        (["-q", "SN-B"], ["kiosk-b"]),
        (["--lifecycle", "in_service"], ["kiosk-a"]),
    ],
)
async def test_ls_passes_its_filters_to_the_api(
    sqlite_url: str, filters: list[str], expected: list[str]
) -> None:
    async with device_api(sqlite_url) as api:
        result = await termfleet(api, "devices", "ls", *filters, "--json", token=await secret_for())

    assert listed(result) == expected


async def test_ls_prints_a_table_and_the_count(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        result = await termfleet(api, "devices", "ls", "--site", f"s{DISTRICT}",
                                 token=await secret_for())  # fmt: skip

    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["DEVICE_ID", "KIND", "AVAILABILITY", "SITE", "WINDOW", "LIFECYCLE",
                              "LAST_SEEN"]  # fmt: skip
    assert [row.split()[:5] for row in rows][1] == [
        "pad-d1", "review_pad", "offline_unexpected", f"s{DISTRICT}", "01",
    ]  # fmt: skip
    assert result.stderr == "3 devices\n"


async def test_show_prints_the_device_its_peripherals_and_records(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        secret = await secret_for()
        text = await termfleet(api, "devices", "show", "kiosk-d1", "--records", "2", token=secret)
        raw = await termfleet(api, "devices", "show", "kiosk-d1", "--json", token=secret)

    assert text.exit_code == 0, text.output
    assert "serial:     SN-D1" in text.stdout
    assert "labels:     floor=1, vendor=inspur" in text.stdout
    rows = [line.split() for line in text.stdout.splitlines()]
    assert ["printer0", "receipt_printer", "fault", "paper_out", "TP-80", "2.1.4"] in [
        row[:6] for row in rows
    ]
    assert [row[:2] for row in rows if row[:1] in (["30"], ["29"], ["28"])] == [
        ["30", "event"],
        ["29", "event"],
    ]
    assert json.loads(raw.stdout)["peripherals"][1]["name"] == "printer0"


async def test_a_device_outside_the_scope_is_an_error_with_the_apis_message(
    sqlite_url: str,
) -> None:
    async with device_api(sqlite_url) as api:
        result = await termfleet(api, "devices", "show", "kiosk-b",
                                 token=await secret_for(scope=TOWN_A))  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr.endswith("/api/v1/devices/kiosk-b: HTTP 404: no device 'kiosk-b'\n")
    assert result.stdout == ""


# --- changes -------------------------------------------------------------------------------------


async def test_label_sets_and_removes(database_url: str) -> None:
    async with device_api(database_url) as api:
        result = await termfleet(api, "devices", "label", "kiosk-d1", "floor-", "zone=b2",
                                 "--json", token=await secret_for())  # fmt: skip
        stored = await Device.get(device_id="kiosk-d1")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["labels"] == {"vendor": "inspur", "zone": "b2"}
    assert stored.labels == {"vendor": "inspur", "zone": "b2"}


async def test_label_refuses_an_argument_that_is_no_change(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        result = await termfleet(api, "devices", "label", "kiosk-d1", "zone", token="tf_x")

    assert result.exit_code == 2
    assert "write key=value to set a label, or key- to remove it" in result.stderr


async def test_move_to_a_window_and_a_refused_move(database_url: str) -> None:
    async with device_api(database_url) as api:
        secret = await secret_for(scope=DISTRICT)
        moved = await termfleet(api, "devices", "move", "pad-d2", f"s{DISTRICT}", "--window",
                                "01", token=secret)  # fmt: skip
        refused = await termfleet(api, "devices", "move", "pad-d2", f"s{TOWN_A}", "--window",
                                  "01", token=secret)  # fmt: skip

    assert moved.exit_code == 0, moved.output
    assert moved.stdout.splitlines()[1].split()[:3] == ["pad-d2", f"s{DISTRICT}", "01"]
    assert refused.exit_code == 1
    assert f"HTTP 400: window: site s{TOWN_A} has no window '01'" in refused.stderr


async def test_retire_asks_first(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        secret = await secret_for()
        declined = await termfleet(api, "devices", "retire", "kiosk-x", token=secret, stdin="n\n")
        after_no = (await Device.get(device_id="kiosk-x")).lifecycle
        done = await termfleet(api, "devices", "retire", "kiosk-x", "--yes", "--note", "stolen",
                               token=secret)  # fmt: skip
        again = await termfleet(api, "devices", "retire", "kiosk-x", "--yes", token=secret)

    assert (declined.exit_code, after_no) == (1, "registered")
    assert done.exit_code == 0, done.output
    assert "retired" in done.stdout
    assert again.exit_code == 1
    assert "HTTP 409: device kiosk-x: a retired terminal cannot become retired" in again.stderr


# --- the config file -----------------------------------------------------------------------------


def config(tmp_path: Path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "cli.toml"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


async def test_server_and_token_come_from_the_config_file(sqlite_url: str, tmp_path: Path) -> None:
    async with device_api(sqlite_url) as api:
        server = str(api.client.make_url("")).rstrip("/")
        secret = await secret_for(scope=TOWN_A)
        path = config(tmp_path, f'server = "{server}"\ntoken = "{secret}"\n')
        result = await termfleet(api, "devices", "ls", "--json", "--server", "",
                                 env={"TERMFLEET_CONFIG": path})  # fmt: skip

    assert listed(result) == ["booth-a", "kiosk-a", "station-a1"]


async def test_the_environment_wins_over_the_config_file(sqlite_url: str, tmp_path: Path) -> None:
    async with device_api(sqlite_url) as api:
        path = config(tmp_path, 'token = "tf_from_the_file"\n')
        secret = await secret_for(scope=TOWN_A)
        result = await termfleet(api, "devices", "ls", "--json", token=secret,
                                 env={"TERMFLEET_CONFIG": path})  # fmt: skip

    assert listed(result) == ["booth-a", "kiosk-a", "station-a1"]


async def test_the_files_token_is_not_sent_to_another_server(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with device_api(sqlite_url) as api:
        path = config(tmp_path, f'token = "{await secret_for()}"\n')  # for the default server
        result = await termfleet(api, "devices", "ls", env={"TERMFLEET_CONFIG": path})

    assert result.exit_code == 2
    assert "no API token" in result.stderr


@pytest.mark.parametrize(
    ("text", "mode", "needle"),
    [
        ('sever = "http://x"\n', 0o600, "unknown field `sever`"),
        ('token = "tf_x"\n', 0o644, "must be readable by its owner only (chmod 600); it is 644"),
        ("server = [\n", 0o600, "cli.toml: "),
        ("server = 8080\n", 0o600, "Expected `str | null`"),
    ],
)
async def test_a_bad_config_file_is_an_error_naming_it(
    sqlite_url: str, tmp_path: Path, text: str, mode: int, needle: str
) -> None:
    async with device_api(sqlite_url) as api:
        path = config(tmp_path, text, mode)
        result = await termfleet(
            api, "devices", "ls", "--server", "", env={"TERMFLEET_CONFIG": path}
        )

    assert result.exit_code == 1
    assert needle in result.stderr
    assert "Traceback" not in result.output


async def test_a_named_config_file_must_exist(sqlite_url: str, tmp_path: Path) -> None:
    async with device_api(sqlite_url) as api:
        missing = str(tmp_path / "nope.toml")
        result = await termfleet(api, "devices", "ls", "--server", "",
                                 env={"TERMFLEET_CONFIG": missing})  # fmt: skip

    assert result.exit_code == 1
    assert f"TERMFLEET_CONFIG names {missing}, which does not exist" in result.stderr
