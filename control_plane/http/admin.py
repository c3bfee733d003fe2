"""What the administration routes (tree, sites, windows, staff, tokens) have in common.

JSON bodies, opaque cursors, query parameters, and the mapping of refusals to statuses. Bad
input is a 400 that names the parameter or field, never a 500: a body that is not a JSON object,
a field of the wrong type, an unknown query parameter, a cursor this API did not hand out.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

from aiohttp import web

from control_plane.admin_errors import AdminError, ConflictError, InvalidFieldError, NotFoundError
from control_plane.auth import PermissionDeniedError
from control_plane.paging import Page

from .auth import as_api_error
from .errors import ApiError, invalid_field, invalid_parameter, unknown_names

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATUS: Mapping[type[AdminError], int] = {
    InvalidFieldError: 400,
    NotFoundError: 404,
    ConflictError: 409,
}
LIST_PARAMETERS = frozenset({"limit", "cursor"})
K = TypeVar("K", str, int)
MAX_INT_KEY = 2**31 - 1
"""Integer keys are INTEGER columns: a tampered cursor's larger one must not reach the database."""


def refusals(handler: Handler) -> Handler:
    """Turn the administration modules' refusals into API errors with their status."""

    @functools.wraps(handler)
    async def translated(request: web.Request) -> web.StreamResponse:
        for name, value in (*request.match_info.items(), *request.query.items()):
            if not _is_storable(value):
                raise invalid_parameter(_unstorable(name), parameter=name)
        try:
            return await handler(request)
        except PermissionDeniedError as exc:
            raise as_api_error(exc) from None
        except AdminError as exc:
            field = exc.field if isinstance(exc, InvalidFieldError) else None
            details = {"field": field} if field else {}
            status = STATUS.get(type(exc), 400)
            raise ApiError(status, exc.code, exc.message, details=details) from None

    return translated


def by_method(handlers: Mapping[str, Handler]) -> Handler:
    """One handler for a path with several methods: each declared in ``API_ROUTES`` on its own."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            raise web.HTTPMethodNotAllowed(request.method, list(handlers))
        return await handler(request)

    return dispatch


async def json_object(request: web.Request) -> dict[str, object]:
    """The request's body, which must be one JSON object."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        msg = "the body must be a JSON object (Content-Type: application/json)"
        raise ApiError(400, "invalid_body", msg) from None
    if not isinstance(body, dict):
        msg = f"the body must be a JSON object, not {type(body).__name__}"
        raise ApiError(400, "invalid_body", msg)
    for name, value in body.items():
        if not all(_is_storable(text) for text in _strings(value)):
            raise invalid_field(_unstorable(name), field=name)
    return body


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for k, v in value.items() for text in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _unstorable(name: str) -> str:
    return f"{name}: text with NUL or unpaired surrogates is not accepted"


def _is_storable(text: str) -> bool:
    """Whether a database column takes ``text``: no NUL (PostgreSQL), no lone surrogate (UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def created(view: Mapping[str, Any], **headers: str) -> web.Response:
    return web.json_response(dict(view), status=201, headers=headers or None)


def no_content() -> web.Response:
    return web.Response(status=204)


# --- listings ----------------------------------------------------------------------------------


def only_parameters(request: web.Request, filters: Collection[str]) -> None:
    """Refuse a query parameter that the listing does not know, rather than ignore a typo."""
    allowed = LIST_PARAMETERS | set(filters)
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        msg = f"unknown parameter(s) {', '.join(unknown)}; this listing takes {sorted(allowed)}"
        raise invalid_parameter(msg, parameter=unknown[0], **unknown_names(unknown, allowed))


def encode_cursor(key: str | int) -> str:
    """An opaque cursor: the key the next page starts after, so clients build no URLs of keys."""
    raw = json.dumps({"after": key}, ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_after(request: web.Request, key_type: type[K]) -> K | None:
    """The key in the request's ``cursor``; a 400 for anything this API did not hand out."""
    text = request.query.get("cursor")
    if text is None:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        after = decoded["after"] if isinstance(decoded, dict) and len(decoded) == 1 else None
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, KeyError, ValueError):
        after = None
    if not _is_key(after, key_type):
        msg = "cursor: not a cursor of this listing (pass the next_cursor of the previous page)"
        raise invalid_parameter(msg, parameter="cursor")
    return after


def _is_key(value: object, key_type: type) -> bool:
    """Whether a cursor's key is one this API could have handed out, safe to query with."""
    if type(value) is not key_type:  # bool is an int, and no key
        return False
    if isinstance(value, str):
        return _is_storable(value)
    return isinstance(value, int) and 0 <= value <= MAX_INT_KEY


def page_response(page: Page[K]) -> web.Response:
    cursor = encode_cursor(page.next_after) if page.next_after is not None else None
    return web.json_response({"items": page.items, "next_cursor": cursor})


def flag(request: web.Request, name: str) -> bool | None:
    """A true/false query parameter; None when absent."""
    value = request.query.get(name)
    if value is None:
        return None
    if value not in {"true", "false"}:
        msg = f"{name} must be true or false, not {value!r}"
        raise invalid_parameter(msg, parameter=name, allowed=["false", "true"])
    return value == "true"


def text_parameter(request: web.Request, name: str, max_length: int) -> str | None:
    value = request.query.get(name)
    if value is not None and (not value.strip() or len(value) > max_length):
        msg = f"{name} must be 1 to {max_length} characters"
        raise invalid_parameter(msg, parameter=name)
    return value.strip() if value is not None else None
