"""The rollouts API on a replica that does not drive them: forwarded to the one that does.

The replica holding the rollout lock keeps every rollout in memory (``rollout_driver``), so its
API is the only exact one. Any other replica sends each rollouts request on to it, as it came
(method, path, query, body, token), and hands back its answer; the holder checks the token
again. A request that arrives forwarded is never forwarded a second time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from control_plane.rollout_driver import RolloutDriver

from .errors import ApiError

DRIVER = web.AppKey("rollout_driver", RolloutDriver)
ROLLOUTS_PATH = "/api/v1/rollouts"
FORWARDED_HEADER = "X-Termfleet-Forwarded"
"""Set on a forwarded request, so that it is not forwarded again."""
DRIVER_HEADER = "X-Termfleet-Rollouts-Driver"
"""On a forwarded answer: the URL of the replica that gave it."""
PASSED_HEADERS = ("Authorization", "Content-Type", "Accept")
NOT_PASSED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
     "date", "server", "upgrade", "proxy-authenticate", "trailer", "te"}
)  # fmt: skip
"""Headers of the driver's answer that belong to its own connection, not to the answer."""
FORWARD_TIMEOUT_S = 30.0

# The answers of a replica that does not drive, as the OpenAPI document describes them.
UNDRIVEN = (
    "on a replica that does not drive the rollouts: `rollouts_undriven`, no replica does now;"
    " `rollouts_elsewhere`, the one that does does not answer (`Retry-After` says when to try"
    " again). Otherwise such a replica forwards the request to the one that drives them"
)
FORWARD_TIMED_OUT = (
    f"`rollouts_timeout`: forwarded to the replica that drives the rollouts, which did not"
    f" answer within {FORWARD_TIMEOUT_S:.0f} s; the request may have been carried out (no"
    " `Retry-After`: look before sending it again)"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Forwarder:
    """One HTTP client session for the forwarded requests, closed with the app."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def send(self, request: web.Request, base_url: str) -> web.Response:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout)
        headers = {name: value for name in PASSED_HEADERS if (value := request.headers.get(name))}
        headers[FORWARDED_HEADER] = "1"
        body = await request.read()
        url = base_url.rstrip("/") + request.path_qs
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as answer:
                payload = await answer.read()
                status = answer.status
                headers = {k: v for k, v in answer.headers.items() if k.lower() not in NOT_PASSED}
        except TimeoutError:
            # Sent, and perhaps done: saying "try again" could make a second rollout.
            msg = (
                f"the replica that drives the rollouts ({base_url}) did not answer within "
                f"{FORWARD_TIMEOUT_S:.0f} s; the request may have been carried out: look before "
                "sending it again"
            )
            raise ApiError(504, "rollouts_timeout", msg) from None
        except aiohttp.ClientError as exc:
            msg = f"the replica that drives the rollouts ({base_url}) does not answer: {exc}"
            raise ApiError(503, "rollouts_elsewhere", msg, {"Retry-After": "5"}) from None
        headers[DRIVER_HEADER] = base_url
        return web.Response(status=status, body=payload, headers=headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


FORWARDER = web.AppKey("rollout_forwarder", Forwarder)


def install(app: web.Application, driver: RolloutDriver) -> None:
    """Forward the rollouts API of ``app`` whenever ``driver`` does not drive the rollouts."""
    app[DRIVER] = driver
    forwarder = app[FORWARDER] = Forwarder()

    async def close(_app: web.Application) -> None:
        await forwarder.close()

    app.on_cleanup.append(close)


@web.middleware
async def forward_rollouts(request: web.Request, handler: Handler) -> web.StreamResponse:
    driver = request.app.get(DRIVER)
    if driver is None or driver.driving or not _is_rollouts(request.path):
        return await handler(request)
    if request.headers.get(FORWARDED_HEADER):
        msg = "forwarded to a replica that does not drive the rollouts (their driver changed)"
        raise ApiError(503, "rollouts_elsewhere", msg, {"Retry-After": "5"})
    if driver.holder_url is None:
        if driver.takes_part:
            why = "this one stands by and takes the rollout lock within seconds of it being free"
        else:
            why = "this one runs with --no-rollouts; start one with rollouts on"
        msg = f"no replica drives the rollouts now: {why}"
        raise ApiError(503, "rollouts_undriven", msg, {"Retry-After": "5"})
    return await request.app[FORWARDER].send(request, driver.holder_url)


def _is_rollouts(path: str) -> bool:
    return path == ROLLOUTS_PATH or path.startswith(ROLLOUTS_PATH + "/")
