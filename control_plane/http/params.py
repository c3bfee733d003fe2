"""Query parameters of the API's listings, checked: a 400 names the parameter and what it takes."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from aiohttp import web

from .errors import invalid_parameter

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def choice(request: web.Request, name: str, allowed: AbstractSet[str]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        msg = f"{name} must be one of {sorted(allowed)}, not {value!r}"
        raise invalid_parameter(msg, parameter=name, allowed=sorted(allowed))
    return value


def integer(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        msg = f"{name} must be an integer, not {raw!r}"
        raise invalid_parameter(msg, parameter=name) from None


def limit_param(request: web.Request) -> int:
    limit = integer(request, "limit", DEFAULT_LIMIT)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        msg = f"limit must be between 1 and {MAX_LIMIT}"
        raise invalid_parameter(msg, parameter="limit")
    return limit
