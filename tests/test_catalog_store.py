"""Catalog packages in the content repository, on SQLite and PostgreSQL: checked, then indexed.

A package of kind catalog is accepted only with a valid ``catalog.json`` whose id and version are
the package's; its edition and items are written in the upload's transaction. Every refusal
leaves no package row, no edition, no item and no file.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import pytest

from control_plane import catalog_store
from control_plane.admin_errors import NotFoundError
from control_plane.catalog_import import parse_catalog_csv
from control_plane.content_repo import PackageRefusedError
from control_plane.db import database
from control_plane.db.catalog_models import CatalogEdition, CatalogItem
from control_plane.db.content_models import ContentPackage
from edge.catalog import CATALOG_FILE, Catalog, ServiceChannel, ServiceItem, encode_catalog
from edge.content.manifest import PackageKind
from edge.content.package import pack
from edge.content.source import scan_directory
from edge.protocol import PeripheralKind
from tests.test_content_repo import CREATED, KEY, kept_files, make_package, repository, upload

SAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "catalog-sample.csv"
PUBLISHED = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
_fresh = itertools.count()


def sample(name: str = "conghua", version: int = 1) -> Catalog:
    text = SAMPLE.read_text(encoding="utf-8")
    return parse_catalog_csv(text, catalog_id=name, version=version, published_at=PUBLISHED)


def catalog_package(
    directory: Path,
    data: bytes | None,
    *,
    name: str = "conghua",
    version: int = 1,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """A signed package of kind catalog holding ``data`` as catalog.json (none for None)."""
    source = directory / f"src-{next(_fresh)}"
    source.mkdir()
    if data is not None:
        (source / CATALOG_FILE).write_bytes(data)
    for path, content in (extra or {}).items():
        (source / path).write_bytes(content)
    out = directory / f"{name}-{version}-{next(_fresh)}.tfpkg"
    pack(scan_directory(source), out, kind=PackageKind.CATALOG, name=name, version=version,
         key=KEY, created_at=CREATED)  # fmt: skip
    return out


def item_json(**changes: object) -> dict[str, object]:
    item = {"code": "RS-1", "name": "参保证明打印", "department": "rs", "channels": ["kiosk"]}
    return {**item, **changes}


def catalog_json(items: list[dict[str, object]], **changes: object) -> bytes:
    return json.dumps({"v": 1, "catalog_id": "conghua", "version": 1, "items": items, **changes},
                      ensure_ascii=False).encode()  # fmt: skip


async def test_a_catalog_package_is_indexed_with_its_upload(
    database_url: str, tmp_path: Path
) -> None:
    catalog = sample(version=3)
    repo = repository(tmp_path)
    package = catalog_package(tmp_path, encode_catalog(catalog), version=3)
    async with database(database_url):
        stored = await upload(repo, package)
        again = await upload(repo, package)

        edition = await catalog_store.edition("conghua", 3)
        assert (edition.package_id, edition.item_count) == (stored.package.id, 24)
        assert edition.published_at == PUBLISHED
        assert await catalog_store.catalog_of(edition) == catalog
        assert not again.created
        assert await CatalogEdition.all().count() == 1
        assert await CatalogItem.all().count() == 24


async def test_items_are_paged_in_code_order_and_filtered_by_department_and_channel(
    database_url: str, tmp_path: Path
) -> None:
    catalog = sample()
    repo = repository(tmp_path)
    async with database(database_url):
        await upload(repo, catalog_package(tmp_path, encode_catalog(catalog)))
        edition = await catalog_store.edition("conghua", 1)

        pages, after = [], None
        while True:
            page = await catalog_store.items(
                edition, department=None, channel=None, after=after, limit=10
            )
            pages.append([item["code"] for item in page.items])
            if (after := page.next_after) is None:
                break
        rs = await catalog_store.items(
            edition, department="rs", channel=None, after=None, limit=100
        )
        stations = await catalog_store.items(
            edition, department=None, channel=ServiceChannel.STATION, after=None, limit=100
        )
        booth = await catalog_store.items(
            edition, department=None, channel=ServiceChannel.BOOTH, after=None, limit=100
        )

    assert [len(page) for page in pages] == [10, 10, 4]
    assert list(itertools.chain(*pages)) == [item.code for item in catalog.items]
    assert [item["code"] for item in rs.items] == [
        item.code for item in catalog.items if item.department == "rs"
    ]
    assert {item["code"] for item in stations.items} == {
        item.code for item in catalog.items if ServiceChannel.STATION in item.channels
    }
    assert 0 < len(stations.items) < len(catalog.items)
    assert booth.items == []
    first = msgspec.convert(rs.items[0], ServiceItem)
    assert first == next(item for item in catalog.items if item.code == first.code)


async def test_catalogs_are_listed_by_name_with_every_version(
    database_url: str, tmp_path: Path
) -> None:
    repo = repository(tmp_path)
    async with database(database_url):
        for name, version in [("conghua", 1), ("baiyun", 1), ("conghua", 2)]:
            data = encode_catalog(sample(name, version))
            await upload(repo, catalog_package(tmp_path, data, name=name, version=version))
        # A package of another kind is no catalog, whatever its name.
        await upload(repo, make_package(tmp_path, name="conghua", version=7))

        first = await catalog_store.listed(after=None, limit=1)
        rest = await catalog_store.listed(after=first.next_after, limit=5)
        with pytest.raises(NotFoundError, match="no catalog 'conghua' version 9"):
            await catalog_store.edition("conghua", 9)

    assert first.next_after == "baiyun"
    assert [row["name"] for row in first.items + rest.items] == ["baiyun", "conghua"]
    conghua = rest.items[0]
    assert (conghua["latest_version"], conghua["latest_item_count"]) == (2, 24)
    assert [v["version"] for v in conghua["versions"]] == [1, 2]
    assert rest.next_after is None


REFUSED = {
    "no catalog file": (None, "holds its catalog in catalog.json; this one has none"),
    "not JSON": (b"{not json", "catalog.json is no valid catalog (malformed)"),
    "a bad item code": (
        catalog_json([item_json(code="rs 1")]),
        "catalog.json is no valid catalog (bad_code)",
    ),
    "an item twice": (
        catalog_json([item_json(), item_json(name="again")]),
        "(duplicate_code)",
    ),
    "an unknown field": (catalog_json([item_json(colour="red")]), "(malformed)"),
    "a newer format": (catalog_json([], v=2), "(unsupported_format)"),
    "another catalog id": (
        catalog_json([item_json()], catalog_id="baiyun"),
        "holds catalog 'baiyun' version 1, but the package is 'conghua' version 1",
    ),
    "another version": (catalog_json([item_json()], version=2), "'conghua' version 2, but"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_an_invalid_catalog_package_is_refused_and_nothing_kept(
    database_url: str, tmp_path: Path, case: str
) -> None:
    data, message = REFUSED[case]
    repo = repository(tmp_path)
    package = catalog_package(tmp_path, data, extra=None if data else {"card.txt": b"x"})
    async with database(database_url):
        with pytest.raises(PackageRefusedError, match=re.escape(message)) as refused:
            await upload(repo, package)

        assert refused.value.reason == "malformed"
        assert await ContentPackage.all().count() == 0
        assert await CatalogEdition.all().count() == 0
        assert await CatalogItem.all().count() == 0
        assert kept_files(repo) == []


async def test_a_catalog_file_over_the_cap_is_refused_as_too_large(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode_catalog(sample())
    monkeypatch.setattr(catalog_store, "MAX_CATALOG_BYTES", len(data) - 1)
    repo = repository(tmp_path)
    async with database(database_url):
        with pytest.raises(PackageRefusedError, match="more than") as refused:
            await upload(repo, catalog_package(tmp_path, data))
        assert refused.value.reason == "too_large"
        assert kept_files(repo) == []


def test_the_channel_column_finds_one_channel_and_not_a_longer_name() -> None:
    column = catalog_store.channel_column((ServiceChannel.KIOSK, ServiceChannel.WINDOW))
    assert column == ",kiosk,window,"
    assert ",kiosk," in column
    assert ",window," in column
    item = ServiceItem(
        code="A-1",
        name="n",
        department="d",
        channels=(ServiceChannel.KIOSK,),
        needs=(PeripheralKind.A4_PRINTER,),
        effective_from=date(2026, 1, 1),
    )
    assert msgspec.convert(msgspec.to_builtins(item), ServiceItem) == item
