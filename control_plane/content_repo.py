"""The content repository: signed packages kept on disk by sha256, with a database row each.

An upload is streamed to a temporary file in the content directory (never held in memory),
verified against the server's trusted PUBLIC keys (``edge.content.open_package``: signature,
every member, every hash), then renamed to ``<sha256>.tfpkg`` and recorded with its audit entry
in one transaction. The file is in place before its row is committed, so a row never names a
missing file; a crash in between leaves a file without a row, which the next upload of the same
package adopts. The same file uploaded again changes nothing; another file for a kind, name and
version the repository holds is a conflict: a version means one file for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import secrets
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from edge.atomic_file import fsync_directory
from edge.catalog.items import Catalog
from edge.content.manifest import MAX_TOTAL_BYTES, PackageError, PackageKind, PackageReason
from edge.content.package import PACKAGE_SUFFIX, open_package
from edge.content.signing import (
    SignatureFile,
    TrustedKeys,
)
from edge.content.tar_reader import TarReader
from edge.protocol.packages import Artifact

from . import audit, catalog_store, content_urls
from .admin_errors import ALREADY_EXISTS, ConflictError, NotFoundError
from .auth import Actor
from .db.content_models import ContentPackage
from .paging import Page, page_of

DEFAULT_MAX_UPLOAD_BYTES = MAX_TOTAL_BYTES + 64 * 1024 * 1024
"""The format's largest files and room for the manifest and the tar headers of many files."""
MAX_VERSION = 2**63 - 1
"""A BIGINT column holds the version; the format itself sets no ceiling."""
CONTENT_DIR_NAME = "content"
INCOMING_PREFIX = ".upload-"
FILE_MODE = 0o640
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SHA_SHOWN = 12
"""Characters of a sha256 in messages: enough to tell packages apart."""


class ContentRepoError(Exception):
    """An upload the repository refuses; ``reason`` is stable for scripts."""

    reason = "refused"


class UploadTooLargeError(ContentRepoError):
    """The body is larger than the server takes (HTTP 413)."""

    reason = "too_large"


