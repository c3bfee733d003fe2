"""``termfleet tokens``: API tokens, issued and revoked on the control plane's database."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import click

from . import options
from .db import run_with_database
from .options import database_url
from .output import print_rows

T = TypeVar("T")
# Spelled out rather than read from control_plane.auth, so that `--help` imports nothing more;
# tests/test_tokens_cli.py checks that they agree.
ROLES = ("admin", "operator", "technician", "auditor")
COLUMNS = ["name", "prefix", "role", "scope", "state", "created_at", "expires_at", "last_used_at"]


@click.group()
def tokens() -> None:
    """API tokens: a role (admin, operator, technician, auditor) for a jurisdiction subtree.

    These commands work on the database directly, like `termfleet db` and `sites import`, so
    the first token needs nothing but access to it. The REST API takes a token as
    `Authorization: Bearer <token>`; `termfleet devices` reads it from TERMFLEET_TOKEN. What
    each role may do: docs/api-auth.md.
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
@options.json_output
def create(  # noqa: PLR0913 - one parameter per option
    name: str,
    role: str,
    scope: str | None,
    expires_in: int | None,
    replace: bool,
    database_url: str,
    as_json: bool,
) -> None:
    """Create a token and print it, once: the database keeps only its hash."""
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
    if as_json:
        click.echo(json.dumps({"token": issued.secret, **issued.info.to_dict()}, indent=2))
        return
    click.echo(issued.secret)
    where = f"scope {issued.info.scope_code}" if issued.info.scope_code else "the whole tree"
    click.echo(
        f"created token {issued.info.name!r} ({issued.info.role}, {where}, shown as"
        f" {issued.info.prefix}…); store it now: it cannot be shown again",
        err=True,
    )


@tokens.command("list")
@database_url
@options.json_output
def list_(database_url: str, as_json: bool) -> None:
    """List tokens, revoked and expired ones too; never their secrets."""
    from control_plane.tokens import list_tokens

    infos = _run(database_url, list_tokens)
    now = datetime.now(UTC)
    print_rows([info.to_dict(now) for info in infos], COLUMNS, as_json=as_json)


@tokens.command("revoke")
@click.argument("which", metavar="NAME|PREFIX")
@database_url
@options.json_output
def revoke(which: str, database_url: str, as_json: bool) -> None:
    """Revoke a token, at once, by its name or listed prefix (or the token itself)."""
    from control_plane.audit import local_actor
    from control_plane.tokens import revoke as revoke_token

    info = _run(database_url, functools.partial(revoke_token, which, actor=local_actor()))
    if as_json:
        click.echo(json.dumps(info.to_dict(datetime.now(UTC)), indent=2))
        return
    click.echo(f"revoked token {info.name!r} ({info.prefix}…)")


def _run(url: str, work: Callable[[], Awaitable[T]]) -> T:
    from control_plane.tokens import TokenError

    try:
        return run_with_database(url, work)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
