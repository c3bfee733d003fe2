"""``termfleet cases``: tell a window's review pad a case has ended, and see where a case stands.

What a business system does over the API (``/api/v1/cases``, docs/cases.md), for operators and
scripts: ``notify`` records a case and the pad prompts the citizen; ``show`` prints the case with
its notice, rating period and rating. Needs --server and a token (``reviews.write`` to notify,
``reviews.read`` to show).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from . import options
from .api_calls import run

CASES = "/api/v1/cases"


@click.group()
def cases() -> None:
    """Cases (办件) ended at windows, whose review pads prompt for a 好差评 rating.

    A case not rated within the rating period (Guangdong: 7 natural days) counts as 基本满意
    (basic).
    """


@cases.command("notify")
@click.option(
    "--case", "case_number", required=True, metavar="N", help="The case number (办件编号)."
)
@click.option("--device", "device_id", metavar="ID", help="The review pad, by device id.")
@click.option("--site", metavar="CODE", help="With --window: the review pad at that window.")
@click.option("--window", metavar="NO", help="A window number of --site.")
@click.option("--item", "item_code", required=True, metavar="CODE", help="The service item's code.")
@click.option("--item-name", default="", help="The item's name, shown on the pad.")
@click.option("--staff", "staff_id", default="", metavar="ID", help="Who handled the case.")
@click.option("--department", default="", metavar="CODE", help="The unit that handled it.")
@click.option("--ended-at", metavar="TIME", help="RFC 3339 with an offset [now].")
@options.server_url
@options.api_token
@options.json_output
def notify(  # noqa: PLR0913 - one parameter per option
    case_number: str,
    device_id: str | None,
    site: str | None,
    window: str | None,
    item_code: str,
    item_name: str,
    staff_id: str,
    department: str,
    ended_at: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Record that a case has ended: its window's review pad prompts the citizen to rate it.

    Name the pad by --device, or by --site and --window. Sending the same case again with the
    same details is harmless; with other details it is refused.
    """
    if (device_id is None) == (site is None and window is None):
        msg = "name the review pad by --device, or by --site and --window"
        raise click.UsageError(msg)
    if device_id is None and (site is None or window is None):
        msg = "--site and --window go together"
        raise click.UsageError(msg)
    body: dict[str, Any] = {
        "case_number": case_number,
        "item_code": item_code,
        "item_name": item_name,
        "staff_id": staff_id,
        "department": department,
    }
    pad = {"device_id": device_id, "site": site, "window": window, "ended_at": ended_at}
    body |= {key: value for key, value in pad.items() if value is not None}
    view = run(server, token, lambda api: api.request("POST", CASES, body=body))
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    sent = "notice sent" if view["notified"] else "notice waits for the broker connection"
    click.echo(
        f"case {view['case_number']}: review pad {view['device_id']}{_where(view)};"
        f" rate by {view['rate_by']}; {sent}"
    )


@cases.command("show")
@click.argument("case_number", metavar="N")
@options.server_url
@options.api_token
@options.json_output
def show(case_number: str, server: str, token: str | None, as_json: bool) -> None:
    """One case: its pad, rating period, notice, and its rating (the pad's or the default)."""
    path = f"{CASES}/{quote(case_number, safe='')}"
    view = run(server, token, lambda api: api.request("GET", path))
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    for line in describe(view):
        click.echo(line)


def describe(view: dict[str, Any]) -> list[str]:
    """A case as lines for people."""
    item = " ".join(part for part in (view["item_code"], view["item_name"]) if part)
    who = (("department", view["department"]), ("staff", view["staff_id"]))
    handled = ", ".join(f"{label} {value}" for label, value in who if value)
    notice = view["notified_at"]
    return [
        f"case {view['case_number']}: {_standing(view)}",
        f"  review pad {view['device_id']}{_where(view)}",
        f"  item {item}" + (f"; {handled}" if handled else ""),
        f"  ended {view['ended_at']}, rate by {view['rate_by']}",
        f"  notice sent {notice}" if notice else "  notice not sent yet",
    ]


def _standing(view: dict[str, Any]) -> str:
    review = view["review"]
    status = view["status"]
    if review is None:
        return "awaiting its rating" if status == "awaiting_rating" else "overdue (default due)"
    voided = ", voided on appeal" if review["voided"] else ""
    if status == "defaulted":
        return f"{review['rating']} by default (not rated in time), {review['rated_at']}{voided}"
    return f"rated {review['rating']} at {review['rated_at']}{voided}"


def _where(view: dict[str, Any]) -> str:
    if view["site"] is None:
        return ""
    return f" at site {view['site']}, window {view['window']}"
