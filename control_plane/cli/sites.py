"""``termfleet sites``: the jurisdiction tree, its sites and their windows.

``ls``, ``show`` and ``tree`` read them through the REST API, as far as the token's scope
reaches, and ``add``, ``set`` and ``rm`` change sites through it (``sites_admin``); ``import``
writes files of them straight into the database (docs/site-import.md).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from control_plane.auth import Permission

from . import options, site_output, sites_admin
from .admin import needs
from .api_calls import ApiSession, run
from .options import database_url
from .output import print_rows

if TYPE_CHECKING:  # the command imports tortoise when it runs, so `--help` stays fast
    from control_plane.inventory_store import ImportSummary

LEVELS = ("province", "city", "district", "town", "village")
COLUMNS = ["code", "name", "level", "node", "hours"]


@click.group()
def sites() -> None:
    """The jurisdiction tree and the sites, windows and terminals placed in it."""


@sites.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@database_url
@click.option("--dry-run", is_flag=True, help="Check and count the changes, then roll them back.")
@options.json_output
def import_(files: tuple[Path, ...], database_url: str, dry_run: bool, as_json: bool) -> None:
    """Import the tree, departments, sites, windows and devices from CSV or JSON FILES.

    A CSV file holds one table, told by its header; a JSON file any of them; a demo district
    (edge/simulator/data/*.json) imports as it is. Rows are created or updated by their codes,
    so importing the same files again changes nothing. All files go in one transaction: an
    error names the file, row and field, and imports nothing. The format: docs/site-import.md.
    """
    from control_plane.db import DatabaseError
    from control_plane.inventory import InventoryError

    try:
        summary = asyncio.run(_import(files, database_url, dry_run=dry_run))
    except (DatabaseError, InventoryError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "tables": summary.to_dict()}, indent=2))
        return
    rows = [{"table": name, **counts} for name, counts in summary.to_dict().items()]
    print_rows(rows, ["table", "created", "updated", "unchanged"], as_json=False)
    if dry_run:
        click.echo("dry run: nothing was written", err=True)


async def _import(files: tuple[Path, ...], url: str, *, dry_run: bool) -> ImportSummary:
    from control_plane.db import database
    from control_plane.inventory_files import read
    from control_plane.inventory_set import Inventory
    from control_plane.inventory_store import import_inventory

    inventory = Inventory()
    for path in files:
        inventory.extend(read(path))
    inventory.check()
    async with database(url):
        return await import_inventory(inventory, dry_run=dry_run)


@sites.command("ls", epilog=needs(Permission.SITES_READ))
@options.server_url
@options.api_token
@click.option("--node", metavar="CODE", help="Only the sites in this node's subtree.")
@click.option("--level", type=click.Choice(LEVELS), help="Only the sites of this level.")
@click.option("-q", "--query", "text", metavar="TEXT", help="Text in the code, name or address.")
@options.json_output
def ls(  # noqa: PLR0913 - one parameter per option
    server: str,
    token: str | None,
    node: str | None,
    level: str | None,
    text: str | None,
    as_json: bool,
) -> None:
    """List the sites in the token's scope, by code."""
    query = {k: v for k, v in {"node": node, "level": level, "q": text}.items() if v}
    rows = run(server, token, lambda api: api.every_page("/api/v1/sites", query))
    print_rows(rows, COLUMNS, as_json=as_json)
    if not as_json:
        click.echo(f"{len(rows)} sites", err=True)


@sites.command("show", epilog=needs(Permission.SITES_READ))
@click.argument("code")
@options.server_url
@options.api_token
@options.json_output
def show(code: str, server: str, token: str | None, as_json: bool) -> None:
    """Show a site: its node, opening hours, holidays, windows and their departments."""
    from urllib.parse import quote

    site = run(server, token, lambda api: api.request("GET", f"/api/v1/sites/{quote(code)}"))
    if as_json:
        click.echo(json.dumps(site, ensure_ascii=False, indent=2))
        return
    for line in site_output.site_lines(site):
        click.echo(line)
    click.echo()
    print_rows(site_output.window_rows(site), ["number", "name", "departments"], as_json=False)


@sites.command("tree", epilog=needs(Permission.SITES_READ))
@click.argument("code", required=False)
@click.option("--depth", type=click.IntRange(min=1), help="Levels to show below the top [all].")
@options.server_url
@options.api_token
@options.json_output
def tree(
    code: str | None, depth: int | None, server: str, token: str | None, as_json: bool
) -> None:
    """Print the jurisdiction tree below CODE, or from the top of the token's scope.

    One request per node that has children: for a large tree, start lower or limit --depth.
    """

    async def walk(api: ApiSession) -> list[dict[str, Any]]:
        if code is None:  # the tops are listed too: one level more
            return await _children(api, None, depth + 1 if depth else None)
        from urllib.parse import quote

        top = await api.request("GET", f"/api/v1/nodes/{quote(code)}")
        if top["children"]:
            top["children_nodes"] = await _children(api, code, depth)
        return [top]

    nodes = run(server, token, walk)
    if as_json:
        click.echo(json.dumps(nodes, ensure_ascii=False, indent=2))
        return
    for line in site_output.tree_lines(nodes):
        click.echo(line)


async def _children(
    api: ApiSession, parent: str | None, levels: int | None
) -> list[dict[str, Any]]:
    """The nodes below ``parent`` (the top of the scope for None), ``levels`` levels of them."""
    nodes = await api.every_page("/api/v1/nodes", {"parent": parent} if parent else {})
    below = None if levels is None else levels - 1
    for node in nodes:
        if node["children"] and below != 0:
            node["children_nodes"] = await _children(api, node["code"], below)
    return nodes


for _change in sites_admin.COMMANDS:
    sites.add_command(_change)
