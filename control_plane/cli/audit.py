"""``termfleet audit``: the audit log of every change, read from the control plane's database."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from . import options
from .db import run_with_database
from .options import database_url
from .output import print_rows

if TYPE_CHECKING:  # the command imports tortoise when it runs, so `--help` stays fast
    from control_plane.db.models import AuditEntry

COLUMNS = ["id", "at", "actor", "action", "target", "note"]


@click.group()
def audit() -> None:
    """The audit log: who changed what, when, and the target before and after."""


@audit.command("ls")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest entries."
)
@database_url
@options.json_output
def ls(limit: int, database_url: str, as_json: bool) -> None:
    """List the newest entries, newest first (with --json: their before and after too)."""
    from control_plane import audit as audit_log

    async def newest() -> list[AuditEntry]:
        return await audit_log.entries(limit=limit)

    views = [audit_log.entry_view(entry) for entry in run_with_database(database_url, newest)]
    if as_json:
        click.echo(json.dumps(views, ensure_ascii=False, indent=2))
        return
    print_rows([_row(view) for view in views], COLUMNS, as_json=False)


def _row(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "target": f"{view['target_type']} {view['target_id']}"}
