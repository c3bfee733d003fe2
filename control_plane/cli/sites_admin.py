"""``termfleet sites add/set/rm``: create, change and delete sites, through the API (audited).

Hours and holidays are typed as the import writes them (``site_hours``); the API checks them
with the presence's own parser and names the field it refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from control_plane.auth import Permission

from . import options, site_output
from .admin import LEVELS, announce, api_path, deleted, needs, print_json
from .api_calls import ApiSession, run
from .devices_calls import api_options, call
from .site_hours import Hours, HoursError, holiday_changes, merged_holidays, read_hours

F = TypeVar("F", bound=Callable[..., Any])
HOURS_HELP = (
    "Weekly hours as the import writes them: 'mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00'"
    " or '24/7'; or JSON, inline or in a .json file: a string of hours, or an object with"
    " hours and holidays."
)
HOLIDAY_HELP = (
    "DAYS=SPANS sets days that differ from the week (2026-10-01..2026-10-08=closed,"
    " 2026-09-27=08:30-17:30); DAYS- removes them. Repeat for several."
)


def site_fields(command: F) -> F:
    """The options ``add`` and ``set`` share, beyond the site's name, level and node."""
    command = click.option("--holiday", "holidays", multiple=True, metavar="DAYS=SPANS",
                           help=HOLIDAY_HELP)(command)  # fmt: skip
    return click.option("--address", metavar="TEXT", help="Its street address.")(command)


def _hours(value: str | None) -> Hours:
    try:
        return read_hours(value) if value is not None else Hours()
    except HoursError as exc:
        raise click.BadParameter(str(exc), param_hint="'--hours'") from None


def _holidays(base: object, entries: tuple[str, ...]) -> dict[str, str]:
    try:
        return merged_holidays(base, holiday_changes(entries))
    except HoursError as exc:
        raise click.BadParameter(str(exc), param_hint="'--holiday'") from None


def _print_site(site: dict[str, Any], done: str, *, as_json: bool) -> None:
    if as_json:
        print_json(site)
        return
    for line in site_output.site_lines(site):
        click.echo(line)
    announce(f"{done} site {site['code']}", as_json=as_json)


@click.command("add", epilog=needs(Permission.SITES_WRITE))
@click.argument("code")
@click.option("--name", required=True, help="Its name (从化区政务服务中心).")
@click.option("--level", type=click.Choice(LEVELS), required=True, help="Not above its node's.")
@click.option("--node", metavar="CODE", required=True, help="The node it hangs off.")
@click.option("--hours", metavar="HOURS|JSON|FILE.json", required=True, help=HOURS_HELP)
@site_fields
@api_options
def add(  # noqa: PLR0913 - one parameter per argument and option
    code: str,
    name: str,
    level: str,
    node: str,
    hours: str,
    address: str | None,
    holidays: tuple[str, ...],
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Add a site CODE (a hall or station) at a node in the token's scope."""
    given = _hours(hours)
    body: dict[str, object] = {"code": code, "name": name, "level": level, "node": node,
                               "hours": given.hours}  # fmt: skip
    if address is not None:
        body["address"] = address
    if holidays:
        body["holidays"] = _holidays(given.holidays, holidays)
    elif given.holidays is not None:
        body["holidays"] = given.holidays
    site = call(server, token, "POST", api_path("sites"), body=body)
    _print_site(site, "added", as_json=as_json)


@click.command("set", epilog=needs(Permission.SITES_WRITE, "moving it, the new --node too"))
@click.argument("code")
@click.option("--name", help="A new name.")
@click.option("--level", type=click.Choice(LEVELS), help="Not above its node's.")
@click.option("--node", metavar="CODE", help="Move it to this node.")
@click.option("--hours", metavar="HOURS|JSON|FILE.json", help=HOURS_HELP)
@site_fields
@api_options
def set_(  # noqa: PLR0913 - one parameter per argument and option
    code: str,
    name: str | None,
    level: str | None,
    node: str | None,
    hours: str | None,
    address: str | None,
    holidays: tuple[str, ...],
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Change a site's name, level, node, hours, holidays or address; the rest stays.

    --holiday changes the site's holidays day by day (read first, then written); holidays in
    --hours JSON replace them all.
    """
    given = _hours(hours)
    fields = {"name": name, "level": level, "node": node, "address": address,
              "hours": given.hours, "holidays": given.holidays}  # fmt: skip
    changes = {field: value for field, value in fields.items() if value is not None}
    if holidays:
        changes["holidays"] = _holidays(given.holidays, holidays)  # checks before any request

    async def work(api: ApiSession) -> dict[str, Any]:
        if holidays and given.holidays is None:
            current = await api.request("GET", api_path("sites", code))
            changes["holidays"] = _holidays(current["holidays"], holidays)
        site: dict[str, Any] = await api.request("PATCH", api_path("sites", code), body=changes)
        return site

    site = run(server, options.require_token(token, server), work)
    _print_site(site, "updated", as_json=as_json)


@click.command("rm", epilog=needs(Permission.SITES_WRITE))
@click.argument("code")
@click.confirmation_option(prompt="Deleting is final. Delete this site and its windows?")
@options.server_url
@options.api_token
def rm(code: str, server: str, token: str | None) -> None:
    """Delete a site and its windows, once no device or staff is placed there (asks first)."""
    call(server, token, "DELETE", api_path("sites", code))
    deleted(f"site {code} and its windows")


COMMANDS = (add, set_, rm)
