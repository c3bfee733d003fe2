"""Dead letters and their resubmission as commands print them, from the database or the API.

``termfleet db dead-letters`` / ``db resubmit`` (the database's URL) and ``termfleet dead-letters
ls`` / ``resubmit`` (the REST API) print the same rows: what the listing and the API answer.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import click

from edge.protocol.errors import RejectReason

from .output import print_rows

DETAIL_WIDTH = 72
"""Of the refusal's detail in the table; ``--json`` has all of it, and the payload."""
by_reason = click.option(
    "--reason",
    type=click.Choice([reason.value for reason in RejectReason]),
    help="Only those refused for this reason (unstorable: the database refused them).",
)
dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Resubmit each in a transaction that is rolled back: what would happen, nothing changed.",
)
by_device = click.option("--device", "device_id", metavar="DEVICE_ID", help="Only this device's.")
LIST_COLUMNS = ["id", "received_at", "device_id", "seq", "reason", "detail"]
RESUBMIT_COLUMNS = ["id", "device_id", "seq", "reason", "outcome", "stored", "detail"]


def print_letters(rows: Sequence[dict[str, Any]], *, as_json: bool) -> None:
    """Dead letters, newest first: a table, or with ``as_json`` every field and the payload."""
    if as_json:
        print_rows(list(rows), [], as_json=True)
        return
    print_rows(
        [{**row, "detail": one_line(str(row["detail"]))} for row in rows],
        LIST_COLUMNS,
        as_json=False,
    )


def report_resubmitted(report: Mapping[str, Any], *, as_json: bool) -> None:
    """What a resubmission did (``dry_run``, ``resubmitted``, ``not_found``).

    Exits 1 when any selected dead letter is kept or an asked-for id is not found.
    """
    from control_plane.dead_letters import Outcome

    rows = report["resubmitted"]
    if as_json:
        click.echo(json.dumps(report))
    else:
        table = [{**row, "detail": one_line(str(row["detail"]))} for row in rows]
        print_rows(table, RESUBMIT_COLUMNS, as_json=False)
        click.echo(summary(report), err=True)
    if report["not_found"] or any(Outcome(row["outcome"]).kept for row in rows):
        sys.exit(1)


def summary(report: Mapping[str, Any]) -> str:
    """One line: the count of each outcome, the records stored, the ids not found."""
    from control_plane.dead_letters import Outcome

    rows, missing = report["resubmitted"], report["not_found"]
    counts = Counter(Outcome(row["outcome"]) for row in rows)
    records = sum(row["stored"] for row in rows)
    parts = [f"{counts[o]} {o.value.replace('_', ' ')}" for o in Outcome if counts[o]]
    said = ", ".join(parts) or "no dead letters"
    said += f"; {records} records stored"
    if missing:
        said += f"; not found: {', '.join(map(str, missing))}"
    return f"dry run, nothing changed: {said}" if report["dry_run"] else said


def one_line(detail: str) -> str:
    """A refusal's detail as one cell of a table: on one line, cut at ``DETAIL_WIDTH``."""
    detail = " ".join(detail.split())
    return detail if len(detail) <= DETAIL_WIDTH else detail[: DETAIL_WIDTH - 1] + "…"
