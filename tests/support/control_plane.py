"""An in-process control plane for tests: real broker, real database, real HTTP port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from nacl.signing import SigningKey

from control_plane.auth import Role
from control_plane.content_repo import ContentSettings
from control_plane.server import ServerSettings, serve
from control_plane.services.broker import BrokerSettings
from control_plane.services.processes import free_port
from edge.content.signing import TrustedKeys, new_signing_key, public_key_text, trusted_keys
from edge.mqtt import BrokerAddress
from provisioning.credentials import create_secret
from provisioning.settings import provisioning_settings
from tests.support.tokens import issue_token

READY_TIMEOUT_S = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class RunningControlPlane:
    url: str
    http: aiohttp.ClientSession
    """Sends ``token`` with every request."""
    token: str
    database_url: str

    async def get_json(self, path: str) -> dict[str, Any]:
        async with self.http.get(self.url + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()  # type: ignore[no-any-return]

    async def metrics(self) -> str:
        async with self.http.get(self.url + "/metrics") as resp:
            return await resp.text()

    async def wait_for(
        self, predicate: Callable[[], Awaitable[T | None]], timeout_s: float = 10.0
    ) -> T:
        """Poll an async predicate until it returns something truthy; fail with its last value."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        value: T | None = None
        while asyncio.get_running_loop().time() < deadline:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout_s}s; last value {value!r}")


@contextlib.asynccontextmanager
async def running_control_plane(
    broker: BrokerSettings,
    database_url: str,
    *,
    heartbeat_timeout_s: float = 90.0,
    role: Role = Role.ADMIN,
    scope: str | None = None,
    freeze_after_start: bool = False,
    **parts: Any,  # noqa: ANN401 - ServerSettings fields, checked by its constructor
) -> AsyncIterator[RunningControlPlane]:
    """A control plane on a free port; ``cp.http`` sends a token of ``role`` for ``scope``.

    ``parts`` are further ``ServerSettings`` (provisioning, content, public_url, http_port).
    ``freeze_after_start`` as ``serve`` takes it: it freezes the test process's objects too.
    """
    token = await issue_token(database_url, role, scope)
    port = parts.pop("http_port", None) or free_port()
    settings = ServerSettings(
        database_url=database_url,
        mqtt=BrokerAddress(broker.host, broker.port),
        http_port=port,
        client_id=f"cp-test-{port}",
        heartbeat_timeout_s=heartbeat_timeout_s,
        **parts,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(settings, stop, freeze_after_start=freeze_after_start), name="control-plane"
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        cp = RunningControlPlane(f"http://127.0.0.1:{port}", http, token, database_url)

        async def ready() -> bool:
            if task.done():
                task.result()  # surfaces the start-up error
            with contextlib.suppress(aiohttp.ClientError):
                return bool((await cp.get_json("/healthz"))["mqtt_connected"])
            return False

        try:
            await cp.wait_for(ready, READY_TIMEOUT_S)
            yield cp
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


@dataclass(frozen=True)
class Signer:
    """The content key a test packs with, and its public half as server and terminals hold it."""

    key: SigningKey
    public: str

    @classmethod
    def new(cls) -> Signer:
        key = new_signing_key()
        return cls(key, public_key_text(key.verify_key))

    def trusted(self) -> TrustedKeys:
        return trusted_keys([self.public])


@contextlib.asynccontextmanager
async def content_control_plane(
    broker: BrokerSettings,
    database_url: str,
    workdir: Path,
    signer: Signer,
    *,
    http_port: int | None = None,
    public_url: str | None = None,
) -> AsyncIterator[RunningControlPlane]:
    """A control plane with a provisioning secret (it signs download URLs) and a content key.

    Terminals download from ``public_url`` (a proxy in front of ``http_port``, say), by default
    the server itself.
    """
    secret = workdir / "secret"
    create_secret(secret)
    address = BrokerAddress(broker.host, broker.port)
    port = http_port or free_port()
    async with running_control_plane(
        broker,
        database_url,
        http_port=port,
        provisioning=provisioning_settings(secret, address, content_keys=[signer.public]),
        content=ContentSettings(workdir / "repo", signer.trusted()),
        public_url=public_url or f"http://127.0.0.1:{port}",
    ) as cp:
        yield cp


async def upload_package(cp: RunningControlPlane, package: bytes) -> str:
    """POST a package to the repository as an administrator would; its sha256."""
    async with cp.http.post(
        cp.url + "/api/v1/packages",
        data=package,
        headers={"Content-Type": "application/octet-stream"},
    ) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["sha256"])
