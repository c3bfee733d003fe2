"""API errors as JSON: {"error": {"code": ..., "message": ...}} with the right status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web


class ApiError(Exception):
    """An error the client caused; ``code`` is stable for scripts, ``message`` is for people."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(
            error_body(exc.code, exc.message), status=exc.status, headers=exc.headers
        )
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 - redirects pass through
            raise
        return web.json_response(
            error_body(exc.reason.lower().replace(" ", "_"), exc.text or exc.reason),
            status=exc.status,
        )
