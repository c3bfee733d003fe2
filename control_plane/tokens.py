"""API tokens in the database: issue, list and revoke them, and authenticate a request's token.

The token itself is shown once, when issued; the database keeps its hash (``auth.secret_hash``).
At most one unrevoked token carries a name, so a name identifies a token for ``revoke``. Issuing
and revoking write the audit log in the same transaction.

``termfleet tokens`` works here as whoever can open the database; the REST API works as a token,
through ``token_admin``, which keeps it to its subtree and its own permissions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from . import audit
from .auth import (
    DISPLAY_PREFIX_LENGTH,
    Actor,
    AuthenticationError,
    PermissionDeniedError,
    Principal,
    Refusal,
    Role,
    check_usable,
    display_prefix,
    is_well_formed,
    new_secret,
    secret_hash,
    token_state,
)
from .db.models import ApiToken
from .sites import UnknownNodeError, node, nodes_under

LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token, not on every request."""
MAX_NAME_LENGTH = 64
_COLUMNS = (
    "id",
    "name",
    "role",
    "prefix",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "scope__code",
    "scope__path",
)


class TokenError(ValueError):
    """A token cannot be issued or revoked as asked; the message says why."""


class TokenNameError(TokenError):
    """The name is empty, too long or not printable."""


class UnknownScopeError(TokenError):
    """No node has the scope's code."""


class TokenNameTakenError(TokenError):
    """An unrevoked token has that name already."""


class UnknownTokenError(TokenError):
    """No token (that the asker may see) is the one named."""


