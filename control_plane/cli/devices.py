"""``termfleet devices``: the device registry, through the control plane's REST API.

The server and token come from ``--server``/``--token``, the environment, or the CLI config file
(``config_file``); every command prints a table (or a device's fields) by default and the API's
JSON with ``--json``, and exits non-zero with the API's message when it refuses.
"""

from __future__ import annotations

import json
from typing import Any

import click
from multidict import MultiDict

from control_plane.fleet import PRESENCE_FILTERS
from control_plane.lifecycle import Lifecycle
from edge.protocol import DeviceKind, PeripheralKind

from . import devices_changes, options
from .api_calls import ApiSession, run
from .devices_calls import api_options, call
from .output import print_rows

COLUMNS = ["device_id", "kind", "availability", "site", "window", "lifecycle", "last_seen"]
PERIPHERAL_COLUMNS = ["name", "kind", "status", "reason", "model", "firmware", "status_since"]
RECORD_COLUMNS = ["seq", "channel", "type", "received_at"]
LIFECYCLES = [state.value for state in Lifecycle]


@click.group()
def devices() -> None:
    """Inspect and change the terminals known to the control plane."""


@devices.command("ls")
@click.option("--node", metavar="CODE", help="Only the subtree below this 行政区划 code.")
@click.option("--site", metavar="CODE", help="Only the devices at this site.")
@click.option("--kind", type=click.Choice([k.value for k in DeviceKind]))
@click.option(
    "--presence",
    type=click.Choice(sorted(PRESENCE_FILTERS)),
    help="online, offline, unknown; or offline_expected (site closed) / offline_unexpected.",
)
@click.option(
    "--fault",
    type=click.Choice(sorted([k.value for k in PeripheralKind] + ["any"])),
    help="Devices with a peripheral of this kind (or any) at fault, degraded or absent.",
)
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", help="Repeat to require several."
)
@click.option("-q", "--search", metavar="TEXT", help="In the device id, serial or site name.")
@click.option("--lifecycle", type=click.Choice(LIFECYCLES))
@api_options
def ls(  # noqa: PLR0913 - one parameter per filter
    node: str | None,
    site: str | None,
    kind: str | None,
    presence: str | None,
    fault: str | None,
    labels: tuple[str, ...],
    search: str | None,
    lifecycle: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """List devices in the token's scope, with their presence, placement and lifecycle."""
    single = {"node": node, "site": site, "kind": kind, "presence": presence, "fault": fault,
              "q": search, "lifecycle": lifecycle}  # fmt: skip
    query = [(k, v) for k, v in single.items() if v] + [("label", label) for label in labels]
    secret = options.require_token(token, server)

    async def work(api: ApiSession) -> list[dict[str, Any]]:
        return await every_page(api, query)

    rows = run(server, secret, work)
    print_rows(rows, COLUMNS, as_json=as_json)
    if not as_json:
        click.echo(f"{len(rows)} devices", err=True)


async def every_page(api: ApiSession, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every device of a listing; repeated parameters (labels) need a list of pairs."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = MultiDict([*query, ("limit", "500"), *([("cursor", cursor)] if cursor else [])])
        page = await api.request("GET", "/api/v1/devices", params=params)
        rows += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


@devices.command("show")
@click.argument("device_id")
@click.option(
    "--records",
    type=click.IntRange(0, 100),
    default=10,
    show_default=True,
    help="How many of its most recent records to show.",
)
@api_options
def show(device_id: str, records: int, server: str, token: str | None, as_json: bool) -> None:
    """Show one device: placement, presence, inventory, peripherals and recent records."""
    path = f"/api/v1/devices/{device_id}"
    device = call(server, token, "GET", path, params={"records": str(records)})
    if as_json:
        click.echo(json.dumps(device, ensure_ascii=False, indent=2))
        return
    print_device(device)


def print_device(device: dict[str, Any]) -> None:
    agent = device.get("agent") or {}
    fields = {
        "device": device["device_id"],
        "kind": device["kind"],
        "serial": device["serial"] or None,
        "lifecycle": device["lifecycle"],
        "presence": f"{device['presence']} ({device['availability']})",
        "site": f"{device['site']} {device['site_name']}" if device["site"] else None,
        "window": device["window"],
        "labels": ", ".join(f"{k}={v}" for k, v in device["labels"].items()) or None,
        "agent": agent.get("agent_version") or device["agent_version"] or None,
        "last seen": device["last_seen"],
    }
    for name, value in fields.items():
        click.echo(f"{name + ':':<12}{value if value is not None else '-'}")
    if device.get("peripherals"):
        click.echo("")
        print_rows(device["peripherals"], PERIPHERAL_COLUMNS, as_json=False)
    if device.get("recent_records"):
        click.echo("")
        print_rows(device["recent_records"], RECORD_COLUMNS, as_json=False)


for _change in devices_changes.COMMANDS:
    devices.add_command(_change)
