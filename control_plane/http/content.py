"""/api/v1/packages (upload, list, show) and /content/v1 (terminals download with Range).

Administrators upload packages packed and signed elsewhere (``termfleet content pack``); the
server holds only public keys and refuses, with the verifier's reason, any file they do not
verify. Terminals have no API token: they download at a URL the control plane signed for them
(``content_urls``), outside /api/v1, with Range and If-Range so that a cut download resumes.
The download route exists only on a server that holds the provisioning secret (``install``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, BinaryIO

import msgspec
from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry, Counter

from control_plane import content_repo, content_urls
from control_plane.auth import Permission
from control_plane.content_repo import ContentRepo, ContentRepoError, UploadTooLargeError
from control_plane.content_urls import ByteRange, UnsatisfiableRangeError
from control_plane.db.content_models import ContentPackage
from control_plane.scope_lookup import require_whole_tree
from edge.content.manifest import NAME_PATTERN, PackageKind
from monitoring.metrics import CONTENT_BYTES_SENT, CONTENT_DOWNLOADS

from .admin import cursor_after, only_parameters, page_response, refusals
from .auth import PRINCIPAL, ApiRoute
from .errors import ApiError, invalid_parameter
from .openapi import FileBody
from .params import choice, limit_param
from .request_schemas import Paged, exactly
from .schemas import Cursor, Schema

log = logging.getLogger(__name__)

PACKAGES = "/api/v1/packages"
PACKAGE = "/api/v1/packages/{sha256}"
DOWNLOAD = f"{content_urls.DOWNLOAD_PREFIX}{{sha256:[0-9a-f]{{64}}}}{content_urls.PACKAGE_SUFFIX}"
UPLOAD_CHUNK_BYTES = 256 * 1024
SEND_CHUNK_BYTES = 1024 * 1024
"""Chunks of the copy that stands in for sendfile where a transport has none (TLS)."""
REPOSITORY = web.AppKey("content_repository", ContentRepo)
"""The repository uploads go to: set by ``install``; without it uploads are refused."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RESULTS = ("complete", "partial", "refused", "not_found", "unsatisfiable", "cut")


# --- shapes, for the OpenAPI document -----------------------------------------------------------


class PackageFile(Schema):
    path: str
    size: int
    sha256: str


class PackageSummary(Schema):
    """A package the repository keeps, as its listing shows it."""

    sha256: Annotated[str, msgspec.Meta(description="of the package file: its name and ETag")]
    size: int
    kind: PackageKind
    name: str
    version: int
    key_id: Annotated[str, msgspec.Meta(description="the public key its signature verified with")]
    description: str
    created_at: Annotated[datetime, msgspec.Meta(description="when it was packed")]
    file_count: int
    uploaded_at: datetime
    uploaded_by: Annotated[str, msgspec.Meta(description="the name of the uploading token")]


class Package(PackageSummary):
    """A package with every file its signed manifest lists."""

    files: list[PackageFile]


class PackagePage(Schema):
    items: list[PackageSummary]
    next_cursor: Cursor


class PackageParameters(Paged):
    kind: PackageKind | None = None
    name: Annotated[str, msgspec.Meta(pattern=exactly(NAME_PATTERN))] | None = None


UPLOAD_BODY = FileBody(
    media_type="application/octet-stream",
    refused="the file is no package signed by a key this server trusts: `details.reason` is the"
    " verifier's (bad_signature, unknown_key, hash_mismatch, malformed, …); nothing is kept",
    unchanged="the same file was in the repository already: nothing changed",
)
ROUTES = (
    ApiRoute(
        "GET",
        PACKAGES,
        Permission.CONTENT_READ,
        "the packages in the content repository, oldest upload first: `?kind=`, `?name=`",
        answer=PackagePage,
        query=PackageParameters,
    ),
    ApiRoute(
        "POST",
        PACKAGES,
        Permission.CONTENT_PUBLISH,
        "upload a package file (`termfleet content pack`) as the body; it is verified against"
        " the server's trusted public keys and kept by its sha256",
        answer=Package,
        status=201,
        body=UPLOAD_BODY,
        conflict="another file of the same kind, name and version is in the repository",
    ),
    ApiRoute(
        "GET",
        PACKAGE,
        Permission.CONTENT_READ,
        "one package, by its file's sha256, with every file its manifest lists",
        answer=Package,
    ),
)


def handlers(clock: Callable[[], datetime]) -> dict[str, Handler]:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return await upload(clock, request)
        return await list_packages(request)

    return {PACKAGES: refusals(dispatch), PACKAGE: refusals(show_package)}


# --- the API ------------------------------------------------------------------------------------


async def list_packages(request: web.Request) -> web.Response:
    only_parameters(request, {"kind", "name"})
    limit = limit_param(request)
    kind = choice(request, "kind", {kind.value for kind in PackageKind})
    name = request.query.get("name")
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        msg = f"name must be a package name ({NAME_PATTERN}), not {name!r}"
        raise invalid_parameter(msg, parameter="name")
    page = await content_repo.listed(
        kind=PackageKind(kind) if kind else None,
        name=name,
        after=cursor_after(request, int),
        limit=limit,
    )
    return page_response(page)


async def upload(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _no_parameters(request)
    principal = request[PRINCIPAL]
    require_whole_tree(principal, "a content package")
    repository = request.app.get(REPOSITORY)
    if repository is None:
        refused = ContentRepoError("this control plane keeps no content repository")
        raise _api_error(refused, "unknown_key")
    try:
        stored = await repository.receive(
            request.content.iter_chunked(UPLOAD_CHUNK_BYTES),
            declared_size=request.content_length,
            actor=principal.actor,
            now=clock(),
        )
    except ContentRepoError as exc:
        raise _api_error(exc, exc.reason) from None
    status = 201 if stored.created else 200
    return web.json_response(content_repo.package_view(stored.package), status=status)


def _api_error(exc: ContentRepoError, reason: str) -> ApiError:
    if isinstance(exc, UploadTooLargeError):
        return ApiError(413, "request_entity_too_large", str(exc))
    return ApiError(422, "package_refused", str(exc), details={"reason": reason})


async def show_package(request: web.Request) -> web.Response:
    _no_parameters(request)
    sha256 = request.match_info["sha256"]
    if not content_urls.SHA256_HEX.fullmatch(sha256):
        msg = f"sha256 must be 64 lowercase hex digits, not {sha256!r}"
        raise invalid_parameter(msg, parameter="sha256")
    return web.json_response(content_repo.package_view(await content_repo.package(sha256)))


def _no_parameters(request: web.Request) -> None:
    if request.query:
        name = min(request.query)
        msg = f"{name} is not a parameter of this route; it takes none"
        raise invalid_parameter(msg, parameter=name)


# --- downloads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Downloads:
    """What the download route needs: the files, the URL key, its counters and a clock."""

    repository: ContentRepo
    url_key: bytes
    results: Counter
    bytes_sent: Counter
    clock: Callable[[], float] = time.time


DOWNLOADS = web.AppKey("content_downloads", Downloads)


def install(
    app: web.Application,
    repository: ContentRepo,
    *,
    url_key: bytes | None,
    registry: CollectorRegistry,
    clock: Callable[[], float] = time.time,
) -> None:
    """Serve uploads into ``repository``, and downloads at signed URLs when there is a key."""
    app[REPOSITORY] = repository
    if url_key is None:
        return  # no provisioning secret: no URL could be checked, so none is served
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
