"""The reliability tests' TCP proxy (tests/support/tcp_proxy.py) keeps its port through an outage.

During a cut with an outage a connect is refused at once, and the port stays bound, so that no
other process (a parallel test's outgoing connection) can take it before the proxy listens
again: that once failed `test_reliability_network.py` with "address already in use".
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import LOOPBACK, TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    with socketserver.ThreadingTCPServer((LOOPBACK, 0), _Echo) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


def echo_through(port: int) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=5) as conn:
        conn.sendall(b"ping")
        return conn.recv(4)


def test_an_outage_refuses_connections_and_keeps_the_port(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        assert echo_through(proxy.port) == b"ping"
        during: list[BaseException | None] = []
        taken: list[BaseException | None] = []

        def while_cut() -> None:
            try:
                echo_through(proxy.port)
                during.append(None)
            except OSError as exc:
                during.append(exc)
            with socket.socket() as other:
                try:
                    other.bind((LOOPBACK, proxy.port))
                    taken.append(None)
                except OSError as exc:
                    taken.append(exc)

        timer = threading.Timer(0.3, while_cut)
        timer.start()
        proxy.cut(outage_s=1.0)
        timer.join()

        assert isinstance(during[0], ConnectionRefusedError), during
        assert isinstance(taken[0], OSError), "another socket could take the port mid-outage"
        assert echo_through(proxy.port) == b"ping"
