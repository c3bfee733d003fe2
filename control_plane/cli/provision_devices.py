"""``termfleet provision status|selftest|accept|replace``: commissioning at the terminal's side.

After `termfleet agent enroll` the agent runs its self-test by itself; the technician reads the
outcome with `status`, runs it again with `selftest` after fixing something, and the terminal
goes in service with `accept`. `replace` gives a new terminal an old one's place. With
``--server URL``, `status` and `accept` go through the REST API as the token in TERMFLEET_TOKEN
(a technician's, in the field), within its scope.
"""

from __future__ import annotations

import functools
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from edge.mqtt import BrokerAddress

from . import options
from .options import database_url
from .provision_broker import note, run_provisioning, secret_file

SELFTEST_WAIT_S = 30


through_api = click.option(
    "--server",
    metavar="URL",
    help="Go through this control plane's REST API as the token in TERMFLEET_TOKEN (or"
    " --token), within its scope, instead of the database.",
)


def device_path(device_id: str, what: str) -> str:
    """The API path of a device's ``what``; the id quoted, so that it stays one segment."""
    from urllib.parse import quote

    return f"/api/v1/devices/{quote(device_id, safe='')}/{what}"


@click.command("status")
@click.argument("device_id")
@database_url
@through_api
@options.api_token
@options.json_output
def status(
    device_id: str, database_url: str, server: str | None, token: str | None, as_json: bool
) -> None:
    """A terminal's enrollment and the pass/fail of each check of its last self-test."""
    if server is not None:
        from .api_calls import run

        path = device_path(device_id, "commissioning")
        view = run(server, token, lambda api: api.request("GET", path))
    else:
        from control_plane.commissioning import status as commissioning_status

        view = run_provisioning(database_url, functools.partial(commissioning_status, device_id))
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    _print_status(view)


def _print_status(view: dict[str, Any]) -> None:
    click.echo(f"{view['device_id']} ({view['kind']}, serial {view['serial'] or '-'})")
    where = f"{view['site'] or '-'}" + (f" window {view['window']}" if view["window"] else "")
    click.echo(f"  lifecycle: {view['lifecycle']}    presence: {view['presence']}    at: {where}")
    click.echo(f"  enrolled:  {view['enrolled_at'] or 'never'}")
    test = view["self_test"]
    if not test:
        click.echo("  self-test: none reported yet (is the agent running?)")
        return
    click.echo(f"  self-test: {test['status']} at {test['at'] or test['received_at']}")
    for check, outcome in sorted(test["checks"].items()):
        mark = "PASS" if check not in view["failed_checks"] else "FAIL"
        detail = "" if mark == "PASS" else f"  {outcome}"
        click.echo(f"    {mark}  {check}{detail}")


@click.command("accept")
@click.argument("device_id")
@click.option("--force", is_flag=True, help="Accept although checks failed (needs --note).")
@note
@database_url
@through_api
@options.api_token
def accept(  # noqa: PLR0913 - one parameter per option
    device_id: str,
    force: bool,
    note: str,
    database_url: str,
    server: str | None,
    token: str | None,
) -> None:
    """Sign a commissioned terminal off: it goes in service (every check must have passed)."""
    if server is not None:
        from .api_calls import run

        body: dict[str, object] = {"force": force, **({"note": note} if note else {})}
        path = device_path(device_id, "accept")
        run(server, token, lambda api: api.request("POST", path, body=body))
        click.echo(f"{device_id} is in service")
        return
    from control_plane import commissioning
    from control_plane.audit import local_actor

    work = functools.partial(
        commissioning.accept,
        local_actor(),
        device_id,
        note=note,
        force=force,
        now=datetime.now(UTC),
    )
    run_provisioning(database_url, work)
    click.echo(f"{device_id} is in service")


@click.command("selftest")
@click.argument("device_id")
@options.mqtt_url
@secret_file
def selftest(device_id: str, broker: BrokerAddress, secret_file: Path) -> None:
    """Ask a connected terminal to run its self-test again; read it with `status`."""
    import asyncio

    from edge import mqtt
    from edge.protocol import Channel, Command, CommandName, encode, topics
    from edge.protocol.commands import SELF_TEST_PREFIX
    from provisioning.dynsec import CONTROL_PLANE_USERNAME
    from provisioning.settings import provisioning_settings

    try:
        settings = provisioning_settings(secret_file, broker)
        topic = topics.downlink(device_id, Channel.COMMAND)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    now = datetime.now(UTC)
    command = Command(
        command_id=f"{SELF_TEST_PREFIX}:{secrets.token_hex(4)}",
        name=CommandName.SELF_TEST,
        issued_at=now,
        expires_at=now + timedelta(seconds=SELFTEST_WAIT_S),
    )

    async def send() -> None:
        session = mqtt.SessionOptions(client_id=f"termfleet-selftest-{secrets.token_hex(3)}")
        async with mqtt.connect(settings.login(CONTROL_PLANE_USERNAME), session) as cp:
            await cp.publish(mqtt.Outgoing(topic, encode(command)))

    try:
        asyncio.run(send())
    except mqtt.MqttError as exc:
        msg = f"the broker: {exc}"
        raise click.ClickException(msg) from None
    click.echo(f"asked {device_id} for a self-test ({command.command_id}); see `provision status`")


@click.command("replace")
@click.argument("old_device")
@click.argument("new_device")
@database_url
def replace(old_device: str, new_device: str, database_url: str) -> None:
    """Give NEW_DEVICE the site and window of OLD_DEVICE (e.g. a new review pad at a window).

    The old terminal keeps its site but loses the window; retire it with `provision retire`.
    """
    from control_plane.audit import local_actor
    from provisioning import device_actions

    work = functools.partial(
        device_actions.replace, local_actor(), old_device, new_device, now=datetime.now(UTC)
    )
    run_provisioning(database_url, work)
    click.echo(f"{new_device} took the place of {old_device}")