class TokenAlreadyRevokedError(TokenError):
    """The token named was revoked before."""


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of a token: everything but the secret and its hash."""

    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    scope_code: str | None = None
    scope_path: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TokenInfo:
        return cls(
            id=row["id"],
            name=row["name"],
            role=row["role"],
            prefix=row["prefix"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
            scope_code=row["scope__code"],
            scope_path=row["scope__path"],
        )

    def state(self, now: datetime) -> str:
        return token_state(self.expires_at, self.revoked_at, now)

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        view: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "role": self.role,
            "scope": self.scope_code,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }
        if now is not None:
            view["state"] = self.state(now)
        return view

    def audit_view(self) -> dict[str, Any]:
        """The token as the audit log records it: what identifies it, not when it was last used."""
        view = self.to_dict()
        del view["last_used_at"]
        return view


@dataclass(frozen=True)
class IssuedToken:
    info: TokenInfo
    secret: str
    """The token itself: shown to its owner once, stored nowhere."""


async def issue(  # noqa: PLR0913 - one parameter per property of a token
    name: str,
    role: Role,
    *,
    actor: Actor,
    scope_code: str | None = None,
    expires_in: timedelta | None = None,
    replace: bool = False,
    now: datetime | None = None,
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    seen_by: Principal | None = None,
) -> IssuedToken:
    """Issue a token; with ``replace``, first revoke the unrevoked token of that name (rotation).

    ``seen_by``: the token asking, when one does; a token of that name outside its scope can
    then neither be replaced nor shown (the name is just taken).
    """
    name = _check_name(name)
    now = now or datetime.now(UTC)
    async with in_transaction() as connection:
        scope = None
        if scope_code is not None:
            try:
                scope = await node(scope_code)
            except UnknownNodeError as exc:
                raise UnknownScopeError(str(exc)) from None
        existing = await _infos(connection, name=name, revoked_at__isnull=True)
        if seen_by is not None and any(not seen_by.sees(info.scope_path) for info in existing):
            msg = f"the name {name!r} is taken: choose another one"
            raise TokenNameTakenError(msg)
        if existing and not replace:
            msg = f"a token named {name!r} exists ({existing[0].prefix}…): revoke it or replace it"
            raise TokenNameTakenError(msg)
        for old in existing:
            await _revoke(connection, old, actor, now, note="replaced")
        secret = new_secret(random_bytes)
        row = await ApiToken.create(
            name=name,
            role=role.value,
            scope=scope,
            secret_hash=secret_hash(secret),
            prefix=display_prefix(secret),
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
            using_db=connection,
        )
        (info,) = await _infos(connection, id=row.id)
        await audit.record(
            "token.create",
            actor,
            "token",
            info.id,
            after=info.audit_view(),
            scope_path=info.scope_path,
            at=now,
            using_db=connection,
        )
    return IssuedToken(info, secret)


async def list_tokens() -> list[TokenInfo]:
    """Every token, revoked and expired ones too, oldest first."""
    async with in_transaction() as connection:
        return await _infos(connection)


async def listed(
    *, within: str | None = None, after_id: int | None = None, limit: int | None = None
) -> list[TokenInfo]:
    """Tokens by id, after ``after_id``; ``within``: only those scoped to that subtree."""
    query = ApiToken.all()
    if within is not None:
        query = query.filter(scope_id__in=Subquery(nodes_under(within).values("id")))
    if after_id is not None:
        query = query.filter(id__gt=after_id)
    query = query.order_by("id")
    if limit is not None:
        query = query.limit(limit)
    return [TokenInfo.from_row(row) for row in await query.values(*_COLUMNS)]


async def revoke_id(
    token_id: int,
    *,
    actor: Actor,
    now: datetime | None = None,
    seen_by: Principal | None = None,
) -> TokenInfo:
    """Revoke the token with this id, as the API names tokens.

    ``seen_by``: the token asking, when one does; a token outside its scope is then unknown.
    """
    now = now or datetime.now(UTC)
    async with in_transaction() as connection:
        found = await _infos(connection, id=token_id)
        if not found or (seen_by is not None and not seen_by.sees(found[0].scope_path)):
            msg = f"no token has the id {token_id}"
            raise UnknownTokenError(msg)
        if found[0].revoked_at is not None:
            msg = f"token {found[0].name!r} ({found[0].prefix}…) is already revoked"
            raise TokenAlreadyRevokedError(msg)
        return await _revoke(connection, found[0], actor, now)


async def revoke(which: str, *, actor: Actor, now: datetime | None = None) -> TokenInfo:
    """Revoke the unrevoked token named ``which``, or shown with that prefix, or that token itself.

    A prefix that several tokens share is refused, naming them.
    """
    now = now or datetime.now(UTC)
    async with in_transaction() as connection:
        found = await _matching(connection, which, unrevoked=True)
        if not found:
            raise TokenError(await _why_not_found(connection, which))
        if len(found) > 1:
            names = ", ".join(repr(info.name) for info in found)
            msg = f"{len(found)} tokens match {which!r} ({names}): give the name instead"
            raise TokenError(msg)
        return await _revoke(connection, found[0], actor, now)


async def authenticate(secret: str, now: datetime) -> Principal:
    """The principal of a well-formed token, or why it may not be used.

    Records ``last_used_at`` when the stored one is older than ``LAST_USED_RESOLUTION``: one
    write per token and minute at most, whatever the request rate, and on every replica alike.
    """
    rows = await ApiToken.filter(secret_hash=secret_hash(secret)).values(*_COLUMNS)
    if not rows:
        msg = "unknown token: it was never issued here, or the database was replaced"
        raise AuthenticationError(Refusal.UNKNOWN_TOKEN, msg)
    info = TokenInfo.from_row(rows[0])
    check_usable(info.prefix, info.expires_at, info.revoked_at, now)
    try:
        role = Role(info.role)
    except ValueError:
        msg = f"token {info.prefix}… has a role this termfleet does not know: {info.role!r}"
        raise PermissionDeniedError(Refusal.FORBIDDEN, msg) from None
    if info.last_used_at is None or now - info.last_used_at >= LAST_USED_RESOLUTION:
        await ApiToken.filter(id=info.id).update(last_used_at=now)
    return Principal(info.id, info.name, role, info.scope_path, info.scope_code)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        msg = f"a token's name is 1 to {MAX_NAME_LENGTH} printable characters, not {name!r}"
        raise TokenNameError(msg)
    return name


async def _infos(connection: BaseDBAsyncClient, **where: object) -> list[TokenInfo]:
    query = ApiToken.filter(**where).using_db(connection).order_by("id")
    return [TokenInfo.from_row(row) for row in await query.values(*_COLUMNS)]


async def _matching(
    connection: BaseDBAsyncClient, which: str, *, unrevoked: bool
) -> list[TokenInfo]:
    """The tokens ``which`` names: by name, else by listed prefix, else as the token itself."""
    where: dict[str, object] = {"revoked_at__isnull": True} if unrevoked else {}
    if is_well_formed(which):
        return await _infos(connection, secret_hash=secret_hash(which), **where)
    if len(which) > MAX_NAME_LENGTH:
        return []
    found = await _infos(connection, name=which, **where)
    if not found and len(which) <= DISPLAY_PREFIX_LENGTH:
        found = await _infos(connection, prefix=which, **where)
    return found


async def _why_not_found(connection: BaseDBAsyncClient, which: str) -> str:
    if await _matching(connection, which, unrevoked=False):
        return f"token {which!r} is already revoked"
    return f"no token is named {which!r} or starts with it (see `termfleet tokens list`)"


async def _revoke(
    connection: BaseDBAsyncClient, token: TokenInfo, actor: Actor, now: datetime, note: str = ""
) -> TokenInfo:
    await ApiToken.filter(id=token.id).using_db(connection).update(revoked_at=now)
    (after,) = await _infos(connection, id=token.id)
    await audit.record(
        "token.revoke",
        actor,
        "token",
        token.id,
        before=token.audit_view(),
        after=after.audit_view(),
        note=note,
        scope_path=token.scope_path,
        at=now,
        using_db=connection,
    )
    return after
