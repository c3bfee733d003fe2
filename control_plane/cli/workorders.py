"""``termfleet workorders``: bad-review work orders (差评工单), listed, shown, moved on, summed up.

Every command goes through the control plane's API (``/api/v1/workorders``, --server, --token);
the state machine there refuses what may not be done, and its refusal code and message are what
the command prints (docs/workorders.md).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from control_plane.reviews.workorders import Action, CallOutcome, State

from . import options
from .api_calls import run
from .output import print_rows

WORKORDERS = "/api/v1/workorders"
STATES = [state.value for state in State]
ACTIONS = [action.value for action in Action]
OUTCOMES = [outcome.value for outcome in CallOutcome]
LIST_COLUMNS = ["id", "case", "site", "department", "rating", "state", "due", "overdue"]
DAY = click.DateTime(formats=["%Y-%m-%d"])


@click.group()
def workorders() -> None:
    """Bad-review work orders (差评整改工单): call back, verify, fix, feed back, review.

    Every 不满意 or 非常不满意 rating opens one for the unit that handled the case, due in
    working days. Needs --server and a token: reading needs reviews.read; the unit's actions
    need workorders.handle, the supervisor's (approve, send_back, uphold_appeal,
    reject_appeal) workorders.review.
    """


@workorders.command("ls")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES), help="Repeatable.")
@click.option("--site", metavar="CODE", help="Only orders at this site.")
@click.option("--department", metavar="CODE", help="Only orders of this department.")
@click.option("--open", "open_only", is_flag=True, help="Only orders not yet final.")
@click.option("--overdue", is_flag=True, help="Only orders past their due (or fix-by) date.")
@options.server_url
@options.api_token
@options.json_output
def ls(  # noqa: PLR0913 - one parameter per option
    states: tuple[str, ...],
    site: str | None,
    department: str | None,
    open_only: bool,
    overdue: bool,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """List the work orders in the token's scope, oldest first."""
    asked = {
        "state": ",".join(states),
        "site": site,
        "department": department,
        "open": "true" if open_only else None,
        "overdue": "true" if overdue else None,
    }
    params = {name: value for name, value in asked.items() if value}
    views = run(server, token, lambda api: api.every_page(WORKORDERS, params))
    if as_json:
        print_rows(views, [], as_json=True)
        return
    print_rows([_row(view) for view in views], LIST_COLUMNS, as_json=False)


def _row(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": view["id"],
        "case": view["case_number"],
        "site": view["site"],
        "department": view["department"] or None,
        "rating": view["rating"],
        "state": view["state"],
        "due": view["due"],
        "overdue": "overdue" if view["overdue"] else "",
    }


@workorders.command("show")
@click.argument("order_id", metavar="ID", type=click.IntRange(min=1))
@options.server_url
@options.api_token
@options.json_output
def show(order_id: int, server: str, token: str | None, as_json: bool) -> None:
    """One work order: its review, its history, and what the token may do next."""
    view = run(server, token, lambda api: api.request("GET", f"{WORKORDERS}/{order_id}"))
    _print(view, as_json=as_json)


