"""The agent's package download: resumable over HTTP Range, verified, renamed into place whole.

Blocking, for ``asyncio.to_thread``; the standard library's ``http.client`` and ``ssl`` only,
which the agent has loaded anyway (aiohttp would cost the memory-tight agent megabytes).

The bytes go to ``<dest>.part`` (``dest.with_suffix(".part")``), which outlives a cut, a
cancellation and a restart of the agent: the next call asks for the rest with ``Range`` and
``If-Range: "<sha256>"``, hashing the prefix already on disk once. Only a file of the announced
size and sha256 is renamed to ``dest``. A ``.part`` that cannot become the artifact (wrong size,
wrong hash, too long) is deleted, so the next try starts from zero.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import http.client
import os
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from edge.atomic_file import fsync_directory
from edge.protocol.packages import Artifact

from .manifest import ContentError

CHUNK_BYTES = 64 * 1024
"""One read from the socket and one write to the file: small against the agent's memory."""

FSYNC_EVERY_BYTES = 4 * 1024 * 1024
"""Bytes written between two fsyncs of the ``.part``: what a power cut may take back."""

DEFAULT_TIMEOUT_S = 30.0
"""Connecting, and each read: a stalled server is a network error after this long."""

PART_SUFFIX = ".part"

Progress = Callable[[int, int], None]
"""Told (bytes in the ``.part``, the artifact's size) after each chunk; back to 0 on a restart."""

_DIGITS = re.compile(r"[0-9]{1,19}")
_CONTENT_RANGE = re.compile(rf"bytes ({_DIGITS.pattern})-({_DIGITS.pattern})/({_DIGITS.pattern})")
# http.client refuses these in a request target; refused here first, as a bad URL.
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


class DownloadReason(enum.StrEnum):
    """Why a download stopped; only ``network`` is worth retrying with the same ``.part``."""

    BAD_URL = "bad_url"
    BAD_ARTIFACT = "bad_artifact"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    HTTP_STATUS = "http_status"
    NETWORK = "network"
    TLS = "tls"
    SIZE_MISMATCH = "size_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    TOO_LARGE = "too_large"


_POISON = frozenset(
    {DownloadReason.SIZE_MISMATCH, DownloadReason.HASH_MISMATCH, DownloadReason.TOO_LARGE}
)
_STATUS_REASONS: dict[int, DownloadReason] = {
    HTTPStatus.FORBIDDEN: DownloadReason.FORBIDDEN,
    HTTPStatus.NOT_FOUND: DownloadReason.NOT_FOUND,
}


