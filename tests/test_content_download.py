"""edge.content.download against a real HTTP server in a thread that cuts, lies and stalls.

The server (``RangeHandler``) answers like the control plane's content route: Range and
If-Range, 206 with Content-Range, 416 past the end, ``ETag: "<sha256>"``; a ``Behaviour`` tells
it to misbehave one way or another.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.agent.backoff import Backoff
from edge.content import download as download_module
from edge.content.download import (
    ContentRange,
    DownloadCancelled,
    DownloadError,
    DownloadReason,
    download,
    parse_content_range,
    part_path,
)
from edge.content.download_retry import resume_loop
from edge.protocol.packages import Artifact
from provisioning.ca import init_ca

DATA = random.Random(7).randbytes(300_000)
CHUNK = 16 * 1024
SHUTDOWN_POLL_S = 0.01
TARGET = "/content/v1/packages/{sha}.tfpkg?device=kiosk-1&expires=1700000000&sig=c2ln"


@dataclass
class Behaviour:
    """What the server serves, how it misbehaves; ``requests``: (path, Range, If-Range) each."""

    body: bytes = DATA
    etag: str = ""
    """Defaults to the sha256 of ``body``, quoted."""
    cuts: list[int] = field(default_factory=list)
    """Per request, in order: body bytes sent before the connection is cut."""
    status: int | None = None
    ignore_range: bool = False
    ignore_if_range: bool = False
    range_shift: int = 0
    """A 206 starts this many bytes before the byte asked for."""
    announce: int | None = None
    """A Content-Length other than the body's."""
    close_delimited: bool = False
    stall_after: int | None = None
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.etag = self.etag or f'"{hashlib.sha256(self.body).hexdigest()}"'


class RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BehavingServer

    def do_GET(self) -> None:
        how = self.server.behaviour
        asked, condition = self.headers.get("Range"), self.headers.get("If-Range")
        how.requests.append((self.path, asked, condition))
        if how.status is not None:
            self.send_response(how.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, status = 0, HTTPStatus.OK
        honoured = condition is None or condition == how.etag or how.ignore_if_range
        if asked and honoured and not how.ignore_range:
            match = re.fullmatch(r"bytes=([0-9]+)-", asked)
            assert match is not None, asked
            start = int(match[1])
            if start >= len(how.body):
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{len(how.body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, status = max(0, start - how.range_shift), HTTPStatus.PARTIAL_CONTENT
        self.send_body(status, start)

    def send_body(self, status: HTTPStatus, start: int) -> None:
        how = self.server.behaviour
        payload = how.body[start:]
        self.send_response(status)
        self.send_header("ETag", how.etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{len(how.body) - 1}/{len(how.body)}")
        if how.close_delimited:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(how.announce or len(payload)))
        self.end_headers()
        cut = how.cuts.pop(0) if how.cuts else how.stall_after
        self.wfile.write(payload if cut is None else payload[:cut])
        self.wfile.flush()
        if how.stall_after is not None:
            how.released.wait(timeout=60)
        if cut is not None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: the tests assert on ``Behaviour.requests`` instead."""


class BehavingServer(ThreadingHTTPServer):
    behaviour: Behaviour


@contextmanager
def serving(behaviour: Behaviour, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """The URL of the server's one package while it runs in a thread."""
    server = BehavingServer(("127.0.0.1", 0), RangeHandler)
    server.behaviour = behaviour
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    # A short poll: shutdown() waits for the serving loop to look, 0.5 s by default.
    thread = threading.Thread(
        target=server.serve_forever, args=(SHUTDOWN_POLL_S,), name="range-server", daemon=True
    )
    thread.start()
    scheme = "https" if tls else "http"
    sha = behaviour.etag.strip('"')
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}{TARGET.format(sha=sha)}"
    finally:
        behaviour.released.set()
        server.shutdown()
        server.server_close()
        thread.join()


def artifact(url: str, data: bytes = DATA) -> Artifact:
    return Artifact(url=url, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def capped_backoff() -> Backoff:
    """A Backoff whose every delay is its cap, so the waits asked for are exact."""
    return Backoff(initial_s=1.0, max_s=8.0, uniform=lambda _low, high: high)


def test_plain_download_sends_the_signed_url_verbatim_and_renames_into_place(
    tmp_path: Path,
) -> None:
    behaviour = Behaviour()
    dest = tmp_path / "pkgs" / "cards.tfpkg"
    with serving(behaviour) as url:
        assert download(artifact(url), dest, chunk_bytes=CHUNK) == dest
    assert dest.read_bytes() == DATA
    assert not part_path(dest).exists()
    ((path, asked, condition),) = behaviour.requests
    assert url.endswith(path)
    assert "?device=kiosk-1&expires=1700000000&sig=c2ln" in path
    assert (asked, condition) == (None, None)


def test_a_download_cut_five_times_completes_with_the_exact_bytes(tmp_path: Path) -> None:
    cuts = [40_000, 1, 65_536, 0, 100_000]
    behaviour = Behaviour(cuts=list(cuts))
    dest = tmp_path / "cards.tfpkg"
    waits: list[float] = []
    with serving(behaviour) as url:
        done = resume_loop(
            artifact(url), dest, attempts=2, backoff=capped_backoff(), sleep=waits.append,
            chunk_bytes=CHUNK,
        )  # fmt: skip
    assert done.read_bytes() == DATA
    offsets = [0, 40_000, 40_001, 105_537, 105_537, 205_537]
    sha = behaviour.etag
    assert [(a, c) for _, a, c in behaviour.requests] == [(None, None)] + [
        (f"bytes={offset}-", sha) for offset in offsets[1:]
    ]
    # Progress resets the backoff; the cut that added nothing (0 bytes) doubles the next wait.
    assert waits == [1.0, 1.0, 1.0, 2.0, 1.0]


def test_attempts_bound_the_tries_in_a_row_that_add_nothing(tmp_path: Path) -> None:
    behaviour = Behaviour(cuts=[0] * 10)
    waits: list[float] = []
    with serving(behaviour) as url, pytest.raises(DownloadError) as raised:
        resume_loop(
            artifact(url), tmp_path / "p.tfpkg", attempts=3, backoff=capped_backoff(),
            sleep=waits.append,
        )  # fmt: skip
    assert raised.value.reason is DownloadReason.NETWORK
    assert len(behaviour.requests) == 3
    assert waits == [1.0, 2.0]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(0, len(DATA)), max_size=6))
def test_any_cuts_end_in_the_exact_bytes(tmp_path: Path, cuts: list[int]) -> None:
    dest = tmp_path / f"{sum(1 for _ in tmp_path.iterdir())}" / "p.tfpkg"
    behaviour = Behaviour(cuts=list(cuts))
    with serving(behaviour) as url:
        resume_loop(
            artifact(url), dest, attempts=len(cuts) + 1, backoff=capped_backoff(),
            sleep=lambda _s: None, chunk_bytes=CHUNK,
        )  # fmt: skip
    assert dest.read_bytes() == DATA
    assert len(behaviour.requests) <= len(cuts) + 1


def test_a_new_process_resumes_from_the_part_left_behind(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    part_path(dest).write_bytes(DATA[:123_457])
    behaviour = Behaviour()
    with serving(behaviour) as url:
        download(artifact(url), dest)
    assert dest.read_bytes() == DATA
    assert [(a, c) for _, a, c in behaviour.requests] == [("bytes=123457-", behaviour.etag)]


def test_a_complete_part_is_verified_and_renamed_without_a_request(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    part_path(dest).write_bytes(DATA)
    behaviour = Behaviour()
    with serving(behaviour) as url:
        download(artifact(url), dest)
    assert dest.read_bytes() == DATA
    assert behaviour.requests == []


@pytest.mark.parametrize(
    ("behaviour", "requests"),
    [
        pytest.param(Behaviour(ignore_range=True), 1, id="Range ignored: 200"),
        pytest.param(Behaviour(etag='"v2"'), 1, id="ETag changed: If-Range gives 200"),
        pytest.param(Behaviour(etag='"v2"', ignore_if_range=True), 2, id="206 of another ETag"),
        pytest.param(Behaviour(range_shift=1000), 2, id="206 from another byte"),
    ],
)
def test_a_part_that_cannot_be_continued_restarts_from_zero(
    tmp_path: Path, behaviour: Behaviour, requests: int
) -> None:
    dest = tmp_path / "p.tfpkg"
    part_path(dest).write_bytes(b"\xff" * 50_000)  # garbage: only a restart can make it right
    with serving(behaviour) as url:
        download(artifact(url), dest, chunk_bytes=CHUNK)
    assert dest.read_bytes() == DATA
    asked = [(a, c) for _, a, c in behaviour.requests]
    # A 200 is the whole file at once; a 206 of no use costs one more GET, from zero.
    assert asked == [("bytes=50000-", f'"{artifact(url).sha256}"'), (None, None)][:requests]


def test_a_part_longer_than_the_artifact_is_not_continued_but_replaced(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    part_path(dest).write_bytes(b"\xff" * (len(DATA) + 10))
    behaviour = Behaviour()
    with serving(behaviour) as url:
        download(artifact(url), dest)
    assert dest.read_bytes() == DATA
    assert [(a, c) for _, a, c in behaviour.requests] == [(None, None)]


def test_a_wrong_hash_deletes_the_part_and_the_next_try_starts_over(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    part_path(dest).write_bytes(b"\xff" * 50_000)
    behaviour = Behaviour()
    with serving(behaviour) as url:
        with pytest.raises(DownloadError) as raised:
            download(artifact(url), dest)
        assert raised.value.reason is DownloadReason.HASH_MISMATCH
        assert not part_path(dest).exists()
        assert not dest.exists()
        download(artifact(url), dest)
    assert dest.read_bytes() == DATA
    assert behaviour.requests[-1][1] is None


@pytest.mark.parametrize(
    ("behaviour", "reason", "most_on_disk"),
    [
        (Behaviour(announce=len(DATA) - 10), DownloadReason.SIZE_MISMATCH, 0),
        (Behaviour(announce=len(DATA) + 1), DownloadReason.TOO_LARGE, 0),
        (Behaviour(body=DATA + b"more", close_delimited=True), DownloadReason.TOO_LARGE, len(DATA)),
        (Behaviour(body=DATA + b"x", etag=f'"{artifact("").sha256}"'), DownloadReason.TOO_LARGE, 0),
    ],
    ids=["short Content-Length", "long Content-Length", "longer body", "longer file"],
)
def test_a_body_of_another_size_is_refused_and_the_part_deleted(
    tmp_path: Path, behaviour: Behaviour, reason: DownloadReason, most_on_disk: int
) -> None:
    dest = tmp_path / "p.tfpkg"
    progress: list[int] = []
    with serving(behaviour) as url, pytest.raises(DownloadError) as raised:
        download(artifact(url), dest, progress=lambda done, _total: progress.append(done))
    assert raised.value.reason is reason
    assert not part_path(dest).exists()
    assert not dest.exists()
    # Never more than the artifact's bytes on disk; none at all when a header said so.
    assert max(progress) == most_on_disk


def test_a_server_holding_less_than_the_part_answers_416_a_size_mismatch(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    part_path(dest).write_bytes(DATA[:200_000])
    short = DATA[:150_000]
    shorter = Behaviour(body=short, etag=f'"{artifact("").sha256}"')
    with serving(shorter) as url, pytest.raises(DownloadError) as raised:
        download(artifact(url), dest)
    assert (raised.value.reason, raised.value.status) == (DownloadReason.SIZE_MISMATCH, 416)
    assert not part_path(dest).exists()


def test_a_close_delimited_body_that_ends_early_is_a_cut_and_resumes(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    behaviour = Behaviour(close_delimited=True, cuts=[70_000])
    with serving(behaviour) as url:
        with pytest.raises(DownloadError) as raised:
            download(artifact(url), dest)
        assert raised.value.reason is DownloadReason.NETWORK
        assert part_path(dest).read_bytes() == DATA[:70_000]
        download(artifact(url), dest)
    assert dest.read_bytes() == DATA


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (403, DownloadReason.FORBIDDEN),
        (404, DownloadReason.NOT_FOUND),
        (500, DownloadReason.HTTP_STATUS),
        (401, DownloadReason.HTTP_STATUS),
        (302, DownloadReason.HTTP_STATUS),
    ],
)
def test_error_statuses_keep_the_part_and_rename_nothing(
    tmp_path: Path, status: int, reason: DownloadReason
) -> None:
    dest = tmp_path / "p.tfpkg"
    part_path(dest).write_bytes(DATA[:1000])
    waits: list[float] = []
    with serving(Behaviour(status=status)) as url, pytest.raises(DownloadError) as raised:
        resume_loop(artifact(url), dest, attempts=5, backoff=capped_backoff(), sleep=waits.append)
    assert (raised.value.reason, raised.value.status) == (reason, status)
    assert part_path(dest).read_bytes() == DATA[:1000]
    assert not dest.exists()
    assert waits == []  # not retried: a new URL or a new notice is needed


def test_the_stop_event_cancels_between_chunks_and_keeps_the_part(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    stop = threading.Event()

    def stop_at_second_chunk(done: int, _total: int) -> None:
        if done >= 2 * CHUNK:
            stop.set()

    behaviour = Behaviour()
    with serving(behaviour) as url:
        with pytest.raises(DownloadCancelled):
            download(
                artifact(url), dest, chunk_bytes=CHUNK, stop=stop, progress=stop_at_second_chunk
            )
        assert part_path(dest).read_bytes() == DATA[: 2 * CHUNK]
        with pytest.raises(DownloadCancelled):
            resume_loop(artifact(url), dest, attempts=3, backoff=capped_backoff(), stop=stop)
        download(artifact(url), dest)
    assert dest.read_bytes() == DATA
    assert [a for _, a, _ in behaviour.requests] == [None, f"bytes={2 * CHUNK}-"]


def test_a_stalled_server_times_out_as_a_network_error(tmp_path: Path) -> None:
    dest = tmp_path / "p.tfpkg"
    stalled = Behaviour(stall_after=2 * CHUNK)
    with serving(stalled) as url, pytest.raises(DownloadError) as raised:
        download(artifact(url), dest, timeout_s=0.3, chunk_bytes=CHUNK)
    assert raised.value.reason is DownloadReason.NETWORK
    assert part_path(dest).read_bytes() == DATA[: 2 * CHUNK]


def test_a_refused_connection_is_a_network_error(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"http://127.0.0.1:{port}/p.tfpkg"
    with pytest.raises(DownloadError) as raised:
        download(artifact(url), tmp_path / "p.tfpkg")
    assert raised.value.reason is DownloadReason.NETWORK


def test_progress_rises_to_the_size_and_parts_are_synced_as_they_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "p.tfpkg"
    monkeypatch.setattr(download_module, "FSYNC_EVERY_BYTES", 50_000)
    synced_sizes: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced_sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    calls: list[tuple[int, int]] = []
    with serving(Behaviour()) as url:
        download(artifact(url), dest, chunk_bytes=10_000, progress=lambda *c: calls.append(c))
    assert [done for done, _ in calls] == list(range(0, len(DATA) + 1, 10_000))
    assert {total for _, total in calls} == {len(DATA)}
    assert set(range(50_000, len(DATA) + 1, 50_000)) <= set(synced_sizes)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/p",
        "file:///etc/passwd",
        "http://",
        "http://h:99999/p",
        "http://h/a b",
        "",
        "http://[::1/p",
    ],
)
def test_only_http_urls_with_a_host_are_fetched(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadError) as raised:
        download(artifact(url), tmp_path / "p.tfpkg")
    assert raised.value.reason is DownloadReason.BAD_URL


def test_an_artifact_without_a_hash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as raised:
        download(Artifact(url="http://h/p", size=1), tmp_path / "p.tfpkg")
    assert raised.value.reason is DownloadReason.BAD_ARTIFACT


def test_https_with_the_fleet_ca_and_a_refusal_without_it(tmp_path: Path) -> None:
    files = init_ca(tmp_path / "ca", common_name="test CA", server_names=["127.0.0.1"])
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(files.server_cert, files.server_key)
    dest = tmp_path / "p.tfpkg"
    with serving(Behaviour(), tls) as url:
        with pytest.raises(DownloadError) as raised:
            download(artifact(url), dest)
        assert raised.value.reason is DownloadReason.TLS
        download(artifact(url), dest, ca_file=str(files.ca_cert))
    assert dest.read_bytes() == DATA


@given(st.text())
def test_any_content_range_text_parses_to_a_consistent_range_or_none(text: str) -> None:
    parsed = parse_content_range(text)
    assert parsed is None or parsed.first <= parsed.last < parsed.total


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40))
def test_content_ranges_read_back_exactly_when_consistent(
    first: int, last: int, total: int
) -> None:
    parsed = parse_content_range(f"bytes {first}-{last}/{total}")
    consistent = first <= last < total
    assert parsed == (ContentRange(first, last, total) if consistent else None)
