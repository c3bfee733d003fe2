"""Content served over plain HTTP: the control plane's signed download route against sendfile.

The control plane (``termfleet server run`` with a provisioning secret, a content key and a
content directory) serves one package, uploaded through the API, at a URL signed for a bench
device. The reference is a minimal aiohttp app answering every request with ``web.FileResponse``
of the same file, which hands it to the kernel's sendfile. The clients run in a process of their
own (threads on blocking sockets, a new connection per download, the body dropped in the kernel
with ``MSG_TRUNC`` so that the two cores go to the servers), so a server's CPU, read from psutil
before and after, is its own. Throughput is the bytes delivered over the wall time; a server's
CPU in cores is its CPU seconds over that time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from bench.stand import content_stand
from control_plane import content_urls
from control_plane.services.processes import ManagedProcess, free_port
from edge.content.manifest import PackageKind
from edge.content.package import pack
from edge.content.signing import new_signing_key, public_key_text
from edge.content.source import scan_directory
from provisioning.credentials import load_secret

ROOT = Path(__file__).resolve().parent.parent
"""The client and the reference run as ``python -m bench.content_serving`` from here."""
GB = 10**9
MB = 2**20
TARGET_BYTES_PER_S = 1 * GB
TARGET_CORES = 1.0
BUFFER_BYTES = 1 * MB
HEAD_LIMIT_BYTES = 64 * 1024
URL_TTL_S = 24 * 3600
DEVICE = "bench-kiosk"
HOST = "127.0.0.1"
WRITE_CHUNK_BYTES = 8 * MB
CLIENT_TIMEOUT_S = 600


class ServingBenchError(RuntimeError):
    """A download that did not deliver what it asked for; ``reason`` names how."""

    reason = "bad_response"


@dataclass(frozen=True)
class Load:
    """``clients`` in parallel share ``downloads`` of the file, each in ``pieces`` ranges."""

    name: str
    clients: int
    pieces: int = 1


@dataclass(frozen=True)
class Served:
    """What one load of one server measured."""

    bytes_delivered: int
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float

    @property
    def gb_per_s(self) -> float:
        return self.bytes_delivered / self.wall_s / GB

    @property
    def cpu_s_per_gb(self) -> float:
        return self.server_cpu_s / (self.bytes_delivered / GB)

    @property
    def cores(self) -> float:
        return self.server_cpu_s / self.wall_s


LOADS = (
    Load("1 client", 1),
    Load("4 clients", 4),
    Load("16 clients", 16),
    Load("4 clients, each download in 4 ranges", 4, pieces=4),
)


# --- the client process -----------------------------------------------------------------------


def _read_head(sock: socket.socket) -> tuple[int, int, int]:
    """The status, Content-Length and the body bytes already read with the head."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(HEAD_LIMIT_BYTES)
        if not data or len(head) > HEAD_LIMIT_BYTES:
            msg = "the server closed the connection or sent no end of headers"
            raise ServingBenchError(msg)
        head += data
    head, _, body = head.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), int(fields["content-length"]), len(body)


def _get(sock: socket.socket, target: str, piece: tuple[int, int] | None, buffer: bytearray) -> int:
    """One GET on ``sock``, its body dropped unread (MSG_TRUNC); the body's length."""
    ranged = f"Range: bytes={piece[0]}-{piece[1] - 1}\r\n" if piece else ""
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n{ranged}\r\n".encode())
    status, length, left = _read_head(sock)
    expected = (206, piece[1] - piece[0]) if piece else (200, length)
    if (status, length) != expected:
        msg = f"asked for {piece or 'the whole file'}, got status {status} of {length} bytes"
        raise ServingBenchError(msg)
    view = memoryview(buffer)
    while left < length:
        got = sock.recv_into(view, min(len(buffer), length - left), socket.MSG_TRUNC)
        if not got:
            msg = f"the connection closed after {left} of {length} bytes"
            raise ServingBenchError(msg)
        left += got
    return length