class DownloadError(ContentError):
    """A download that did not produce the artifact; ``status`` is the HTTP status, if any."""

    def __init__(self, reason: DownloadReason, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.reason: DownloadReason = reason
        self.status = status


class DownloadCancelled(ContentError):  # noqa: N818 - a cancellation asked for, not a failure
    """The ``stop`` event was set; the ``.part`` is kept (and synced) for a later resume."""

    reason = "cancelled"


@dataclass(frozen=True, slots=True)
class ContentRange:
    """A ``Content-Range: bytes first-last/total`` header, checked to be self-consistent."""

    first: int
    last: int
    total: int


def parse_content_range(value: str) -> ContentRange | None:
    """The byte range a 206 answer says it carries, or None when the header is unusable."""
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        return None
    first, last, total = (int(group) for group in match.groups())
    return ContentRange(first, last, total) if first <= last < total else None


def part_path(dest: Path) -> Path:
    """Where the bytes of ``dest`` gather until they are verified."""
    return dest.with_suffix(PART_SUFFIX)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    https: bool
    host: str
    port: int | None
    target: str


def _endpoint(url: str) -> _Endpoint:
    msg = f"not an http(s) URL with a host: {url!r}"
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError: a port that is no number, or out of range
    except ValueError as error:
        raise DownloadError(DownloadReason.BAD_URL, msg) from error
    if parts.scheme not in {"http", "https"} or not parts.hostname or _URL_FORBIDDEN.search(url):
        raise DownloadError(DownloadReason.BAD_URL, msg)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Endpoint(parts.scheme == "https", parts.hostname, port, target)


@contextlib.contextmanager
def _network(what: str) -> Iterator[None]:
    """Socket and HTTP failures as DownloadError; the disk's own OSErrors are not wrapped here."""
    try:
        yield
    except ssl.SSLCertVerificationError as error:
        msg = f"{what}: the server's certificate is not trusted: {error.verify_message}"
        raise DownloadError(DownloadReason.TLS, msg) from error
    except (OSError, http.client.HTTPException) as error:
        msg = f"{what}: {error!r}"
        raise DownloadError(DownloadReason.NETWORK, msg) from error


class _PartFile:
    """The ``.part`` being appended to: its length and the running sha256 of what it holds."""

    def __init__(self, file: BinaryIO, progress: Progress | None, total: int) -> None:
        self._file = file
        self._progress = progress
        self._total = total
        self._hash = hashlib.sha256()
        self._unsynced = 0
        self.size = 0

    def resume(self, chunk_bytes: int) -> None:
        """Hash what an earlier call left, once; a file longer than the artifact starts over."""
        self._file.seek(0)
        while chunk := self._file.read(chunk_bytes):
            self._hash.update(chunk)
            self.size += len(chunk)
        if self.size > self._total:
            self.restart()
        self._tell()

    def restart(self) -> None:
        self._file.truncate(0)
        self._hash = hashlib.sha256()
        self.size = 0
        self._tell()

    def append(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)
        self._unsynced += len(chunk)
        if self._unsynced >= FSYNC_EVERY_BYTES:
            self.sync()
        self._tell()

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._unsynced = 0

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def _tell(self) -> None:
        if self._progress is not None:
            self._progress(self.size, self._total)


@dataclass(frozen=True, slots=True)
class _Fetch:
    """One download call's fixed parts."""

    artifact: Artifact
    endpoint: _Endpoint
    context: ssl.SSLContext | None
    timeout_s: float
    chunk_bytes: int
    stop: threading.Event | None

    def check_stop(self, part: _PartFile) -> None:
        if self.stop is not None and self.stop.is_set():
            part.sync()
            msg = f"cancelled with {part.size} of {self.artifact.size} bytes"
            raise DownloadCancelled(msg)

    def request(self, part: _PartFile) -> None:
        """One GET from ``part.size`` on; returns with the ``.part`` complete or restarted."""
        host, port, timeout = self.endpoint.host, self.endpoint.port, self.timeout_s
        connection = (
            http.client.HTTPSConnection(host, port, timeout=timeout, context=self.context)
            if self.context is not None
            else http.client.HTTPConnection(host, port, timeout=timeout)
        )
        try:
            headers: dict[str, str] = {}
            if part.size:
                headers = {"Range": f"bytes={part.size}-", "If-Range": f'"{self.artifact.sha256}"'}
            with _network("requesting"):
                connection.request("GET", self.endpoint.target, headers=headers)
                response = connection.getresponse()
            expected = self.accept(response, part)
            if expected is not None:
                self.copy(response, part, expected)
        finally:
            connection.close()

    def accept(self, response: http.client.HTTPResponse, part: _PartFile) -> int | None:
        """How many body bytes to append, or None after restarting the ``.part`` for a new GET."""
        size = self.artifact.size
        if response.status == HTTPStatus.OK:
            # The whole file: a server that ignored Range, or If-Range found another ETag.
            _check_length(response, size)
            if part.size:
                part.restart()
            return size
        if response.status == HTTPStatus.PARTIAL_CONTENT:
            return self.accept_range(response, part)
        if response.status == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
            msg = f"the server holds fewer than the {part.size} bytes already here, not {size}"
            raise DownloadError(DownloadReason.SIZE_MISMATCH, msg, status=response.status)
        reason = _STATUS_REASONS.get(response.status, DownloadReason.HTTP_STATUS)
        msg = f"the server answered {response.status} {response.reason}"
        raise DownloadError(reason, msg, status=response.status)

    def accept_range(self, response: http.client.HTTPResponse, part: _PartFile) -> int | None:
        header = response.getheader("Content-Range", "")
        ranged = parse_content_range(header)
        if ranged is not None and ranged.total != self.artifact.size:
            raise _size_error(ranged.total, self.artifact.size)
        tag = response.getheader("ETag", f'"{self.artifact.sha256}"')
        elsewhere = ranged is not None and ranged.first != part.size
        if part.size and (elsewhere or tag != f'"{self.artifact.sha256}"'):
            # Bytes from elsewhere or of another version: only a download from zero is safe.
            part.restart()
            return None
        # Requests ask for everything to the end: anything else is a server to distrust.
        if ranged is None or ranged.first != part.size or ranged.last != self.artifact.size - 1:
            msg = f"206 with an unusable Content-Range {header!r} from byte {part.size}"
            raise DownloadError(DownloadReason.HTTP_STATUS, msg, status=response.status)
        _check_length(response, self.artifact.size - part.size)
        return self.artifact.size - part.size

    def copy(self, response: http.client.HTTPResponse, part: _PartFile, expected: int) -> None:
        remaining = expected
        while remaining:
            self.check_stop(part)
            with _network(f"reading at byte {part.size}"):
                chunk = response.read(min(self.chunk_bytes, remaining))
            if not chunk:
                msg = f"the body ended at byte {part.size} of {self.artifact.size}"
                raise DownloadError(DownloadReason.NETWORK, msg)
            part.append(chunk)
            remaining -= len(chunk)
        with _network("reading past the end"):
            beyond = response.read(1)
        if beyond:
            raise _size_error(self.artifact.size + 1, self.artifact.size)


def _check_length(response: http.client.HTTPResponse, expected: int) -> None:
    """Refuse a body whose Content-Length announces another size, before writing any of it."""
    announced = response.getheader("Content-Length")
    # None: close-delimited or chunked, so the body is counted as it comes.
    if announced is not None and announced.strip() != str(expected):
        digits = _DIGITS.fullmatch(announced.strip())
        raise _size_error(int(digits.group()) if digits else -1, expected)


def _size_error(found: int, expected: int) -> DownloadError:
    if found > expected:
        msg = f"the server sends more than the {expected} bytes announced"
        return DownloadError(DownloadReason.TOO_LARGE, msg)
    msg = f"the server's file has {found} bytes, the artifact {expected}"
    return DownloadError(DownloadReason.SIZE_MISMATCH, msg)


def _check_hash(part: _PartFile, artifact: Artifact) -> None:
    # The size needs no check: the loop ends at the artifact's size and never appends beyond.
    if part.hexdigest() != artifact.sha256:
        msg = f"sha256 {part.hexdigest()} of the download is not the artifact's"
        raise DownloadError(DownloadReason.HASH_MISMATCH, msg)


def download(  # noqa: PLR0913 - keywords, each one setting of the download
    artifact: Artifact,
    dest: Path,
    *,
    ca_file: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> Path:
    """``dest`` holding exactly the artifact, fetched or resumed; DownloadError, or cancelled.

    A ``network`` or ``tls`` error, or a cancellation, keeps the ``.part`` for the next call;
    ``size_mismatch``, ``hash_mismatch`` and ``too_large`` delete it. OSErrors of the local disk
    (no space left) propagate as they are.
    """
    endpoint = _endpoint(artifact.url)
    if not artifact.sha256:
        msg = "the artifact names no sha256 to verify"
        raise DownloadError(DownloadReason.BAD_ARTIFACT, msg)
    context = ssl.create_default_context(cafile=ca_file) if endpoint.https else None
    fetch = _Fetch(artifact, endpoint, context, timeout_s, chunk_bytes, stop)
    part_file = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with part_file.open("a+b") as file:
            part = _PartFile(file, progress, artifact.size)
            try:
                part.resume(chunk_bytes)
                # Ends: a GET either completes the .part, raises, or restarts it once from zero,
                # and a GET from zero cannot restart (no Range sent, nothing to distrust).
                while part.size < artifact.size:
                    fetch.check_stop(part)
                    fetch.request(part)
            finally:
                part.sync()
        _check_hash(part, artifact)
    except DownloadError as error:
        if error.reason in _POISON:
            part_file.unlink(missing_ok=True)
        raise
    part_file.replace(dest)
    fsync_directory(dest.parent)
    return dest
