"""Bearer tokens on /api/v1: who is asking (401 when nobody we know), and may they (403).

Every route under /api/v1 is declared once, as an ``ApiRoute`` with the permission it needs;
a route without a declaration is refused to everyone (fail closed). /metrics and /healthz stay
open: Prometheus and load balancers scrape them without credentials. The request's principal
is ``request[PRINCIPAL]``; handlers narrow what they return to its scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from control_plane.auth import (
    AuthError,
    Permission,
    PermissionDeniedError,
    Principal,
    Refusal,
    bearer_secret,
)

from .errors import ApiError

API_PREFIX = "/api/v1/"
REALM = "termfleet"
PRINCIPAL = web.RequestKey("principal", Principal)
OPENAPI_PATH = "/api/v1/openapi.json"
OPEN_API_PATHS = frozenset({OPENAPI_PATH})
"""Under /api/v1 but open, like /healthz: the API's own description (``openapi``)."""

Authenticator = Callable[[str, datetime], Awaitable[Principal]]


@dataclass(frozen=True)
class ApiRoute:
    """One route of the REST API: the permission a token needs, and what it takes and answers.

    The shapes are msgspec structs (``schemas``, ``request_schemas``) from which the OpenAPI
    document is made (``openapi``): ``query``'s fields are the route's query parameters, ``body``
    its JSON body, ``answer`` what it answers with ``status`` (None: 204, no body).
    """

    method: str
    path: str
    permission: Permission
    summary: str
    answer: type[msgspec.Struct] | None = None
    status: int = 200
    query: type[msgspec.Struct] | None = None
    body: Any = None
    """A struct, or any type msgspec describes (a labels patch is a mapping)."""
    conflict: str | None = None
    """When the route answers 409 Conflict, if it can."""
    unavailable: str | None = None
    """When the route answers 503 Service Unavailable (with ``Retry-After``), if it can."""
    timeout: str | None = None
    """When the route answers 504 Gateway Timeout (a request passed on unanswered), if it can."""


def challenge(error: AuthError) -> str:
    """The ``WWW-Authenticate`` value for a refusal (RFC 6750 section 3)."""
    if error.code is Refusal.MISSING_TOKEN:
        return f'Bearer realm="{REALM}"'
    if isinstance(error, PermissionDeniedError):
        return f'Bearer realm="{REALM}", error="insufficient_scope"'
    return f'Bearer realm="{REALM}", error="invalid_token"'


def as_api_error(error: AuthError) -> ApiError:
    return ApiError(
        error.status,
        error.code.value,
        error.message,
        {"WWW-Authenticate": challenge(error)},
        details=error.details,
    )


def auth_middleware(
    routes: Iterable[ApiRoute], authenticate: Authenticator, clock: Callable[[], datetime]
) -> Middleware:
    """Authenticate every /api/v1 request, then check its route's permission."""
    needs = {(route.method, route.path): route.permission for route in routes}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        canonical = route.resource.canonical if route.resource else ""
        # Either says it is the API: the path asked for, or the route it reached.
        if not (request.path.startswith(API_PREFIX) or canonical.startswith(API_PREFIX)):
            return await handler(request)
        if canonical in OPEN_API_PATHS:
            return await handler(request)
        try:
            # Authenticated first, so that without a token even an unknown path says 401:
            # which routes exist is nobody's business before that.
            principal = await authenticate(
                bearer_secret(request.headers.get("Authorization")), clock()
            )
            if request.match_info.http_exception is None:
                method = "GET" if route.method == "HEAD" else route.method
                permission = needs.get((method, canonical))
                if permission is None:
                    msg = "no permission is declared for this route"
                    raise PermissionDeniedError(Refusal.FORBIDDEN, msg)
                principal.require(permission)
        except AuthError as exc:
            raise as_api_error(exc) from None
        request[PRINCIPAL] = principal
        return await handler(request)

    return middleware
