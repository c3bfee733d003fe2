"""``termfleet devices label/move/retire``: changes to a device, through the REST API (audited)."""

from __future__ import annotations

from typing import Any

import click

from .devices_calls import api_options, call
from .output import print_rows

CHANGED_COLUMNS = ["device_id", "site", "window", "lifecycle", "labels"]


def _print_changed(device: dict[str, Any], *, as_json: bool) -> None:
    shown = {**device, "labels": ",".join(f"{k}={v}" for k, v in device["labels"].items())}
    print_rows([device] if as_json else [shown], CHANGED_COLUMNS, as_json=as_json)


def label_patch(changes: tuple[str, ...]) -> dict[str, str | None]:
    """``key=value`` sets a label, ``key-`` removes it (as kubectl's label command)."""
    patch: dict[str, str | None] = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if sep:
            patch[key] = value
        elif change.endswith("-") and len(change) > 1:
            patch[change[:-1]] = None
        else:
            msg = f"{change!r}: write key=value to set a label, or key- to remove it"
            raise click.BadParameter(msg, param_hint="CHANGES")
    return patch


@click.command("label")
@click.argument("device_id")
@click.argument("changes", nargs=-1, required=True)
@api_options
def label(
    device_id: str, changes: tuple[str, ...], server: str, token: str | None, as_json: bool
) -> None:
    """Set labels (key=value) or remove them (key-) on a device."""
    path = f"/api/v1/devices/{device_id}/labels"
    device = call(server, token, "PATCH", path, body=label_patch(changes))
    _print_changed(device, as_json=as_json)


@click.command("move")
@click.argument("device_id")
@click.argument("site")
@click.option("--window", metavar="NUMBER", help="Its window at the site (review pads).")
@api_options
def move(  # noqa: PLR0913 - one parameter per argument and option
    device_id: str, site: str, window: str | None, server: str, token: str | None, as_json: bool
) -> None:
    """Move a device to a site (by code), and to one of its windows."""
    body = {"site": site, "window": window}
    device = call(server, token, "POST", f"/api/v1/devices/{device_id}/move", body=body)
    _print_changed(device, as_json=as_json)


@click.command("retire")
@click.argument("device_id")
@click.option("--note", metavar="TEXT", help="Why, for the audit log.")
@click.confirmation_option(prompt="Retiring is final. Retire this device?")
@api_options
def retire(device_id: str, note: str | None, server: str, token: str | None, as_json: bool) -> None:
    """Retire a device for good (asks first; --yes does not)."""
    body = {"note": note} if note else {}
    device = call(server, token, "POST", f"/api/v1/devices/{device_id}/retire", body=body)
    _print_changed(device, as_json=as_json)


COMMANDS = (label, move, retire)
