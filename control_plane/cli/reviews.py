"""``termfleet reviews``: 好差评 reviews, league tables and review policies, through the REST API.

Every command asks the control plane (``--server``, ``--token``) and sees what the token's scope
holds; docs/reviews.md describes the routes. Tables are aligned by display width, so that
Chinese names (two columns each in a terminal) line up with the rest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from . import options
from .api_calls import ApiSession, run
from .output import cell, print_rows

if TYPE_CHECKING:  # aiohttp's multidict is imported when a command runs: `--help` stays fast
    from multidict import MultiDict

REVIEWS = "/api/v1/reviews"
SCORES = "/api/v1/scores"
POLICIES = "/api/v1/review-policies"
RATINGS = ("very_satisfied", "satisfied", "basic", "dissatisfied", "very_dissatisfied", "unknown")
GROUPINGS = ("window", "site", "department", "level")
MAX_PAGE = 500
REVIEW_COLUMNS = ["rated_at", "case_number", "rating", "site", "window", "department", "source"]
REFUSAL_COLUMNS = ["received_at", "device_id", "seq", "case_number", "reason", "rating"]
PROBLEM_COLUMNS = ["found_at", "device_id", "seq", "kind", "expected", "found"]
POLICY_COLUMNS = ["node", "node_name", "deadline_working_days", "rate_within_days", "updated_by"]
SCORE_COLUMNS = ["rank", "name", "score", "reviews", "满意率", "差评率"]

limit_option = click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show at most this many, newest first.",
)


@click.group()
def reviews() -> None:
    """好差评 (good/bad reviews): reviews, refused ratings, league tables, review policies.

    Reading needs a token with reviews.read (admin, operator, auditor); setting policies
    reviews.write (admin). A token sees the reviews of its scope's sites.
    """


# --- listings -----------------------------------------------------------------------------------


async def _newest(
    api: ApiSession, path: str, params: MultiDict[str], limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` items of a listing, a page at a time."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(items) < limit:
        query = params.copy()
        query["limit"] = str(min(limit - len(items), MAX_PAGE))
        if cursor:
            query["cursor"] = cursor
        page = await api.request("GET", path, params=query)
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items


def _query(pairs: Sequence[tuple[str, object]]) -> MultiDict[str]:
    """Query parameters without the options not given; a repeated one as repeated pairs."""
    from multidict import MultiDict

    return MultiDict((name, str(value)) for name, value in pairs if value is not None)


@reviews.command("ls")
@click.option("--site", metavar="CODE", help="One site's reviews.")
@click.option("--node", metavar="CODE", help="A subtree of the jurisdiction tree.")
@click.option("--department", metavar="CODE", help="Reviews naming this institution.")
@click.option("--rating", "ratings", multiple=True, type=click.Choice(RATINGS), help="Repeatable.")
@click.option("--bad", is_flag=True, help="Only 差评 (不满意 and 非常不满意).")
@click.option("--source", type=click.Choice(["terminal", "default"]), help="Rated, or defaulted.")
@click.option("--since", metavar="WHEN", help="Rated at or after: YYYY-MM-DD or an ISO time.")
@click.option("--until", metavar="WHEN", help="Rated before: YYYY-MM-DD or an ISO time.")
@limit_option
@options.server_url
@options.api_token
@options.json_output
def ls(  # noqa: PLR0913 - one parameter per option
    site: str | None,
    node: str | None,
    department: str | None,
    ratings: tuple[str, ...],
    bad: bool,
    source: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """List reviews, newest first (days are the server's local days).

    Example, this month's bad reviews at a hall:
    `termfleet reviews ls --site s440117 --bad --since 2026-03-01`
    """
    params = _query(
        [
            ("site", site),
            ("node", node),
            ("department", department),
            *(("rating", rating) for rating in ratings),
            ("bad", "true" if bad else None),
            ("source", source),
            ("since", since),
            ("until", until),
        ]
    )
    items = run(server, token, lambda api: _newest(api, REVIEWS, params, limit))
    print_rows(items, REVIEW_COLUMNS, as_json=as_json)


@reviews.command("show")
@click.argument("case_number", metavar="CASE")
@options.server_url
@options.api_token
@options.json_output
def show(case_number: str, server: str, token: str | None, as_json: bool) -> None:
    """One case's review, and the work order a 差评 opened."""
    path = f"{REVIEWS}/{quote(case_number, safe='')}"
    review = run(server, token, lambda api: api.request("GET", path))
    if as_json:
        click.echo(json.dumps(review, ensure_ascii=False, indent=2))
        return
    order = review.pop("work_order")
    for name, value in review.items():
        click.echo(f"{name}: {cell(value)}")
    if order is not None:
        click.echo(
            f"work order {order['id']}: {order['state']}, due {order['due']}"
            + (f", closed {order['closed_at']}" if order["closed_at"] else "")
        )


@reviews.command("refusals")
@click.option("--reason", type=click.Choice(["duplicate", "late"]), help="Only this reason.")
@limit_option
@options.server_url
@options.api_token
@options.json_output
def refusals(reason: str | None, limit: int, server: str, token: str | None, as_json: bool) -> None:
    """Refused ratings: a case rated a second time (duplicate) or after its default (late)."""
    params = _query([("reason", reason)])
    items = run(server, token, lambda api: _newest(api, f"{REVIEWS}/refusals", params, limit))
    print_rows(items, REFUSAL_COLUMNS, as_json=as_json)


@reviews.command("chain-problems")
@click.option("--kind", help="Only this kind (hash_mismatch, broken_link, …).")
@limit_option
@options.server_url
@options.api_token
@options.json_output
def chain_problems(
    kind: str | None, limit: int, server: str, token: str | None, as_json: bool
) -> None:
    """Breaks in the review pads' tamper-evident logs (hash chains), newest first."""
    params = _query([("kind", kind)])
    path = f"{REVIEWS}/chain-problems"
    items = run(server, token, lambda api: _newest(api, path, params, limit))
    print_rows(items, PROBLEM_COLUMNS, as_json=as_json)


# --- scores -------------------------------------------------------------------------------------


@reviews.command("scores")
@click.option("--by", type=click.Choice(GROUPINGS), default="site", show_default=True)
@click.option("--month", metavar="YYYY-MM", help="A month of the server's zone [this month].")
@click.option("--since", metavar="WHEN", help="Instead of --month: from (YYYY-MM-DD or ISO time).")
@click.option("--until", metavar="WHEN", help="With --since: up to, excluded [now].")
@click.option("--node", metavar="CODE", help="A subtree [the token's scope].")
@options.server_url
@options.api_token
@options.json_output
def scores(  # noqa: PLR0913 - one parameter per option
    by: str,
    month: str | None,
    since: str | None,
    until: str | None,
    node: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """The league table (排名): 10-point scores, 满意率 and 差评率, ranked.

    Lines with fewer reviews than the rule's minimum are listed unranked (-) after the ranked.
    Example: `termfleet reviews scores --by window --month 2026-03 --node 440117`
    """
    params = _query(
        [("by", by), ("month", month), ("since", since), ("until", until), ("node", node)]
    )
    table = run(server, token, lambda api: api.request("GET", SCORES, params=params))
    if as_json:
        click.echo(json.dumps(table, ensure_ascii=False, indent=2))
        return
    rows = [_score_row(item, item["rank"], item["name"]) for item in table["items"]]
    rows.append(_score_row(table["overall"], None, "TOTAL"))
    print_rows(rows, SCORE_COLUMNS, as_json=False)
    where = f"node {table['node']}" if table["node"] else "the whole tree"
    period = table["month"] or f"{table['since']} to {table['until']}"
    unassigned = f"; {table['unassigned']} in no line" if table["unassigned"] else ""
    click.echo(f"{period}, {where}, by {table['by']}{unassigned}", err=True)


def _score_row(item: dict[str, Any], rank: int | None, name: str) -> dict[str, Any]:
    return {
        "rank": rank,
        "name": name,
        "score": None if item["score"] is None else f"{item['score']:.2f}",
        "reviews": item["reviews"],
        "满意率": _percent(item["satisfaction_rate"]),
        "差评率": _percent(item["bad_rate"]),
    }


def _percent(share: float | None) -> str | None:
    return None if share is None else f"{share:.1%}"


# --- policies -----------------------------------------------------------------------------------


@reviews.group("policy")
def policy() -> None:
    """Review policies: a node's work-order deadline and its days to rate a case.

    A policy holds for the node's subtree unless a deeper node has its own; without any, 5
    working days and 7 natural days. Setting and removing needs reviews.write.
    """


@policy.command("ls")
@options.server_url
@options.api_token
@options.json_output
def policy_ls(server: str, token: str | None, as_json: bool) -> None:
    """The policies of the scope's nodes and of the nodes above it."""
    items = run(server, token, lambda api: api.every_page(POLICIES))
    print_rows(items, POLICY_COLUMNS, as_json=as_json)


@policy.command("set")
@click.argument("node", metavar="NODE")
@click.option(
    "--deadline-days",
    type=int,
    required=True,
    help="Working days a bad review's work order is due in (1 to 60).",
)
@click.option(
    "--rate-within-days",
    type=int,
    required=True,
    help="Natural days to rate a case before it counts as 基本满意 (1 to 60).",
)
@options.server_url
@options.api_token
@options.json_output
def policy_set(  # noqa: PLR0913 - one parameter per option
    node: str,
    deadline_days: int,
    rate_within_days: int,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Set NODE's policy (both values). Audited. Needs reviews.write."""
    body = {"deadline_working_days": deadline_days, "rate_within_days": rate_within_days}
    path = f"{POLICIES}/{quote(node, safe='')}"
    view = run(server, token, lambda api: api.request("PUT", path, body=body))
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"node {view['node']}: work orders due in {view['deadline_working_days']} working days,"
        f" cases rated within {view['rate_within_days']} days"
    )


@policy.command("unset")
@click.argument("node", metavar="NODE")
@options.server_url
@options.api_token
def policy_unset(node: str, server: str, token: str | None) -> None:
    """Remove NODE's own policy: its subtree follows the nearest node above. Needs reviews.write."""
    path = f"{POLICIES}/{quote(node, safe='')}"
    run(server, token, lambda api: api.request("DELETE", path))
    click.echo(f"node {node}: its own review policy removed")
