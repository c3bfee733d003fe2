"""``termfleet staff``: staff (工作人员) at the sites in the token's scope, through the REST API."""

from __future__ import annotations

import json

import click

from . import options
from .api_calls import run
from .output import print_rows

COLUMNS = ["number", "name", "department", "site", "window", "active"]


@click.group()
def staff() -> None:
    """Staff of departments at sites, known by their staff number (工号).

    termfleet never stores a national ID number: the API refuses one in any field.
    """


@staff.command("ls")
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


@staff.command("add")
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
