"""``termfleet staff``: staff (工作人员) at the sites in the token's scope, through the REST API.

There is no ``staff rm``: the API never deletes a member of staff, so that the reviews bound to
them stay attributable; ``staff set NUMBER --inactive`` retires one.
"""

from __future__ import annotations

import json

import click

from control_plane.auth import Permission

from . import options
from .admin import announce, api_path, needs, print_object
from .api_calls import run
from .devices_calls import api_options, call
from .output import print_rows

COLUMNS = ["number", "name", "department", "site", "window", "active"]


@click.group()
def staff() -> None:
    """Staff of departments at sites, known by their staff number (工号).

    termfleet never stores a national ID number: the API refuses one in any field.
    """


@staff.command("ls", epilog=needs(Permission.SITES_READ))
@options.server_url
@options.api_token
@click.option("--site", metavar="CODE", help="Only the staff of this site.")
@click.option("--node", metavar="CODE", help="Only the staff of the sites in this subtree.")
@click.option("--department", metavar="CODE", help="Only the staff of this department.")
@click.option("--active/--inactive", default=None, help="Only active (or inactive) staff.")
@options.json_output
def ls(  # noqa: PLR0913 - one parameter per option
    server: str,
    token: str | None,
    site: str | None,
    node: str | None,
    department: str | None,
    active: bool | None,
    as_json: bool,
) -> None:
    """List the staff in the token's scope, by staff number."""
    query = {k: v for k, v in {"site": site, "node": node, "department": department}.items() if v}
    if active is not None:
        query["active"] = "true" if active else "false"
    rows = run(server, token, lambda api: api.every_page("/api/v1/staff", query))
    print_rows(rows, COLUMNS, as_json=as_json)
    if not as_json:
        click.echo(f"{len(rows)} staff", err=True)


@staff.command("add", epilog=needs(Permission.SITES_WRITE))
@click.option("--number", required=True, help="The staff number (工号), unique in the tree.")
@click.option("--name", required=True)
@click.option("--department", required=True, metavar="CODE")
@click.option("--site", required=True, metavar="CODE")
@click.option("--window", metavar="NUMBER", help="The window they work at, at that site.")
@options.server_url
@options.api_token
@options.json_output
def add(  # noqa: PLR0913 - one parameter per option
    number: str,
    name: str,
    department: str,
    site: str,
    window: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Add a member of staff at a site in the token's scope."""
    body = {"number": number, "name": name, "department": department, "site": site}
    if window is not None:
        body["window"] = window
    added = run(server, token, lambda api: api.request("POST", "/api/v1/staff", body=body))
    if as_json:
        click.echo(json.dumps(added, ensure_ascii=False, indent=2))
        return
    where = f"{added['site']}, window {added['window']}" if added["window"] else added["site"]
    click.echo(f"added {added['number']} {added['name']} ({added['department']}) at {where}")


@staff.command("set", epilog=needs(Permission.SITES_WRITE, "moving them, the new --site too"))
@click.argument("number")
@click.option("--name", help="A new name.")
@click.option("--department", metavar="CODE", help="Their department.")
@click.option("--site", metavar="CODE", help="Move them here (their window goes, unless given).")
@click.option("--window", metavar="NUMBER", help="The window they work at, at their site.")
@click.option("--no-window", is_flag=True, help="Bind them to no window.")
@click.option("--active/--inactive", default=None, help="Back at work, or gone (never deleted).")
@api_options
def set_(  # noqa: PLR0913 - one parameter per argument and option
    number: str,
    name: str | None,
    department: str | None,
    site: str | None,
    window: str | None,
    no_window: bool,
    active: bool | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Change a member of staff, known by their staff NUMBER (工号); the rest stays."""
    if window is not None and no_window:
        msg = "give --window NUMBER, or --no-window, not both"
        raise click.UsageError(msg)
    fields = {"name": name, "department": department, "site": site, "window": window,
              "active": active}  # fmt: skip
    changes: dict[str, object] = {k: v for k, v in fields.items() if v is not None}
    if no_window:
        changes["window"] = None
    member = call(server, token, "PATCH", api_path("staff", number), body=changes)
    print_object(member, COLUMNS, as_json=as_json)
    announce(f"updated staff {member['number']}", as_json=as_json)
