"""What the ``termfleet devices`` commands share: their API options and one request to the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from . import options
from .api_calls import ApiSession, run

F = TypeVar("F", bound=Callable[..., Any])


def api_options(command: F) -> F:
    """``--server``, ``--token`` and ``--json``, as every command of the group takes them."""
    return options.server_url(options.api_token(options.json_output(command)))


def call(server: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401 - the API's JSON
    """One request (``ApiSession.request``); the config file's token goes only to its server."""
    secret = options.require_token(token, server)

    async def work(api: ApiSession) -> Any:  # noqa: ANN401 - the API's JSON
        return await api.request(method, path, **kwargs)

    return run(server, secret, work)
