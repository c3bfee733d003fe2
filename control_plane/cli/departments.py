"""``termfleet departments``: the departments (部门) windows serve, shared by the whole tree."""

from __future__ import annotations

import click

from control_plane.auth import Permission

from .admin import announce, api_path, needs, print_object
from .api_calls import run
from .devices_calls import api_options, call
from .output import print_rows

COLUMNS = ["code", "name"]


@click.group()
def departments() -> None:
    """The departments (公安, 社保, …) that windows serve, one list for the whole tree."""


@departments.command("ls", epilog=needs(Permission.SITES_READ))
@api_options
def ls(server: str, token: str | None, as_json: bool) -> None:
    """List the departments, by code."""
    rows = run(server, token, lambda api: api.every_page(api_path("departments")))
    print_rows(rows, COLUMNS, as_json=as_json)
    if not as_json:
        click.echo(f"{len(rows)} departments", err=True)


@departments.command("add", epilog=needs(Permission.SITES_WRITE, whole_tree=True))
@click.argument("code")
@click.option("--name", required=True, help="Its name (公安局).")
@api_options
def add(code: str, name: str, server: str, token: str | None, as_json: bool) -> None:
    """Add a department CODE (letters, digits, '.', '_', '-'), which any window may then serve."""
    body = {"code": code, "name": name}
    department = call(server, token, "POST", api_path("departments"), body=body)
    print_object(department, COLUMNS, as_json=as_json)
    announce(f"added department {department['code']}", as_json=as_json)
