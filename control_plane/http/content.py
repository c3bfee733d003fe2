"""/api/v1/packages: administrators upload, list and show content packages.

Administrators upload packages packed and signed elsewhere (``termfleet content pack``); the
server holds only public keys and refuses, with the verifier's reason, any file they do not
verify. Terminals download at URLs the control plane signed for them (``content_download``);
that route exists only on a server that holds the provisioning secret (``install``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry

from control_plane import content_repo, content_urls
from control_plane.auth import Permission
from control_plane.content_repo import ContentRepo, ContentRepoError, UploadTooLargeError
from control_plane.scope_lookup import require_whole_tree
from edge.content.manifest import NAME_PATTERN, PackageKind

from .admin import cursor_after, only_parameters, page_response, refusals
from .auth import PRINCIPAL, ApiRoute
from .content_download import install_downloads
from .errors import ApiError, invalid_parameter
from .openapi import FileBody
from .params import choice, limit_param
from .request_schemas import Paged, exactly
from .schemas import Cursor, Schema

PACKAGES = "/api/v1/packages"
PACKAGE = "/api/v1/packages/{sha256}"
UPLOAD_CHUNK_BYTES = 256 * 1024
REPOSITORY = web.AppKey("content_repository", ContentRepo)
"""The repository uploads go to: set by ``install``; without it uploads are refused."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


# --- installing ---------------------------------------------------------------------------------


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
    install_downloads(app, repository, url_key=url_key, registry=registry, clock=clock)
