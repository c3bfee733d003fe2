"""/content/v1: terminals download package files at signed URLs, whole or with Range.

Terminals have no API token: they download at a URL the control plane signed for them
(``content_urls``), outside /api/v1, with Range and If-Range so that a cut download resumes.
Every answer is counted by result; ``install_downloads`` adds the route and its counters.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry, Counter

from control_plane import content_urls
from control_plane.content_repo import ContentRepo
from control_plane.content_urls import ByteRange, UnsatisfiableRangeError
from control_plane.db.content_models import ContentPackage
from monitoring.metrics import CONTENT_BYTES_SENT, CONTENT_DOWNLOADS

from .errors import ApiError

DOWNLOAD = f"{content_urls.DOWNLOAD_PREFIX}{{sha256:[0-9a-f]{{64}}}}{content_urls.PACKAGE_SUFFIX}"
SEND_CHUNK_BYTES = 1024 * 1024
"""Chunks of the copy that stands in for sendfile where a transport has none (TLS)."""

RESULTS = ("complete", "partial", "refused", "not_found", "unsatisfiable", "cut")
"""The downloads counter's ``result`` values, each exported from zero before the first answer."""


@dataclass(frozen=True)
class Downloads:
    """What the download route needs: the files, the URL key, its counters and a clock."""

    repository: ContentRepo
    url_key: bytes
    results: Counter
    bytes_sent: Counter
    clock: Callable[[], float] = time.time


DOWNLOADS = web.AppKey("content_downloads", Downloads)


def install_downloads(
    app: web.Application,
    repository: ContentRepo,
    *,
    url_key: bytes,
    registry: CollectorRegistry,
    clock: Callable[[], float] = time.time,
) -> None:
    """Serve ``repository``'s files at URLs signed with ``url_key``; count them in ``registry``."""
    results = Counter(
        CONTENT_DOWNLOADS.name.removesuffix("_total"),
        CONTENT_DOWNLOADS.help,
        CONTENT_DOWNLOADS.labels,
        registry=registry,
    )
    for result in RESULTS:
        results.labels(result)
    bytes_sent = Counter(
        CONTENT_BYTES_SENT.name.removesuffix("_total"), CONTENT_BYTES_SENT.help, registry=registry
    )
    app[DOWNLOADS] = Downloads(repository, url_key, results, bytes_sent, clock)
    app.router.add_get(DOWNLOAD, download)


async def download(request: web.Request) -> web.StreamResponse:
    """A package file at a URL signed for a device, whole or the byte range asked for."""
    downloads = request.app[DOWNLOADS]
    sha256 = request.match_info["sha256"]
    query = request.query
    refusal = content_urls.check(
        sha256,
        query.get("device", ""),
        query.get("expires", ""),
        query.get("sig", ""),
        downloads.url_key,
        downloads.clock(),
    )
    if refusal is not None:
        downloads.results.labels("refused").inc()
        msg = f"this download URL is refused ({refusal}): ask the control plane for a new one"
        raise ApiError(403, "url_refused", msg, details={"reason": refusal.value})
    if not await ContentPackage.exists(sha256=sha256):
        downloads.results.labels("not_found").inc()
        msg = f"no package with sha256 {sha256} in the repository"
        raise ApiError(404, "not_found", msg)
    path = downloads.repository.path_of(sha256)
    stream = await asyncio.to_thread(path.open, "rb")
    try:
        return await _send_package(request, downloads, stream, sha256)
    finally:
        await asyncio.to_thread(stream.close)


async def _send_package(
    request: web.Request, downloads: Downloads, stream: BinaryIO, sha256: str
) -> web.StreamResponse:
    size = os.fstat(stream.fileno()).st_size
    etag = f'"{sha256}"'
    headers = {str(hdrs.ETAG): etag, str(hdrs.ACCEPT_RANGES): "bytes"}
    try:
        wanted = content_urls.byte_range(
            request.headers.get(hdrs.RANGE), request.headers.get(hdrs.IF_RANGE), etag, size
        )
    except UnsatisfiableRangeError as exc:
        downloads.results.labels("unsatisfiable").inc()
        headers[str(hdrs.CONTENT_RANGE)] = f"bytes */{size}"
        raise ApiError(416, "range_not_satisfiable", str(exc), headers) from None
    part = wanted or ByteRange(0, size, size)
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    response.content_type = "application/octet-stream"
    response.content_length = part.length
    if wanted:
        response.headers[hdrs.CONTENT_RANGE] = wanted.content_range()
    if request.method == hdrs.METH_HEAD:  # the headers alone: no download to count
        await response.prepare(request)
        return response
    try:
        await response.prepare(request)
        if part.length:
            await _copy(request, response, stream, part)
        await response.write_eof()
    except ConnectionError:
        # The terminal went away mid-way; it resumes with a Range from what it has.
        downloads.results.labels("cut").inc()
        return response
    downloads.results.labels("partial" if wanted else "complete").inc()
    downloads.bytes_sent.inc(part.length)
    return response


async def _copy(
    request: web.Request, response: web.StreamResponse, stream: BinaryIO, part: ByteRange
) -> None:
    """The bytes of ``part`` after the headers: the kernel's sendfile, else a copy in chunks."""
    transport = request.transport
    if transport is None:
        msg = "the connection closed before the package was sent"
        raise ConnectionResetError(msg)
    try:
        # As aiohttp's FileResponse sends: the headers are out once the response is prepared.
        await asyncio.get_running_loop().sendfile(transport, stream, part.start, part.length)
    except NotImplementedError:
        await _copy_in_chunks(response, stream, part)


async def _copy_in_chunks(response: web.StreamResponse, stream: BinaryIO, part: ByteRange) -> None:
    position, left = part.start, part.length
    while left:
        chunk = await asyncio.to_thread(
            os.pread, stream.fileno(), min(left, SEND_CHUNK_BYTES), position
        )
        if not chunk:
            msg = "the package file is shorter than it was a moment ago"
            raise OSError(msg)
        await response.write(chunk)
        position += len(chunk)
        left -= len(chunk)