class PackageRefusedError(ContentRepoError):
    """The file is no package signed by a trusted key: the verifier's reason (HTTP 422)."""

    def __init__(self, reason: PackageReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason.value


@dataclass(frozen=True)
class ContentSettings:
    """Where packages are kept, whose signatures count, and the largest upload taken."""

    directory: Path
    trusted: TrustedKeys
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES


@dataclass(frozen=True)
class Stored:
    """An accepted upload's row; ``created`` is False when the same file was there already."""

    package: ContentPackage
    created: bool


@dataclass(frozen=True)
class _Accepted:
    """What verifying a received file established."""

    sha256: str
    size: int
    manifest: dict[str, Any]
    key_id: str
    signature: str
    catalog: Catalog | None
    """The catalog a package of kind catalog holds, to be indexed with its row."""


def default_content_dir(database_url: str) -> Path:
    """``content`` beside a SQLite file, else in the current directory."""
    scheme, _, rest = database_url.partition("://")
    if scheme == "sqlite" and rest and rest != ":memory:":
        return Path(rest).expanduser().parent / CONTENT_DIR_NAME
    return Path(CONTENT_DIR_NAME)


class ContentRepo:
    """The package files of one content directory and their rows in the database."""

    def __init__(self, settings: ContentSettings) -> None:
        self.settings = settings
        settings.directory.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.settings.directory / f"{sha256}{PACKAGE_SUFFIX}"

    async def receive(
        self,
        chunks: AsyncIterable[bytes],
        *,
        declared_size: int | None,
        actor: Actor,
        now: datetime,
    ) -> Stored:
        """Keep the package ``chunks`` make up, verified; ContentRepoError, or ConflictError."""
        if not self.settings.trusted:
            msg = "this control plane trusts no content-signing key (server run --content-key)"
            raise PackageRefusedError(PackageReason.UNKNOWN_KEY, msg)
        if declared_size is not None:
            self._check_size(declared_size)
        incoming = self.settings.directory / f"{INCOMING_PREFIX}{secrets.token_hex(8)}.part"
        try:
            sha256, size = await self._write(incoming, chunks)
            accepted = await asyncio.to_thread(_verify, incoming, self.settings.trusted)
            return await self._keep(incoming, _Accepted(sha256, size, *accepted), actor, now)
        finally:
            incoming.unlink(missing_ok=True)

    def _check_size(self, size: int) -> None:
        if size > self.settings.max_upload_bytes:
            msg = f"a package of more than {self.settings.max_upload_bytes} bytes is not taken"
            raise UploadTooLargeError(msg)

    async def _write(self, path: Path, chunks: AsyncIterable[bytes]) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(os.open(path, _CREATE, FILE_MODE), "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                self._check_size(size)
                digest.update(chunk)
                out.write(chunk)  # into the page cache: quick enough for the event loop
            out.flush()
            await asyncio.to_thread(os.fsync, out.fileno())
        return digest.hexdigest(), size

    async def _keep(
        self, incoming: Path, accepted: _Accepted, actor: Actor, now: datetime
    ) -> Stored:
        try:
            async with in_transaction() as connection:
                same = await ContentPackage.get_or_none(sha256=accepted.sha256, using_db=connection)
                if same is not None:
                    self._place(incoming, accepted.sha256, missing_only=True)
                    return Stored(same, created=False)
                await _refuse_another_file(accepted.manifest, connection)
                # The row first: a refused insert leaves no file behind; the file before the
                # commit: a committed row never names a missing file.
                row = await _create(accepted, actor, now, connection)
                if accepted.catalog is not None:
                    await catalog_store.index(row, accepted.catalog, connection)
                self._place(incoming, accepted.sha256, missing_only=False)
                await audit.record(
                    "package.upload",
                    actor,
                    "package",
                    row.sha256,
                    after=summary_view(row),
                    at=now,
                    using_db=connection,
                )
                return Stored(row, created=True)
        except IntegrityError:
            # Another upload of this package, or of this version, committed first.
            same = await ContentPackage.get_or_none(sha256=accepted.sha256)
            if same is not None:
                return Stored(same, created=False)
            await _refuse_another_file(accepted.manifest, None)
            raise

    def _place(self, incoming: Path, sha256: str, *, missing_only: bool) -> None:
        final = self.path_of(sha256)
        if missing_only and final.exists():
            return
        incoming.replace(final)  # the same bytes if a file is there: its name is their hash
        fsync_directory(final.parent)


def _verify(path: Path, trusted: TrustedKeys) -> tuple[dict[str, Any], str, str, Catalog | None]:
    """A package's manifest (as JSON), key id, signature and catalog, verified with ``trusted``."""
    try:
        verified = open_package(path, trusted)
        catalog = catalog_store.package_catalog(verified)
    except PackageError as exc:
        raise PackageRefusedError(exc.reason, str(exc)) from None
    if verified.manifest.version > MAX_VERSION:
        msg = f"version {verified.manifest.version} is beyond what the repository keeps"
        raise PackageRefusedError(PackageReason.MALFORMED, msg)
    with path.open("rb") as stream:
        reader = TarReader(stream)
        for _ in range(2):  # manifest.json, then manifest.sig: open_package checked both
            member = reader.next_member()
            assert member is not None  # noqa: S101 - open_package read them a moment ago
            data = reader.read_all(member.size)
    signature = msgspec.json.decode(data, type=SignatureFile).signature
    return msgspec.to_builtins(verified.manifest), verified.key_id, signature, catalog


async def _refuse_another_file(
    manifest: dict[str, Any], connection: BaseDBAsyncClient | None
) -> None:
    other = await ContentPackage.get_or_none(
        kind=manifest["kind"],
        name=manifest["name"],
        version=manifest["version"],
        using_db=connection,
    )
    if other is not None:
        msg = (
            f"{manifest['name']} version {manifest['version']} ({manifest['kind']}) is in the"
            f" repository already as another file (sha256 {other.sha256[:SHA_SHOWN]}…, uploaded"
            f" by {other.uploaded_by}): a changed package needs a new version"
        )
        raise ConflictError(msg, ALREADY_EXISTS)


async def _create(
    accepted: _Accepted,
    actor: Actor,
    now: datetime,
    connection: BaseDBAsyncClient,
) -> ContentPackage:
    manifest = accepted.manifest
    return await ContentPackage.create(
        sha256=accepted.sha256,
        size=accepted.size,
        kind=manifest["kind"],
        name=manifest["name"],
        version=manifest["version"],
        key_id=accepted.key_id,
        signature=accepted.signature,
        manifest=manifest,
        uploaded_at=now,
        uploaded_by=actor.name,
        using_db=connection,
    )


# --- reading -----------------------------------------------------------------------------------


async def listed(
    *, kind: PackageKind | None, name: str | None, after: int | None, limit: int
) -> Page[int]:
    """A page of packages, oldest upload first, of one kind or name when given."""
    query = ContentPackage.all()
    if kind is not None:
        query = query.filter(kind=kind.value)
    if name is not None:
        query = query.filter(name=name)
    if after is not None:
        query = query.filter(id__gt=after)
    rows = await query.order_by("id").limit(limit + 1)
    return page_of(rows, limit, lambda row: row.id, summary_view)


async def package(sha256: str) -> ContentPackage:
    """The package with this sha256; NotFoundError if the repository has none."""
    row = await ContentPackage.get_or_none(sha256=sha256)
    if row is None:
        msg = f"no package with sha256 {sha256} in the repository"
        raise NotFoundError(msg)
    return row


def summary_view(row: ContentPackage) -> dict[str, Any]:
    manifest = row.manifest
    return {
        "sha256": row.sha256,
        "size": row.size,
        "kind": row.kind,
        "name": row.name,
        "version": row.version,
        "key_id": row.key_id,
        "description": manifest.get("description", ""),
        "created_at": manifest["created_at"],
        "file_count": len(manifest["files"]),
        "uploaded_at": row.uploaded_at.isoformat(),
        "uploaded_by": row.uploaded_by,
    }


def package_view(row: ContentPackage) -> dict[str, Any]:
    """The summary and every file the manifest lists (path, size, sha256)."""
    return {**summary_view(row), "files": row.manifest["files"]}


def artifact_for(  # noqa: PLR0913 - the package, the device, the URL's parts, a clock seam
    package_row: ContentPackage,
    device_id: str,
    base_url: str,
    key: bytes,
    ttl_s: float,
    *,
    now: float | None = None,
) -> Artifact:
    """What a notice tells ``device_id`` of a package: its signed URL, hash, size, signature."""
    expires = math.ceil((time.time() if now is None else now) + ttl_s)
    return Artifact(
        url=content_urls.sign_url(base_url, package_row.sha256, device_id, expires, key),
        sha256=package_row.sha256,
        size=package_row.size,
        signature=package_row.signature,
        key_id=package_row.key_id,
    )