@workorders.command("transition")
@click.argument("order_id", metavar="ID", type=click.IntRange(min=1))
@click.argument("action", metavar="ACTION", type=click.Choice(ACTIONS))
@click.option("--note", required=True, help="What was done, or why; kept in the history.")
@click.option("--outcome", type=click.Choice(OUTCOMES), help="call_back: was the citizen reached?")
@click.option(
    "--fix-by",
    type=DAY,
    metavar="DAY",
    help="set_deadline (限期整改): the day to fix by, YYYY-MM-DD.",
)
@options.server_url
@options.api_token
@options.json_output
def transition(  # noqa: PLR0913 - one parameter per option
    order_id: int,
    action: str,
    note: str,
    outcome: str | None,
    fix_by: datetime | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Take ACTION on a work order as the token; the server refuses what the state does not allow.

    The unit's actions: call_back (with --outcome), verify, fix_now, set_deadline (with
    --fix-by), mark_fixed, explain, give_feedback, appeal. The supervisor's: approve, send_back,
    uphold_appeal, reject_appeal.
    """
    body: dict[str, object] = {"action": action, "note": note}
    if outcome is not None:
        body["outcome"] = outcome
    if fix_by is not None:
        body["fix_by"] = fix_by.date().isoformat()
    path = f"{WORKORDERS}/{order_id}/transitions"
    view = run(server, token, lambda api: api.request("POST", path, body=body))
    _print(view, as_json=as_json)


@workorders.command("summary")
@click.option("--site", metavar="CODE", help="Only orders at this site.")
@click.option("--department", metavar="CODE", help="Only orders of this department.")
@click.option("--since", type=DAY, metavar="DAY", help="Opened on or after this day, YYYY-MM-DD.")
@click.option("--until", type=DAY, metavar="DAY", help="Opened on or before this day, YYYY-MM-DD.")
@options.server_url
@options.api_token
@options.json_output
def summary(  # noqa: PLR0913 - one parameter per option
    site: str | None,
    department: str | None,
    since: datetime | None,
    until: datetime | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Figures of the work orders in scope: open, overdue, call-back rate (回访率), in time."""
    asked = {
        "site": site,
        "department": department,
        "since": since.date().isoformat() if since else None,
        "until": until.date().isoformat() if until else None,
    }
    params = {name: value for name, value in asked.items() if value}
    figures = run(
        server, token, lambda api: api.request("GET", f"{WORKORDERS}/summary", params=params)
    )
    if as_json:
        click.echo(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    for line in summary_lines(figures):
        click.echo(line)


def summary_lines(figures: dict[str, Any]) -> list[str]:
    rate = figures["callback_rate"]
    shown_rate = "-" if rate is None else f"{rate:.1%}"
    called_back = f"{figures['called_back']} of {figures['callback_counted']}"
    states = ", ".join(f"{state} {count}" for state, count in figures["by_state"].items() if count)
    return [
        f"work orders: {figures['total']} ({states or 'none'})",
        f"open: {figures['open']}, overdue on {figures['today']}: {figures['overdue']}",
        f"call-back rate (回访率): {shown_rate} ({called_back})",
        f"closed: {figures['closed']}, within the deadline: {figures['closed_within_deadline']}",
    ]


def _print(view: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    for line in detail_lines(view):
        click.echo(line)


def detail_lines(view: dict[str, Any]) -> list[str]:
    """An order as people read it: where it stands, the rating, the history, what comes next."""
    review = view["review"]
    late = ", overdue" if view["overdue"] else ""
    fix_by = f", fix by {view['fix_by']}" if view["fix_by"] else ""
    where = ", ".join(
        f"{key} {view[key] or '-'}" for key in ("site", "department", "window", "staff")
    )
    item = " ".join(part for part in (review["item_code"], review["item_name"]) if part)
    lines = [
        f"work order {view['id']}: {view['state']}, due {view['due']}{fix_by}{late}",
        f"  case {view['case_number']} at {where}",
        f"  rated {review['rating']} on {review['rated_at']}" + (f": {item}" if item else ""),
    ]
    if review["comment"]:
        lines.append(f"  comment: {review['comment']}")
    if review["voided_at"]:
        lines.append(f"  rating voided on {review['voided_at']} (申诉成立)")
    lines.append("history:" if view["history"] else "history: none yet")
    for step in view["history"]:
        extra = step["outcome"] or step["fix_by"]
        lines.append(
            f"  {step['at']}  {step['action']}  {step['from_state']} → {step['to_state']}"
            f"  by {step['actor']} ({step['role']})" + (f" [{extra}]" if extra else "")
        )
        lines.append(f"    {step['note']}")
    allowed = ", ".join(view["allowed_actions"]) or "nothing"
    lines.append(f"next, this token may: {allowed}")
    return lines
