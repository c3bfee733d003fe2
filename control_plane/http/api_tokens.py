"""/api/v1/tokens: API tokens managed by a token, within its scope (``control_plane.token_admin``).

The secret of a new token is in the answer to its POST, once, marked ``Cache-Control: no-store``;
nothing shows it again.
"""

from __future__ import annotations

from aiohttp import web

from control_plane import admin_bodies, token_admin
from control_plane.auth import Permission

from . import request_schemas, schemas
from .admin import (
    Handler,
    by_method,
    created,
    cursor_after,
    json_object,
    only_parameters,
    page_response,
    refusals,
)
from .auth import PRINCIPAL, ApiRoute
from .errors import invalid_parameter
from .params import limit_param

TOKENS = "/api/v1/tokens"
REVOKE = "/api/v1/tokens/{id}/revoke"
MAX_ID = 2**31 - 1
MAX_ID_DIGITS = len(str(MAX_ID))
"""Token ids are INTEGER columns: a larger number must not reach the database (PostgreSQL errs)."""
ROUTES = (
    ApiRoute(
        "GET",
        TOKENS,
        Permission.TOKENS_READ,
        "the tokens scoped to the token's subtree, with their state; never a secret",
        answer=schemas.TokenPage,
        query=request_schemas.Paged,
    ),
    ApiRoute(
        "POST",
        TOKENS,
        Permission.TOKENS_WRITE,
        "issue a token within the token's scope and permissions; its secret is shown once",
        answer=schemas.IssuedToken,
        status=201,
        body=request_schemas.NewToken,
        conflict="a token of that name exists (pass replace)",
    ),
    ApiRoute(
        "POST",
        REVOKE,
        Permission.TOKENS_WRITE,
        "revoke a token of the token's subtree",
        answer=schemas.Token,
    ),
)


@refusals
async def list_tokens(request: web.Request) -> web.Response:
    only_parameters(request, set())
    page = await token_admin.list_visible(
        request[PRINCIPAL], after=cursor_after(request, int), limit=limit_param(request)
    )
    return page_response(page)


@refusals
async def issue_token(request: web.Request) -> web.Response:
    wanted = admin_bodies.token(await json_object(request))
    issued = await token_admin.issue_for(request[PRINCIPAL], wanted)
    view = {"token": issued.secret, **issued.info.to_dict(issued.info.created_at)}
    return created(view, **{"Cache-Control": "no-store"})


@refusals
async def revoke_token(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not (
        raw.isascii() and raw.isdigit() and len(raw) <= MAX_ID_DIGITS and 0 < int(raw) <= MAX_ID
    ):
        msg = f"id must be a token's id, not {raw!r}"
        raise invalid_parameter(msg, parameter="id")
    view = await token_admin.revoke_visible(request[PRINCIPAL], int(raw))
    return web.json_response(view)


def handlers() -> dict[str, Handler]:
    return {
        TOKENS: by_method({"GET": list_tokens, "POST": issue_token}),
        REVOKE: by_method({"POST": revoke_token}),
    }
