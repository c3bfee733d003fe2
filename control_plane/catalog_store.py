"""Service-item catalogs (事项清单) as the control plane indexes them from catalog packages.

A package of kind catalog carries its catalog in ``files/catalog.json`` (``CATALOG_FILE``). The
content repository calls ``package_catalog`` on every verified upload: a catalog package whose
file is missing, too large, invalid or names another catalog or version than the package is
refused (``PackageError``, so the upload answers 422 with the reason), and ``index`` then writes
its edition and items in the upload's own transaction. Everything else here reads them back.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient

from edge.catalog.items import (
    CATALOG_FILE,
    Catalog,
    CatalogError,
    ServiceChannel,
    ServiceItem,
    decode_catalog,
)
from edge.content.manifest import FileEntry, PackageError, PackageKind, PackageReason
from edge.content.package import FILES_PREFIX, VerifiedPackage
from edge.content.tar_reader import TarReader

from .admin_errors import NotFoundError
from .db.catalog_models import CatalogEdition, CatalogItem
from .db.content_models import ContentPackage
from .paging import Page, page_of

MAX_CATALOG_BYTES = 32 * 1024 * 1024
"""A catalog file this large holds some 100,000 items: more than a province publishes."""
INSERT_BATCH = 500
"""Items per INSERT: below SQLite's 32,766 bound variables, and few round trips."""


def package_catalog(package: VerifiedPackage) -> Catalog | None:
    """The catalog a verified package of kind catalog holds; None for another kind.

    PackageError (``malformed``, ``too_large``) when there is no valid catalog file in it, or
    when the file's catalog id and version are not the package's name and version.
    """
    manifest = package.manifest
    if manifest.kind is not PackageKind.CATALOG:
        return None
    entry = next((entry for entry in manifest.files if entry.path == CATALOG_FILE), None)
    if entry is None:
        msg = f"a package of kind catalog holds its catalog in {CATALOG_FILE}; this one has none"
        raise PackageError(PackageReason.MALFORMED, msg)
    if entry.size > MAX_CATALOG_BYTES:
        msg = f"{CATALOG_FILE} has {entry.size} bytes, more than {MAX_CATALOG_BYTES}"
        raise PackageError(PackageReason.TOO_LARGE, msg)
    try:
        catalog = decode_catalog(_member(package, entry))
    except CatalogError as exc:
        msg = f"{CATALOG_FILE} is no valid catalog ({exc.reason}): {exc}"
        raise PackageError(PackageReason.MALFORMED, msg) from None
    if (catalog.catalog_id, catalog.version) != (manifest.name, manifest.version):
        msg = (
            f"{CATALOG_FILE} holds catalog {catalog.catalog_id!r} version {catalog.version}, but"
            f" the package is {manifest.name!r} version {manifest.version}: they must agree"
        )
        raise PackageError(PackageReason.MALFORMED, msg)
    return catalog


def _member(package: VerifiedPackage, entry: FileEntry) -> bytes:
    """The bytes of one file of ``package``, checked against its manifest entry once more."""
    wanted = FILES_PREFIX + entry.path
    with package.path.open("rb") as stream:
        reader = TarReader(stream)
        while (member := reader.next_member()) is not None:
            if member.name != wanted:
                reader.copy(member.size, lambda _chunk: None)
                continue
            data = reader.read_all(member.size)
            if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                msg = f"{wanted} changed since the package was verified"
                raise PackageError(PackageReason.HASH_MISMATCH, msg)
            return data
    msg = f"{wanted} is missing"  # open_package found it a moment ago: the file changed since
    raise PackageError(PackageReason.MALFORMED, msg)


async def index(package: ContentPackage, catalog: Catalog, connection: BaseDBAsyncClient) -> None:
    """Write the edition and items of ``catalog``, kept in ``package``, within ``connection``."""
    edition = await CatalogEdition.create(
        package=package,
        name=catalog.catalog_id,
        version=catalog.version,
        item_count=len(catalog.items),
        published_at=catalog.published_at,
        using_db=connection,
    )
    rows = [
        CatalogItem(
            edition=edition,
            code=item.code,
            department=item.department,
            channels=channel_column(item.channels),
            item=msgspec.to_builtins(item),
        )
        for item in catalog.items  # sorted by code: ids follow code order
    ]
    await CatalogItem.bulk_create(rows, batch_size=INSERT_BATCH, using_db=connection)


def channel_column(channels: tuple[ServiceChannel, ...]) -> str:
    """The ``channels`` column: each value between commas, so one is found with ``,value,``."""
    return "," + "".join(f"{channel.value}," for channel in channels)


# --- reading -----------------------------------------------------------------------------------


async def listed(*, after: str | None, limit: int) -> Page[str]:
    """A page of catalogs by name, each with every version held and its item count."""
    names = CatalogEdition.all().distinct().order_by("name")
    if after is not None:
        names = names.filter(name__gt=after)
    page_names: list[str] = await names.limit(limit + 1).values_list("name", flat=True)  # type: ignore[assignment]
    editions = await (
        CatalogEdition.filter(name__in=page_names[:limit])
        .order_by("name", "version")
        .select_related("package")
    )
    by_name: dict[str, list[CatalogEdition]] = {}
    for edition in editions:
        by_name.setdefault(edition.name, []).append(edition)
    return page_of(page_names, limit, lambda name: name, lambda name: _catalog_view(by_name[name]))


async def edition(name: str, version: int) -> CatalogEdition:
    """The edition ``version`` of catalog ``name``; NotFoundError when the repository has none."""
    found = await CatalogEdition.get_or_none(name=name, version=version).select_related("package")
    if found is None:
        msg = f"no catalog {name!r} version {version} in the repository"
        raise NotFoundError(msg)
    return found


async def items(
    found: CatalogEdition,
    *,
    department: str | None,
    channel: ServiceChannel | None,
    after: int | None,
    limit: int,
) -> Page[int]:
    """A page of the edition's items in code order, of one department or channel when given."""
    query = CatalogItem.filter(edition_id=found.id)
    if department is not None:
        query = query.filter(department=department)
    if channel is not None:
        query = query.filter(channels__contains=f",{channel.value},")
    if after is not None:
        query = query.filter(id__gt=after)
    rows = await query.order_by("id").limit(limit + 1)
    return page_of(rows, limit, lambda row: row.id, lambda row: row.item)


async def catalog_of(found: CatalogEdition) -> Catalog:
    """The whole catalog of an edition, as the package's file has it (for tests and tools)."""
    rows = await CatalogItem.filter(edition_id=found.id).order_by("id")
    return Catalog(
        catalog_id=found.name,
        version=found.version,
        published_at=found.published_at,
        items=tuple(msgspec.convert(row.item, ServiceItem) for row in rows),
    )


def edition_view(found: CatalogEdition) -> dict[str, Any]:
    """One version of a catalog as listings show it: its count, package and publication."""
    package: ContentPackage = found.package
    return {
        "version": found.version,
        "item_count": found.item_count,
        "published_at": found.published_at.isoformat() if found.published_at else None,
        "sha256": package.sha256,
        "uploaded_at": package.uploaded_at.isoformat(),
        "uploaded_by": package.uploaded_by,
    }


def _catalog_view(editions: list[CatalogEdition]) -> dict[str, Any]:
    latest = editions[-1]
    return {
        "name": latest.name,
        "latest_version": latest.version,
        "latest_item_count": latest.item_count,
        "versions": [edition_view(found) for found in editions],
    }
