"""``termfleet windows``: a site's service windows (窗口), set and deleted through the API.

``termfleet sites show SITE`` lists them with the departments they serve, so there is no
``windows ls``.
"""

from __future__ import annotations

from typing import Any

import click

from control_plane.auth import Permission

from . import options
from .admin import announce, api_path, deleted, needs, print_object
from .api_calls import ApiSession, run
from .devices_calls import api_options, call

COLUMNS = ["site", "number", "name", "departments"]


@click.group()
def windows() -> None:
    """A site's service windows and the departments they serve; `sites show` lists them."""


@windows.command("set", epilog=needs(Permission.SITES_WRITE))
@click.argument("site")
@click.argument("number")
@click.option("--name", help="Its name (综合窗口).")
@click.option(
    "--department",
    "departments",
    multiple=True,
    metavar="CODE",
    help="A department it serves; repeat for several. The list replaces the one it had.",
)
@click.option("--no-departments", is_flag=True, help="It serves no department.")
@api_options
def set_(  # noqa: PLR0913 - one parameter per argument and option
    site: str,
    number: str,
    name: str | None,
    departments: tuple[str, ...],
    no_departments: bool,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Create window NUMBER of SITE, or change its name or departments; the rest stays."""
    if departments and no_departments:
        msg = "give --department CODE..., or --no-departments, not both"
        raise click.UsageError(msg)
    body: dict[str, object] = {} if name is None else {"name": name}
    if departments or no_departments:
        body["departments"] = list(departments)

    async def work(api: ApiSession) -> tuple[str, dict[str, Any]]:
        shown = await api.request("GET", api_path("sites", site))
        exists = any(window["number"] == number for window in shown["windows"])
        method = "PATCH" if exists else "POST"
        path = api_path("sites", site, "windows", number)
        return ("updated" if exists else "added"), await api.request(method, path, body=body)

    done, window = run(server, options.require_token(token, server), work)
    row = {"site": site, "number": window["number"], "name": window["name"] or "-",
           "departments": ", ".join(window["departments"]) or "-"}  # fmt: skip
    print_object(window, COLUMNS, as_json=as_json, row=row)
    announce(f"{done} window {number} of site {site}", as_json=as_json)


@windows.command("rm", epilog=needs(Permission.SITES_WRITE))
@click.argument("site")
@click.argument("number")
@click.confirmation_option(prompt="Deleting is final. Delete this window?")
@options.server_url
@options.api_token
def rm(site: str, number: str, server: str, token: str | None) -> None:
    """Delete window NUMBER of SITE, once no device or staff is bound to it (asks first)."""
    call(server, token, "DELETE", api_path("sites", site, "windows", number))
    deleted(f"window {number} of site {site}")
