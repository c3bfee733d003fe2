"""``termfleet stats``: the statistics through the REST API, and the roll-up job by hand.

``cases`` and ``reviews`` ask the control plane (``--server``, ``--token``) for the figures of
the token's scope; ``rollup`` and ``prune`` work on the database directly, like ``termfleet
db``: they are for operators of the server, who hold its database anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import options
from .db import run_with_database
from .output import print_rows

if TYPE_CHECKING:  # the commands import the job when they run, so `--help` stays fast
    from control_plane.rollup_settings import RollupSettings

F = TypeVar("F", bound=Callable[..., Any])
GROUP_COLUMNS = {
    "level": ["level"],
    "site": ["site", "site_name"],
    "node": ["node", "node_name"],
    "department": ["department", "department_name"],
    "item": ["item"],
    "day": ["day"],
    "month": ["month"],
}
CASE_COLUMNS = [
    "cases",
    "window_cases",
    "self_service_cases",
    "transactions_failed",
    "pages_printed",
    "id_card_reads",
    "help_calls",
]
REVIEW_COLUMNS = [
    "reviews",
    "very_satisfied",
    "satisfied",
    "basic",
    "dissatisfied",
    "very_dissatisfied",
    "bad_reviews",
    "satisfaction_rate",
]
DIMENSIONS = list(GROUP_COLUMNS)
LEVELS = ["province", "city", "district", "town", "village"]


@click.group()
def stats() -> None:
    """Statistics: handled cases (办件量), usage and 好差评 reviews, from the roll-ups.

    The server rolls records up every 5 minutes; `rollup` and `prune` run that job by hand.
    """


def query_options(command: F) -> F:
    """The grouping and filters both `cases` and `reviews` take, and where to ask."""
    decorators = [
        options.server_url,
        options.api_token,
        click.option(
            "--by",
            "by",
            multiple=True,
            metavar="DIMENSION[,…]",
            help=f"Group by {', '.join(DIMENSIONS)} (day or month, not both); repeatable.",
        ),
        click.option("--node", metavar="CODE", help="A subtree of the jurisdiction tree."),
        click.option("--from", "first_day", metavar="YYYY-MM-DD", help="First day [30 days ago]."),
        click.option("--to", "last_day", metavar="YYYY-MM-DD", help="Last day [today]."),
        click.option("--department", metavar="CODE", help="One department's records."),
        click.option("--item", metavar="CODE", help="One service item's records."),
        click.option("--level", type=click.Choice(LEVELS), help="Sites of one level."),
        options.json_output,
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


@stats.command("cases")
@query_options
def cases(server: str, token: str | None, as_json: bool, **query: Any) -> None:  # noqa: ANN401 - click's values
    """Handled cases (办件量) and usage in the token's scope, grouped and filtered.

    Example, the seed table of a district over a quarter:
    `termfleet stats cases --by level --node 440117 --from 2026-01-01 --to 2026-03-31`
    """
    body = _fetch(server, token, "/api/v1/stats/cases", query)
    _print(body, CASE_COLUMNS, as_json=as_json)


@stats.command("reviews")
@query_options
def reviews(server: str, token: str | None, as_json: bool, **query: Any) -> None:  # noqa: ANN401 - click's values
    """好差评 ratings by level, bad reviews and the satisfaction rate, grouped and filtered."""
    body = _fetch(server, token, "/api/v1/stats/reviews", query)
    for item in [*body["items"], body["total"]]:
        rate = item.get("satisfaction_rate")
        if not as_json and rate is not None:
            item["satisfaction_rate"] = f"{rate:.1%}"
    _print(body, REVIEW_COLUMNS, as_json=as_json)


def _params(query: dict[str, Any]) -> dict[str, str]:
    """The API's query parameters: ``--by`` given several times is one comma-separated list."""
    names = {"first_day": "from", "last_day": "to"}
    params = {names.get(k, k): str(v) for k, v in query.items() if v is not None and k != "by"}
    if query.get("by"):
        params["by"] = ",".join(query["by"])
    return params


def _fetch(server: str, token: str | None, path: str, query: dict[str, Any]) -> dict[str, Any]:
    from . import api_calls

    async def work(api: api_calls.ApiSession) -> dict[str, Any]:
        body: dict[str, Any] = await api.request("GET", path, params=_params(query))
        return body

    return api_calls.run(server, token, work)


