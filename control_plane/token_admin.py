"""API tokens managed through the API: by a token, within its scope and its own permissions.

``termfleet tokens`` issues tokens as whoever can open the database (that is how the first one
comes to be); through the API a token may:

- issue tokens scoped to its own subtree only (no scope given: its own), never for the whole tree
  unless it is for the whole tree itself;
- never give a permission it lacks itself (``may_grant``): no token can make a stronger one;
- list and revoke the tokens of its subtree; others are unknown to it (404).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import tokens
from .admin_bodies import TokenRequest
from .admin_errors import ALREADY_EXISTS, ConflictError, InvalidFieldError, NotFoundError
from .auth import ROLE_PERMISSIONS, PermissionDeniedError, Principal, Refusal, Role
from .paging import Page, page_of
from .scope_lookup import placement_node, require_whole_tree

ALREADY_REVOKED = "already_revoked"


def may_grant(granter: Role, role: Role) -> bool:
    """Whether a token of role ``granter`` may issue one of ``role``: no permission it lacks."""
    return ROLE_PERMISSIONS[role] <= ROLE_PERMISSIONS[granter]


async def issue_for(
    principal: Principal, request: TokenRequest, now: datetime | None = None
) -> tokens.IssuedToken:
    if not may_grant(principal.role, request.role):
        msg = (
            f"a {principal.role} token may not issue {request.role} tokens: a token cannot give"
            " permissions it lacks itself"
        )
        raise PermissionDeniedError(Refusal.FORBIDDEN, msg)
    scope_code = principal.scope_code
    if request.scope is not None:
        scope_code = (await placement_node(principal, request.scope, "scope")).code
    elif request.scope_given:
        require_whole_tree(principal, "a token for the whole tree")
        scope_code = None
    try:
        return await tokens.issue(
            request.name,
            request.role,
            actor=principal.actor,
            scope_code=scope_code,
            expires_in=request.expires_in,
            replace=request.replace,
            now=now,
            seen_by=principal,
        )
    except tokens.TokenNameError as exc:
        raise InvalidFieldError(field="name", problem=str(exc)) from None
    except tokens.UnknownScopeError as exc:  # deleted since it was looked up
        raise InvalidFieldError(field="scope", problem=str(exc)) from None
    except tokens.TokenNameTakenError as exc:
        raise ConflictError(str(exc), ALREADY_EXISTS) from None


async def list_visible(
    principal: Principal, *, after: int | None, limit: int, now: datetime | None = None
) -> Page[int]:
    """The tokens of the asker's subtree, by id, with their state (never a secret)."""
    now = now or datetime.now(UTC)
    rows = await tokens.listed(within=principal.scope_path, after_id=after, limit=limit + 1)
    return page_of(rows, limit, lambda info: info.id, lambda info: info.to_dict(now))


async def revoke_visible(
    principal: Principal, token_id: int, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    try:
        info = await tokens.revoke_id(token_id, actor=principal.actor, now=now, seen_by=principal)
    except tokens.UnknownTokenError as exc:
        raise NotFoundError(str(exc)) from None
    except tokens.TokenAlreadyRevokedError as exc:
        raise ConflictError(str(exc), ALREADY_REVOKED) from None
    return info.to_dict(now)
