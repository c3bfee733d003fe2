"""``termfleet dead-letters``: what the ingest kept raw instead of storing, through the REST API.

The same as ``termfleet db dead-letters`` and ``db resubmit`` for whoever has an API token for
the whole tree but not the database's URL (docs/dead-letters.md).
"""

from __future__ import annotations

from typing import Any

import click

from . import options
from .api_calls import PAGE, ApiSession, run
from .dead_letter_output import (
    by_device,
    by_reason,
    dry_run_option,
    print_letters,
    report_resubmitted,
)

DEAD_LETTERS = "/api/v1/dead-letters"
RESUBMIT = "/api/v1/dead-letters/resubmit"
MAX_RESUBMIT = 500
"""The API's limit for one resubmission; run the command again for the next ones."""


@click.group("dead-letters")
def dead_letters() -> None:
    """Dead letters (what the ingest could not store as sent) through the API.

    The same as `termfleet db dead-letters` and `db resubmit`, with an API token for the whole
    tree (permissions dead_letters.read and dead_letters.resubmit) instead of the database's URL.
    """


@dead_letters.command("ls")
@by_reason
@by_device
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="At most."
)
@options.server_url
@options.api_token
@options.json_output
def ls(  # noqa: PLR0913 - one parameter per option
    reason: str | None,
    device_id: str | None,
    limit: int,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """List the uplink messages the ingest kept raw instead of storing them, newest first.

    A dead letter could never be stored as sent: refused by the wire contract, or by the
    database itself (reason unstorable). Its device was told to stop sending it; the payload
    is kept as it came, in --json.
    """
    wanted = {"reason": reason, "device_id": device_id}
    query = {name: value for name, value in wanted.items() if value is not None}

    async def newest(api: ApiSession) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(rows) < limit:
            page_size = str(min(PAGE, limit - len(rows)))
            params = {**query, "limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = await api.request("GET", DEAD_LETTERS, params=params)
            rows += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return rows

    print_letters(run(server, token, newest), as_json=as_json)


@dead_letters.command("resubmit")
@click.argument("ids", nargs=-1, type=click.IntRange(min=1), metavar="[ID]...")
@by_reason
@by_device
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_RESUBMIT),
    default=100,
    show_default=True,
    help="Without IDs: at most this many, oldest first.",
)
@dry_run_option
@options.server_url
@options.api_token
@options.json_output
def resubmit(  # noqa: PLR0913 - one parameter per option
    ids: tuple[int, ...],
    reason: str | None,
    device_id: str | None,
    limit: int,
    dry_run: bool,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Store dead letters again once what refused them is fixed: these IDs, or all, oldest first.

    The control plane puts each through the wire contract and the ingest's transaction again
    and audits it as the token's. One still refused is kept. Exits 1 when any selected dead
    letter is kept or an ID is not found.
    """
    if len(ids) > MAX_RESUBMIT:
        msg = f"at most {MAX_RESUBMIT} IDs at once"
        raise click.BadParameter(msg, param_hint="ID")
    body = {
        "ids": list(ids), "reason": reason, "device_id": device_id, "limit": limit,
        "dry_run": dry_run,
    }  # fmt: skip
    report = run(server, token, lambda api: api.request("POST", RESUBMIT, body=body))
    report_resubmitted(report, as_json=as_json)
