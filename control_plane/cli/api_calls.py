"""Calling the control plane's REST API from a command: requests, listings, the API's errors.

A command opens one session (``run``) for all its requests, so that walking the tree or paging
through a listing reuses one connection. A refusal exits non-zero with the API's own message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import options

if TYPE_CHECKING:  # aiohttp is imported when a command runs, so that `--help` stays fast
    import aiohttp

T = TypeVar("T")
PAGE = 500
TIMEOUT_S = 30


class ApiSession:
    """Requests to one control plane over one open aiohttp session (``run`` opens it)."""

    def __init__(self, server: str, session: aiohttp.ClientSession) -> None:
        self.server = server.rstrip("/")
        self._session = session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, object] | None = None,
    ) -> Any:  # noqa: ANN401 - the API's JSON
        """The JSON the API answers (None for 204), or a ClickException with its message."""
        import aiohttp

        url = self.server + path
        try:
            async with self._session.request(method, url, params=params, json=body) as resp:
                if resp.status == 204:  # noqa: PLR2004 - HTTP No Content
                    return None
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    msg = f"{url}: HTTP {resp.status} {resp.reason}: the reply is not JSON"
                    raise click.ClickException(msg) from None
                if resp.status >= 300:  # noqa: PLR2004 - not a success
                    raise click.ClickException(_refusal(url, resp.status, resp.reason, answer))
                return answer
        except aiohttp.ClientError as exc:
            msg = f"cannot reach the control plane at {self.server}: {exc}"
            raise click.ClickException(msg) from None

    async def every_page(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a listing, a page at a time."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**(params or {}), "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            page = await self.request("GET", path, params=query)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def _refusal(url: str, status: int, reason: str | None, answer: object) -> str:
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    message = error.get("message", reason) if isinstance(error, dict) else reason
    msg = f"{url}: HTTP {status}: {message}"
    if status == 401:  # noqa: PLR2004 - HTTP Unauthorized
        msg += f"\n{options.HOW_TO_AUTHENTICATE}"
    return msg


def run(server: str, token: str | None, work: Callable[[ApiSession], Awaitable[T]]) -> T:
    """Run ``work`` with a session to ``server``, sending ``token`` (or saying how to get one)."""
    secret = options.require_token(token)

    async def main() -> T:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            return await work(ApiSession(server, session))

    return asyncio.run(main())
