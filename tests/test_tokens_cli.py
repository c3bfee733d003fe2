"""`termfleet tokens` on a real database, and `termfleet devices ls` sending a token.

The secret goes to stdout once, on creation; listings never show it; errors are clean messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from control_plane.auth import (
    AuthenticationError,
    Principal,
    Refusal,
    Role,
    is_well_formed,
    new_secret,
)
from control_plane.cli import cli
from control_plane.cli.tokens import ROLES
from control_plane.fleet import DeviceState, FleetState
from control_plane.http.app import make_app
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.services.processes import free_port


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="termfleet", env=env)


def tokens(database_url: str, *args: str) -> Result:
    return run("tokens", *args, "--database-url", database_url)


def create(database_url: str, name: str, *args: str) -> dict[str, str]:
    result = tokens(database_url, "create", "--name", name, "--json", *args)
    assert result.exit_code == 0, result.output
    created: dict[str, str] = json.loads(result.stdout)
    return created


def test_the_commands_roles_are_the_codes() -> None:
    assert tuple(role.value for role in Role) == ROLES


def test_create_prints_the_token_once_and_list_never(database_url: str) -> None:
    result = tokens(database_url, "create", "--name", "ops", "--role", "operator")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert is_well_formed(secret)
    assert result.stdout == secret + "\n", "stdout is the token alone, for $(...)"
    assert "store it now: it cannot be shown again" in result.stderr
    assert "(operator, the whole tree, shown as tf_" in result.stderr

    table = tokens(database_url, "list")
    as_json = tokens(database_url, "list", "--json")

    assert table.exit_code == as_json.exit_code == 0
    assert secret not in table.output
    assert secret not in as_json.output
    header, row = table.stdout.splitlines()
    assert header.split() == [
        "NAME", "PREFIX", "ROLE", "SCOPE", "STATE", "CREATED_AT", "EXPIRES_AT", "LAST_USED_AT"
    ]  # fmt: skip
    assert row.split()[:5] == ["ops", secret[:11], "operator", "-", "active"]
    (listed,) = json.loads(as_json.stdout)
    assert "token" not in listed
    assert "secret_hash" not in listed
    assert listed["prefix"] == secret[:11]


def test_create_as_json_carries_the_token_and_its_fields(database_url: str) -> None:
    created = create(database_url, "ci", "--role", "technician", "--expires-in", "7")

    assert is_well_formed(created["token"])
    assert created["prefix"] == created["token"][:11]
    assert created["role"] == "technician"
    created_at = datetime.fromisoformat(created["created_at"])
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert (expires_at - created_at).days == 7


def test_revoke_by_name_and_by_prefix(database_url: str) -> None:
    create(database_url, "a", "--role", "admin")
    b = create(database_url, "b", "--role", "auditor")

    by_name = tokens(database_url, "revoke", "a")
    by_prefix = tokens(database_url, "revoke", b["prefix"])

    assert (by_name.exit_code, by_prefix.exit_code) == (0, 0), by_name.output + by_prefix.output
    assert by_name.stdout.startswith("revoked token 'a' (tf_")
    assert by_prefix.stdout == f"revoked token 'b' ({b['prefix']}…)\n"
    listed = json.loads(tokens(database_url, "list", "--json").stdout)
    assert [t["state"] for t in listed] == ["revoked", "revoked"]


def test_replace_rotates(database_url: str) -> None:
    first = create(database_url, "demo-admin", "--role", "admin")
    taken = tokens(database_url, "create", "--name", "demo-admin", "--role", "admin")
    second = create(database_url, "demo-admin", "--role", "admin", "--replace")

    assert taken.exit_code == 1
    assert "a token named 'demo-admin' exists" in taken.stderr
    assert second["token"] != first["token"]
    listed = json.loads(tokens(database_url, "list", "--json").stdout)
    assert [(t["name"], t["state"]) for t in listed] == [
        ("demo-admin", "revoked"),
        ("demo-admin", "active"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("revoke", "nobody"), "Error: no token is named 'nobody' or starts with it"),
        (
            ("create", "--name", "x", "--role", "admin", "--scope", "999"),
            "Error: no jurisdiction node has the code '999'",
        ),
    ],
)
def test_errors_are_clean_messages(sqlite_url: str, args: tuple[str, ...], message: str) -> None:
    result = tokens(sqlite_url, *args)

    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.output


def test_an_unknown_role_is_a_usage_error(sqlite_url: str) -> None:
    result = tokens(sqlite_url, "create", "--name", "x", "--role", "root")

    assert result.exit_code == 2
    assert "'root' is not one of 'admin', 'operator', 'technician', 'auditor'" in result.stderr


# --- devices ls with a token -------------------------------------------------------------------

TOWN_A, TOWN_B = "/44/4401/440117/440117001/", "/44/4401/440117/440117002/"
GOOD = new_secret()  # only the fake authenticator below knows them
OTHER = new_secret()


async def fake_authenticate(secret: str, _now: datetime) -> Principal:
    if secret == GOOD:
        return Principal(1, "ops-a", Role.OPERATOR, TOWN_A, "440117001")
    raise AuthenticationError(Refusal.UNKNOWN_TOKEN, "unknown token")


@contextlib.contextmanager
def api_in_a_thread() -> Iterator[str]:
    """The API on a fleet in towns A and B, tokens checked by ``fake_authenticate``."""
    fleet = FleetState([DeviceState("kiosk-a", site="sA"), DeviceState("kiosk-b", site="sB")])
    fleet.set_site_paths({"sA": TOWN_A, "sB": TOWN_B})
    metrics = ControlPlaneMetrics(fleet)
    loop = asyncio.new_event_loop()
    app = make_app(fleet, metrics, Ingest(fleet, metrics), authenticate=fake_authenticate)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    port = free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, name="api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_devices_ls_without_a_token_says_how_to_get_one() -> None:
    result = run("devices", "ls", "--server", "http://127.0.0.1:9", env={"TERMFLEET_TOKEN": ""})

    assert result.exit_code == 2
    assert "no API token" in result.stderr
    assert "TERMFLEET_TOKEN" in result.stderr
    assert "termfleet tokens create" in result.stderr


# The token from the environment listing its scope: tests/test_cli_devices.py, which has a
# database behind the API (the device list reads it).


def test_devices_ls_with_a_refused_token_shows_the_apis_message() -> None:
    with api_in_a_thread() as server:
        result = run("devices", "ls", "--server", server, "--token", OTHER)

    assert result.exit_code == 1
    assert f"{server}/api/v1/devices: HTTP 401: unknown token" in result.stderr
    assert "TERMFLEET_TOKEN" in result.stderr