def _print(body: dict[str, Any], figures: list[str], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    groups = [column for dimension in body["by"] for column in GROUP_COLUMNS[dimension]]
    rows = list(body["items"])
    if groups and rows:
        rows.append({groups[0]: "TOTAL", **body["total"]})
    print_rows(rows, [*groups, *figures], as_json=False)
    where = f"node {body['node']}" if body["node"] else "the whole tree"
    click.echo(f"{body['from']} to {body['to']}, {where}", err=True)


# --- the job by hand -------------------------------------------------------------------------


def _settings(
    records_days: int | None = None, hourly_days: int | None = None, daily_days: int | None = None
) -> RollupSettings:
    """The environment's settings, with the days given on the command line instead."""
    from control_plane.rollup_settings import RollupSettings, SettingsError

    try:
        settings = RollupSettings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    return RollupSettings(
        zone=settings.zone,
        records_days=records_days or settings.records_days,
        hourly_days=hourly_days or settings.hourly_days,
        daily_days=daily_days or settings.daily_days,
    )


@stats.command("rollup")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Re-roll from this day on: replace its roll-ups and later ones with the records' counts.",
)
@options.database_url
@options.json_output
def rollup(since: Any, database_url: str, as_json: bool) -> None:  # noqa: ANN401 - click's datetime
    """Count the records not rolled up yet (what the server does every 5 minutes).

    With --since, first replace the roll-ups from that day on (in the statistics' time zone):
    after a fix to the counting, or records restored. Days whose raw records retention may have
    deleted cannot be re-rolled. Audited.
    """
    from control_plane import rollups
    from control_plane.audit import local_actor

    settings = _settings()
    day: date | None = since.date() if since else None

    async def work() -> dict[str, Any]:
        started = None
        if day is not None:
            try:
                started = await rollups.start_reroll(day, settings, actor=local_actor())
            except rollups.RerollError as exc:
                raise click.ClickException(str(exc)) from None
        report = await rollups.roll_up(settings)
        return {
            "rolled_up": asdict(report),
            "reroll": None if started is None else {**asdict(started), "since": str(started.since)},
        }

    result = run_with_database(database_url, work)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    report = result["rolled_up"]
    if result["reroll"]:
        since = result["reroll"]["since"]
        click.echo(f"re-rolled from {since}: {report['recounted']} records counted again")
    click.echo(
        f"counted {report['counted']} of {report['read']} new records"
        f" (up to record {report['last_record_id']})"
    )
    if report["unreadable"]:
        click.echo(f"{report['unreadable']} stored records could not be decoded", err=True)


@stats.command("prune")
@click.option("--records-days", type=click.IntRange(min=1), help="Keep raw records this long.")
@click.option("--hourly-days", type=click.IntRange(min=1), help="Keep hourly roll-ups this long.")
@click.option("--daily-days", type=click.IntRange(min=1), help="Keep daily roll-ups this long.")
@options.database_url
@options.json_output
def prune(
    records_days: int | None,
    hourly_days: int | None,
    daily_days: int | None,
    database_url: str,
    as_json: bool,
) -> None:
    """Apply retention now (the server does after each roll-up); audited when it deletes.

    Raw records go when older than --records-days [env TERMFLEET_RETAIN_RECORDS_DAYS, 90] and
    rolled up; hourly and daily roll-ups after --hourly-days [366] and --daily-days [1096].
    """
    from control_plane import audit, retention

    settings = _settings(records_days=records_days, hourly_days=hourly_days, daily_days=daily_days)

    async def work() -> retention.PruneReport:
        report = await retention.prune(settings)
        if report.records or report.hourly or report.daily:
            await audit.record(
                "records.prune",
                audit.local_actor(),
                "retention",
                "records",
                after={
                    "records": report.records,
                    "hourly_rollups": report.hourly,
                    "daily_rollups": report.daily,
                },
                note=f"records received before {report.records_before:%Y-%m-%d %H:%M} UTC",
            )
        return report

    report = run_with_database(database_url, work)
    if as_json:
        click.echo(json.dumps({**asdict(report), "records_before": str(report.records_before)}))
        return
    click.echo(
        f"deleted {report.records} records, {report.hourly} hourly and {report.daily} daily"
        " roll-ups"
    )