def _pieces(size: int, count: int) -> list[tuple[int, int] | None]:
    if count == 1:
        return [None]
    step = -(-size // count)
    return [(start, min(start + step, size)) for start in range(0, size, step)]


def client_main(url: str, size: int, load: Load, downloads: int) -> None:
    """Share ``downloads`` among ``load.clients`` threads; print the bytes, wall and CPU time."""
    split = urlsplit(url)
    target = f"{split.path}?{split.query}" if split.query else split.path
    left = iter(range(downloads))
    lock = threading.Lock()
    delivered: list[int] = []
    failures: list[BaseException] = []

    def worker() -> None:
        buffer = bytearray(BUFFER_BYTES)
        try:
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                with socket.create_connection((split.hostname, split.port)) as sock:
                    pieces = _pieces(size, load.pieces)
                    delivered.append(sum(_get(sock, target, p, buffer) for p in pieces))
        except (OSError, ServingBenchError) as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, name=f"client-{i}") for i in range(load.clients)]
    cpu_before = time.process_time()
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_before
    if failures:
        raise failures[0]
    print(json.dumps({"bytes": sum(delivered), "wall_s": wall_s, "cpu_s": cpu_s}))


# --- the servers --------------------------------------------------------------------------------


def reference_main(path: Path, port: int) -> None:
    """Serve ``path`` at every URL with aiohttp's FileResponse (sendfile) until stopped."""
    from aiohttp import web  # noqa: PLC0415 - only the reference process needs it

    async def send(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/{tail:.*}", send)
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


def make_package(workdir: Path, size: int) -> tuple[Path, Path]:
    """A package of one random ``size``-byte file, and the public key file it verifies with."""
    source = workdir / "source"
    source.mkdir()
    with (source / "video.bin").open("wb") as out:
        for _ in range(0, size, WRITE_CHUNK_BYTES):
            out.write(os.urandom(WRITE_CHUNK_BYTES))
        out.truncate(size)
    key = new_signing_key()
    public = workdir / "bench.pub"
    public.write_text(public_key_text(key.verify_key) + "\n")
    package = workdir / "bench.tfpkg"
    pack(scan_directory(source), package, kind=PackageKind.CONTENT, name="bench", version=1,
         key=key)  # fmt: skip
    return package, public


@contextlib.contextmanager
def control_plane(workdir: Path, package: Path, public_key: Path) -> Iterator[tuple[str, int]]:
    """``server run`` holding ``package``; the URL signed for the bench device, and its pid."""
    with content_stand(workdir, public_key, client_id="bench-content") as stand:
        sha256 = upload(stand.api, package, stand.token)
        key = content_urls.url_key(load_secret(stand.secret_file))
        expires = int(time.time()) + URL_TTL_S
        yield content_urls.sign_url(stand.api, sha256, DEVICE, expires, key), stand.server.pid


def upload(api: str, package: Path, token: str) -> str:
    """POST the package to /api/v1/packages as an administrator would; its sha256."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(package.stat().st_size),
    }
    with package.open("rb") as body:
        request = urllib.request.Request(  # noqa: S310 - a URL this bench made
            f"{api}/api/v1/packages", data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_S) as response:  # noqa: S310
            sha256: str = json.load(response)["sha256"]
    return sha256


@contextlib.contextmanager
def reference(workdir: Path, path: Path) -> Iterator[tuple[str, int]]:
    """The sendfile reference serving ``path``: its URL and its pid."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.content_serving", "reference", str(path), str(port)]
    server = ManagedProcess("reference", argv, workdir / "reference.log", cwd=ROOT)
    server.start_and_wait_port(HOST, port)
    try:
        yield f"http://{HOST}:{port}/bench.tfpkg", server.pid
    finally:
        server.stop()


# --- measuring ----------------------------------------------------------------------------------


