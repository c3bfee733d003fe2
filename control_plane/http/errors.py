"""API errors as JSON, one format for every error, with the right status.

    {"error": {"code": "invalid_parameter", "message": "limit must be ...",
               "details": {"parameter": "limit"}}}

``code`` is stable for scripts, ``message`` is for people, and ``details`` is always an object
(``{}`` when there is nothing more to say) of machine-readable facts, from this closed set of keys:

- ``parameter``: the query or path parameter at fault (every ``invalid_parameter``);
- ``field``: the body field at fault (``invalid_field``, unless the body as a whole is wrong);
- ``unknown`` and ``allowed``: the names sent that the route does not take, and those it takes;
- ``allowed`` alone: what would have been accepted, the methods of a 405, the values of a
  parameter with a fixed set;
- ``permission`` and ``role``: what a 403 ``forbidden`` token's role lacks (``auth.AuthError``).

A handler's unexpected exception is a 500 ``internal_error`` in the same format; its traceback
goes to the server's log, never into the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import hdrs, web

log = logging.getLogger(__name__)

INTERNAL_ERROR_MESSAGE = "the server failed to handle this request; its log says why"
# Headers of aiohttp's own exception responses that describe their text body, not ours.
_BODY_HEADERS = frozenset(name.lower() for name in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH))


class ApiError(Exception):
    """An error the client caused; ``code`` is stable for scripts, ``message`` is for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        details: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})


def invalid_parameter(message: str, *, parameter: str, **more: object) -> ApiError:
    """A 400 for a query or path parameter; ``more``: further details."""
    return ApiError(400, "invalid_parameter", message, details={"parameter": parameter, **more})


def invalid_field(message: str, *, field: str | None, **more: object) -> ApiError:
    """A 400 for a body field (None: the body as a whole); ``more``: further details."""
    named = {"field": field} if field else {}
    return ApiError(400, "invalid_field", message, details={**named, **more})


def unknown_names(unknown: Iterable[str], allowed: Iterable[str]) -> dict[str, object]:
    """The details of names a route does not take: the first is the one at fault."""
    return {"unknown": sorted(unknown), "allowed": sorted(allowed)}


def error_body(
    code: str, message: str, details: Mapping[str, object] | None = None
) -> dict[str, dict[str, object]]:
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(
            error_body(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers
        )
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 - redirects pass through
            raise
        return _http_exception(exc)
    except Exception:
        # Any bug in a handler: the client learns only that it failed, the log learns where.
        log.exception("internal error answering %s %s", request.method, request.path)
        return web.json_response(error_body("internal_error", INTERNAL_ERROR_MESSAGE), status=500)


def _http_exception(exc: web.HTTPException) -> web.Response:
    """The refusals of aiohttp itself (unknown path, method, body too large) in the API's format."""
    details: dict[str, object] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        details["allowed"] = sorted(exc.allowed_methods)
    # Keep what the status needs besides the body, such as a 405's Allow (RFC 9110 15.5.6).
    headers = {
        name: value for name, value in exc.headers.items() if name.lower() not in _BODY_HEADERS
    }
    return web.json_response(
        error_body(exc.reason.lower().replace(" ", "_"), exc.text or exc.reason, details),
        status=exc.status,
        headers=headers,
    )
