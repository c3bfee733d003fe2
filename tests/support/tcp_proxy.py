"""A TCP proxy on loopback that a test controls: cut every link, refuse for a while, freeze.

It stands between terminals and the broker, so a test can break the network without touching
either process. It runs its own event loop in a background thread, so sync and async tests
alike call it directly (an async test hands ``cut`` with an outage to ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self, TypeVar

LOOPBACK = "127.0.0.1"
CHUNK_BYTES = 64 * 1024
CALL_TIMEOUT_S = 10.0
HOLD_POLL_S = 0.05
# SO_LINGER on with a zero timeout: close() sends RST at once instead of FIN, as a modem that
# loses its carrier or a NAT that forgets the flow makes the peer see it.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)

T = TypeVar("T")


class ProxyError(RuntimeError):
    """The proxy could not start, or an order to it did not complete."""


@dataclass(frozen=True, slots=True)
class LinkStats:
    """One proxied connection, as seen at the moment it was read (times are ``time.monotonic``)."""

    opened_at: float
    first_reply_at: float | None = None
    """When the first bytes came back from the target (for MQTT, the broker's CONNACK)."""
    closed_at: float | None = None
    bytes_up: int = 0
    bytes_down: int = 0

    @property
    def open(self) -> bool:
        return self.closed_at is None


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    stats: LinkStats
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        """Close both sides with RST and stop forwarding."""
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port`` until ``close``.

    - ``cut(outage_s)`` resets every open link and refuses new ones for ``outage_s``;
    - ``freeze()`` holds every byte (and every close) in both directions without closing
      anything, as a black-holed link does; ``thaw()`` lets them through again, late, as TCP's
      retransmissions would once the link is back. A connection made while frozen reaches the
      target only if its client still waits at the thaw;
    - ``links()`` tells what was connected when, for reconnect times.
    """

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        if target_host != LOOPBACK:
            msg = f"the test proxy forwards to loopback only, not {target_host}"
            raise ProxyError(msg)
        self._target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        # A daemon, so that a test which never reaches close() cannot keep pytest from exiting.
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._holder: socket.socket | None = None
        """During an outage: the port bound but not listening (see ``_cut``)."""
        self._links: list[_Link] = []
        self._serving: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def host(self) -> str:
        return LOOPBACK

    def start(self) -> Self:
        self._thread.start()
        self._call(self._listen())
        return self

    def close(self) -> None:
        """Reset every link, stop listening and end the proxy's thread."""
        if self._thread.is_alive():
            try:
                self._call(self._shut_down())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(CALL_TIMEOUT_S)
        if not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def cut(self, outage_s: float = 0.0) -> int:
        """Reset every open link; refuse connections for ``outage_s``. Returns the links cut.

        Returns once the outage is over and the proxy listens again.
        """
        cut = self._call(self._cut(stop_listening=outage_s > 0))
        if outage_s > 0:
            time.sleep(outage_s)
            self._call(self._listen())
        return cut

    def freeze(self) -> None:
        """Stop forwarding without closing anything, until ``thaw``."""
        self._call(self._set_flowing(flowing=False))

    def thaw(self) -> None:
        self._call(self._set_flowing(flowing=True))

    @property
    def accepted(self) -> int:
        """Connections accepted since the start."""
        return len(self.links())

    def links(self) -> list[LinkStats]:
        """Every link accepted since the start, oldest first."""
        return self._call(self._snapshot())

    def open_links(self) -> list[LinkStats]:
        return [link for link in self.links() if link.open]

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT_S)
        except TimeoutError as exc:
            msg = f"the proxy did not answer within {CALL_TIMEOUT_S}s"
            raise ProxyError(msg) from exc

    async def _set_flowing(self, *, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _snapshot(self) -> list[LinkStats]:
        return [link.stats for link in self._links]

    async def _listen(self) -> None:
        # The same port again after an outage: the terminals are configured with it. Bound
        # beside the holder (SO_REUSEPORT), which then lets go: the port is never free.
        self._server = await asyncio.start_server(
            self._serve, LOOPBACK, self.port, reuse_address=True, reuse_port=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    async def _cut(self, *, stop_listening: bool) -> int:
        if stop_listening and self._server is not None:
            # A closed listener makes connect() fail at once (connection refused), as an
            # unreachable network does; accepting and then dropping would leave the client
            # waiting for a CONNACK until its own timeout instead. The port stays bound (not
            # listening: a connect is refused all the same), or another process's connection
            # could take it as its own port meanwhile and the proxy could not listen again.
            self._holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._holder.bind((LOOPBACK, self.port))
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        open_links = [link for link in self._links if link.stats.open]
        for link in open_links:
            link.reset()
            self._closed(link)
        return len(open_links)

    async def _shut_down(self) -> None:
        await self._cut(stop_listening=True)
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        if self._serving:
            await asyncio.wait(self._serving, timeout=CALL_TIMEOUT_S / 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        serving = asyncio.current_task()
        assert serving is not None
        self._serving.add(serving)
        link = _Link(writer, LinkStats(opened_at=time.monotonic()))
        self._links.append(link)
        try:
            await self._forward(link, reader)
        except BaseException:
            link.reset()
            raise
        finally:
            self._closed(link)
            self._serving.discard(serving)

    async def _forward(self, link: _Link, reader: asyncio.StreamReader) -> None:
        held = await self._hold_while_frozen(reader)
        if held is None:
            link.reset()  # the client gave up before the link thawed
            return
        try:
            up_reader, link.upstream = await asyncio.open_connection(*self._target)
        except OSError:
            link.reset()  # the target refuses: so does the proxy
            return
        if not link.stats.open:
            link.reset()  # cut while it was connecting
            return
        link.upstream.write(held)
        self._count(link, len(held), up=True)
        link.tasks = [
            asyncio.create_task(self._pump(link, reader, link.upstream, up=True), name="up"),
            asyncio.create_task(self._pump(link, up_reader, link.client, up=False), name="down"),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        for writer in (link.client, link.upstream):
            writer.close()

    async def _hold_while_frozen(self, reader: asyncio.StreamReader) -> bytes | None:
        """What a client connecting into a frozen link sent before the thaw; None if it left.

        A black hole drops the SYN too, so the target must not hear of a connection attempt
        that the client abandoned before the link came back.
        """
        held: list[bytes] = []
        while not self._flowing.is_set():
            try:
                data = await asyncio.wait_for(reader.read(CHUNK_BYTES), HOLD_POLL_S)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not data:
                return None
            held.append(data)
        return b"".join(held)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        up: bool,
    ) -> None:
        try:
            while data := await reader.read(CHUNK_BYTES):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
                self._count(link, len(data), up=up)
            await self._flowing.wait()  # a close is held back by a frozen link like any byte
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            # One side reset: the other must see it too, or it would wait on a dead link.
            link.reset()

    def _count(self, link: _Link, size: int, *, up: bool) -> None:
        stats = link.stats
        if up:
            link.stats = replace(stats, bytes_up=stats.bytes_up + size)
        else:
            first = stats.first_reply_at or time.monotonic()
            link.stats = replace(stats, bytes_down=stats.bytes_down + size, first_reply_at=first)

    def _closed(self, link: _Link) -> None:
        if link.stats.open:
            link.stats = replace(link.stats, closed_at=time.monotonic())
