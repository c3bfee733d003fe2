"""``termfleet db``: the control plane's database schema, its migrations applied and pending."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from . import options
from .dead_letter_output import (
    by_device,
    by_reason,
    dry_run_option,
    print_letters,
    report_resubmitted,
)
from .output import print_rows

if TYPE_CHECKING:  # the commands import tortoise when they run, so `--help` stays fast
    from control_plane.db import migrator
    from control_plane.dead_letters import Resubmitted

T = TypeVar("T")


@click.group()
def db() -> None:
    """The control plane's database: schema migrations, and what the ingest kept raw.

    `termfleet server run` applies pending migrations when it starts (unless
    TERMFLEET_AUTO_MIGRATE=0, when it refuses to start until `termfleet db migrate` has run).
    """


@db.command("status")
@options.database_url
@options.json_output
def status(database_url: str, as_json: bool) -> None:
    """Show the migrations the database has and those pending; change nothing."""
    from control_plane.db import DatabaseError, migration_status

    try:
        result = asyncio.run(migration_status(database_url))
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    rows = [{"migration": name, "state": _state(result, name)} for name in result.known]
    rows += [{"migration": name, "state": "unknown (newer termfleet)"} for name in result.unknown]
    print_rows(rows, ["migration", "state"], as_json=False)
    click.echo(_summary(result), err=True)


@db.command("migrate")
@options.database_url
@click.option("--to", "target", metavar="MIGRATION", help="Stop at this migration [the latest].")
@options.json_output
def migrate(database_url: str, target: str | None, as_json: bool) -> None:
    """Apply the pending migrations, in order, forward only."""
    from control_plane.db import DatabaseError, migrate_to, migration_status

    try:
        applied = asyncio.run(migrate_to(database_url, target))
        result = asyncio.run(migration_status(database_url))
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"migrated": applied, **result.to_dict()}, indent=2))
        return
    for name in applied:
        click.echo(f"applied {name}")
    click.echo(_summary(result), err=True)


@db.command("dead-letters")
@options.database_url
@by_reason
@by_device
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="At most."
)
@options.json_output
def dead_letters(
    database_url: str, reason: str | None, device_id: str | None, limit: int, as_json: bool
) -> None:
    """List the uplink messages the ingest kept raw instead of storing them, newest first.

    A dead letter is a record (or a whole message) that could never be stored as sent: refused
    by the wire contract, or by the database itself (reason unstorable, an alert of its own).
    Its device was told to stop sending it; the payload is kept as it came, in --json.
    """
    from control_plane.dead_letters import newest

    async def read() -> list[dict[str, object]]:
        return await newest(reason=reason, device_id=device_id, limit=limit)

    print_letters(run_with_database(database_url, read), as_json=as_json)


@db.command("resubmit")
@options.database_url
@click.argument("ids", nargs=-1, type=click.IntRange(min=1), metavar="[ID]...")
@by_reason
@by_device
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Without IDs: at most this many, oldest first.",
)
@options.calendar_files
@dry_run_option
@options.json_output
def resubmit(  # noqa: PLR0913 - one parameter per option
    database_url: str,
    ids: tuple[int, ...],
    reason: str | None,
    device_id: str | None,
    limit: int,
    calendar_files: tuple[Path, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Store dead letters again once what refused them is fixed: these IDs, or all, oldest first.

    Each goes through the wire contract and the ingest's transaction again: its records are
    stored (once: not those stored meanwhile), 好差评 reviews with their cases, and the dead
    letter is deleted and the resubmission audited, all in one transaction. One still refused
    (by the contract or the database) is kept as it was. Exits 1 when any selected dead letter
    is kept or an ID is not found.
    """
    from control_plane import audit
    from control_plane.dead_letters import Selection, resubmit, select

    calendar = options.load_calendar(calendar_files)
    wanted = Selection(ids, reason, device_id, limit)

    async def work() -> tuple[list[Resubmitted], list[int]]:
        letters = await select(wanted)
        missing = sorted(set(ids) - {letter.id for letter in letters})
        done = []
        with click.progressbar(
            length=len(letters), label="resubmitting", file=sys.stderr, hidden=as_json
        ) as bar:
            async for one in resubmit(letters, calendar, audit.local_actor(), dry_run=dry_run):
                done.append(one)
                bar.update(1)
        return done, missing

    done, missing = run_with_database(database_url, work)
    rows = [{**asdict(one), "outcome": one.outcome.value} for one in done]
    report_resubmitted(
        {"dry_run": dry_run, "resubmitted": rows, "not_found": missing}, as_json=as_json
    )


def run_with_database(url: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` with the database open (and migrated, as the server would); for commands.

    A database that cannot be opened is a clean error, not a traceback.
    """
    from control_plane.db import DatabaseError, database

    async def main() -> T:
        async with database(url):
            return await work()

    try:
        return asyncio.run(main())
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None


def _state(result: migrator.MigrationStatus, name: str) -> str:
    if name in result.applied:
        return "applied"
    if result.adoptable and name == result.known[0]:
        return "pending (schema from before migrations: recorded, not run)"
    return "pending"


def _summary(result: migrator.MigrationStatus) -> str:
    if result.unknown:
        return f"the database is ahead of this termfleet ({', '.join(result.unknown)})"
    if not result.pending:
        return f"up to date at {result.current}"
    where = f"at {result.current}" if result.current else "empty"
    return f"{where}, {len(result.pending)} pending: run `termfleet db migrate`"