def serve_load(url: str, server_pid: int, size: int, load: Load, downloads: int) -> Served:
    """Run the client process for one load against one server; what it and the server used."""
    server = psutil.Process(server_pid)
    argv = [sys.executable, "-m", "bench.content_serving", "client", url, str(size),
            str(load.clients), str(load.pieces), str(downloads)]  # fmt: skip
    server_before = server.cpu_times()
    done = subprocess.run(  # noqa: S603 - argv built here
        argv, capture_output=True, text=True, check=True, timeout=CLIENT_TIMEOUT_S, cwd=ROOT
    )
    server_cpu_s = sum(server.cpu_times()[:2]) - sum(server_before[:2])
    result = json.loads(done.stdout)
    return Served(result["bytes"], result["wall_s"], server_cpu_s, result["cpu_s"])


def run(*, quick: bool = False) -> str:
    size = (32 if quick else 256) * MB
    downloads = 16 if quick else 32
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="termfleet-bench-content-") as tmp:
        workdir = Path(tmp)
        package, public_key = make_package(workdir, size)
        with (
            control_plane(workdir, package, public_key) as (ours, ours_pid),
            reference(workdir, package) as (theirs, theirs_pid),
        ):
            package_size = package.stat().st_size
            warm = Load("warm-up", 1)
            serve_load(theirs, theirs_pid, package_size, warm, 1)
            serve_load(ours, ours_pid, package_size, warm, 1)
            rows = []
            for load in LOADS:
                count = max(downloads, load.clients)
                # Side by side, best of a few rounds: the machine is shared and its load drifts.
                pairs = [
                    (serve_load(theirs, theirs_pid, package_size, load, count),
                     serve_load(ours, ours_pid, package_size, load, count))
                    for _ in range(rounds)
                ]  # fmt: skip
                best_theirs = max((pair[0] for pair in pairs), key=lambda s: s.gb_per_s)
                best_ours = max((pair[1] for pair in pairs), key=lambda s: s.gb_per_s)
                rows.append((load, best_theirs, best_ours))
    return report(rows, package_size, downloads, rounds)


def report(rows: list[tuple[Load, Served, Served]], size: int, downloads: int, rounds: int) -> str:
    lines = [
        "## Content served over plain HTTP",
        "",
        __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        "",
        (
            f"One package of {size / MB:.0f} MiB, {downloads} downloads per load (at least one"
            f" per client), from the page cache, on loopback; best of {rounds} side-by-side"
            " rounds. Target: ≥ 1 GB/s with at most one core."
        ),
        "",
        (
            "| load | reference GB/s | control plane GB/s | ratio | reference CPU s/GB |"
            " control plane CPU s/GB | control plane cores | client cores | target met |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for load, theirs, ours in rows:
        met = ours.gb_per_s * GB >= TARGET_BYTES_PER_S and ours.cores <= TARGET_CORES
        lines.append(
            f"| {load.name} | {theirs.gb_per_s:.2f} | {ours.gb_per_s:.2f} | "
            f"{ours.gb_per_s / theirs.gb_per_s:.2f} | {theirs.cpu_s_per_gb:.3f} | "
            f"{ours.cpu_s_per_gb:.3f} | {ours.cores:.2f} | "
            f"{ours.client_cpu_s / ours.wall_s:.2f} | {'yes' if met else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller file, fewer downloads")
    commands = parser.add_subparsers(dest="command")
    client = commands.add_parser("client", help="(internal) the client process")
    for name in ("url", "size", "clients", "pieces", "downloads"):
        client.add_argument(name, type=str if name == "url" else int)
    served = commands.add_parser("reference", help="(internal) the sendfile reference server")
    served.add_argument("path", type=Path)
    served.add_argument("port", type=int)
    args = parser.parse_args()
    if args.command == "client":
        load = Load("", args.clients, args.pieces)
        client_main(args.url, args.size, load, args.downloads)
    elif args.command == "reference":
        reference_main(args.path, args.port)
    else:
        print(run(quick=args.quick))


if __name__ == "__main__":
    main()
