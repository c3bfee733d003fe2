"""``termfleet sites``: the jurisdiction tree, sites, windows and devices, imported from files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import options
from .options import database_url
from .output import print_rows

if TYPE_CHECKING:  # the command imports tortoise when it runs, so `--help` stays fast
    from control_plane.inventory_store import ImportSummary


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
    from control_plane.inventory import Inventory
    from control_plane.inventory_files import read
    from control_plane.inventory_store import import_inventory

    inventory = Inventory()
    for path in files:
        inventory.extend(read(path))
    inventory.check()
    async with database(url):
        return await import_inventory(inventory, dry_run=dry_run)
