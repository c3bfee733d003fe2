"""``termfleet tokens``: API tokens, issued and revoked on the database, or through the API.

Without ``--server`` the commands work on the database (``--database-url``) as whoever can open
it: that is how the first token comes to be. With ``--server URL`` they go through the REST API
as the token in TERMFLEET_TOKEN, which may only act within its own scope and permissions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import click

from . import options, tokens_api
from .db import run_with_database
from .options import database_url
from .output import print_rows

T = TypeVar("T")
# Spelled out rather than read from control_plane.auth, so that `--help` imports nothing more;
# tests/test_tokens_cli.py checks that they agree.
ROLES = ("admin", "operator", "technician", "auditor")
COLUMNS = ["name", "prefix", "role", "scope", "state", "created_at", "expires_at", "last_used_at"]

through_api = click.option(
    "--server",
    metavar="URL",
    help="Go through this control plane's REST API as the token in TERMFLEET_TOKEN (or"
    " --token), within its scope, instead of the database.",
)


@click.group()
def tokens() -> None:
    """API tokens: a role (admin, operator, technician, auditor) for a jurisdiction subtree.

    These commands work on the database directly, like `termfleet db` and `sites import`, so
    the first token needs nothing but access to it. With --server they go through the REST
    API instead, as an admin token that may only issue and revoke within its own scope; a
    token scoped there issues tokens for its own scope when --scope is not given. The REST API
    takes a token as `Authorization: Bearer <token>`; `termfleet devices` reads it from
    TERMFLEET_TOKEN. What each role may do: docs/api-auth.md.
    """


@tokens.command("create")
@click.option("--name", required=True, help="Unique among unrevoked tokens: who or what uses it.")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option(
    "--scope",
    metavar="CODE",
    help="The 行政区划 code of the subtree it may see and act on [the whole tree].",
)
@click.option("--expires-in", type=click.IntRange(min=1), metavar="DAYS", help="[never]")
@click.option("--replace", is_flag=True, help="Revoke the unrevoked token of that name first.")
@database_url
@through_api
@options.api_token
@options.json_output
def create(  # noqa: PLR0913 - one parameter per option
    name: str,
    role: str,
    scope: str | None,
    expires_in: int | None,
    replace: bool,
    database_url: str,
    server: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Create a token and print it, once: the database keeps only its hash."""
    if server is not None:
        body: dict[str, object] = {"name": name, "role": role, "replace": replace}
        if scope is not None:
            body["scope"] = scope
        if expires_in is not None:
            body["expires_in_days"] = expires_in
        view = tokens_api.create(server, token, body)
        secret = view.pop("token")
    else:
        secret, view = _create_in_database(name, role, scope, expires_in, replace, database_url)
    if as_json:
        click.echo(json.dumps({"token": secret, **view}, indent=2))
        return
    click.echo(secret)
    where = f"scope {view['scope']}" if view["scope"] else "the whole tree"
    click.echo(
        f"created token {view['name']!r} ({view['role']}, {where}, shown as"
        f" {view['prefix']}…); store it now: it cannot be shown again",
        err=True,
    )


def _create_in_database(  # noqa: PLR0913 - one parameter per option
    name: str,
    role: str,
    scope: str | None,
    expires_in: int | None,
    replace: bool,
    database_url: str,
) -> tuple[str, dict[str, object]]:
    from control_plane.audit import local_actor
    from control_plane.auth import Role
    from control_plane.tokens import issue

    work = functools.partial(
        issue,
        name,
        Role(role),
        actor=local_actor(),
        scope_code=scope,
        expires_in=timedelta(days=expires_in) if expires_in else None,
        replace=replace,
    )
    issued = _run(database_url, work)
    return issued.secret, issued.info.to_dict()


@tokens.command("list")
@database_url
@through_api
@options.api_token
@options.json_output
def list_(database_url: str, server: str | None, token: str | None, as_json: bool) -> None:
    """List tokens, revoked and expired ones too; never their secrets."""
    if server is not None:
        print_rows(tokens_api.listed(server, token), COLUMNS, as_json=as_json)
        return
    from control_plane.tokens import list_tokens

    infos = _run(database_url, list_tokens)
    now = datetime.now(UTC)
    print_rows([info.to_dict(now) for info in infos], COLUMNS, as_json=as_json)


@tokens.command("revoke")
@click.argument("which", metavar="NAME|PREFIX")
@database_url
@through_api
@options.api_token
@options.json_output
def revoke(
    which: str, database_url: str, server: str | None, token: str | None, as_json: bool
) -> None:
    """Revoke a token, at once, by its name or listed prefix (or the token itself)."""
    if server is not None:
        view = tokens_api.revoke(server, token, which)
    else:
        from control_plane.audit import local_actor
        from control_plane.tokens import revoke as revoke_token

        work = functools.partial(revoke_token, which, actor=local_actor())
        view = _run(database_url, work).to_dict(datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(f"revoked token {view['name']!r} ({view['prefix']}…)")


def _run(url: str, work: Callable[[], Awaitable[T]]) -> T:
    from control_plane.tokens import TokenError

    try:
        return run_with_database(url, work)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
