"""The content repository on SQLite and PostgreSQL: verified uploads kept by sha256, once each.

Packages are packed here with a test key; the hostile ones are packed and then tampered with,
so that each refusal is the verifier's own reason. After every refusal the database holds no
row and the content directory no file, not even a partial one.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from control_plane import content_repo, content_urls
from control_plane.admin_errors import ConflictError
from control_plane.auth import Actor
from control_plane.cli.server import DEFAULT_MAX_UPLOAD_MIB, MIB
from control_plane.content_repo import (
    ContentRepo,
    ContentSettings,
    PackageRefusedError,
    UploadTooLargeError,
    artifact_for,
)
from control_plane.db import database
from control_plane.db.content_models import ContentPackage
from control_plane.db.models import AuditEntry
from control_plane.paging import Page
from edge.catalog import CATALOG_FILE, Catalog, encode_catalog
from edge.content.manifest import PackageKind
from edge.content.package import pack
from edge.content.signing import (
    ContentKeyError,
    public_key_text,
    read_trusted_keys,
    trusted_keys,
)
from edge.content.source import scan_directory

KEY = SigningKey(bytes(range(32)))
STRANGER = SigningKey(bytes(range(200, 232)))
TRUSTED = trusted_keys([public_key_text(KEY.verify_key)])
CREATED = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
ACTOR = Actor(7, "publisher")
FILE_TEXT = b"GUIDE-CARD-" + bytes(range(256)) * 8
_fresh = itertools.count()


def make_package(
    directory: Path,
    *,
    name: str = "guide",
    version: int = 1,
    key: SigningKey = KEY,
    kind: PackageKind = PackageKind.CONTENT,
    text: bytes = FILE_TEXT,
) -> Path:
    """A package of two files, signed with ``key``, in a file of its own under ``directory``."""
    source = directory / f"src-{next(_fresh)}"
    (source / "cards").mkdir(parents=True)
    (source / "cards" / "card.bin").write_bytes(text)
    (source / "notice.txt").write_bytes("请携带身份证原件。\n".encode())
    if kind is PackageKind.CATALOG:  # a catalog package is refused without its catalog file
        catalog = Catalog(catalog_id=name, version=version)
        (source / CATALOG_FILE).write_bytes(encode_catalog(catalog))
    out = directory / f"{name}-{version}-{next(_fresh)}.tfpkg"
    pack(scan_directory(source), out, kind=kind, name=name, version=version, key=key,
         created_at=CREATED)  # fmt: skip
    return out


def tampered(directory: Path, reason: str) -> Path:
    """A package the verifier refuses with ``reason``."""
    if reason == "unknown_key":
        return make_package(directory, key=STRANGER)
    package = make_package(directory)
    data = bytearray(package.read_bytes())
    if reason == "bad_signature":
        data[data.index(b'"name":"guide"') + 9] ^= 0x01  # guide → gu\x68de: signed bytes changed
    elif reason == "hash_mismatch":
        data[data.index(FILE_TEXT) + 100] ^= 0x01
    elif reason == "truncated":
        data = data[: data.index(FILE_TEXT) + 50]
    elif reason == "malformed":
        data = bytearray(b"not a package at all\n" * 100)
    elif reason == "unlisted_file":
        data = bytearray(_with_extra_member(bytes(data)))
    package.write_bytes(bytes(data))
    return package


def _with_extra_member(package: bytes) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(package)) as tar,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as copy,
    ):
        for member in tar.getmembers():
            copy.addfile(member, tar.extractfile(member))
        extra = tarfile.TarInfo("files/extra.txt")
        extra.size = 5
        copy.addfile(extra, io.BytesIO(b"extra"))
    return out.getvalue()


REFUSALS = ["bad_signature", "unknown_key", "hash_mismatch", "truncated", "malformed",
            "unlisted_file"]  # fmt: skip


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def repository(tmp_path: Path, **settings: object) -> ContentRepo:
    fields: dict[str, object] = {"trusted": TRUSTED, **settings}
    return ContentRepo(ContentSettings(tmp_path / "content", **fields))  # type: ignore[arg-type]


async def upload(repo: ContentRepo, package: Path, *, declared: bool = True) -> content_repo.Stored:
    data = await asyncio.to_thread(package.read_bytes)
    size = len(data) if declared else None
    return await repo.receive(chunks(data), declared_size=size, actor=ACTOR, now=NOW)


def kept_files(repo: ContentRepo) -> list[str]:
    return sorted(path.name for path in repo.settings.directory.iterdir())


# --- uploads ------------------------------------------------------------------------------------


async def test_an_upload_is_verified_kept_by_its_sha256_recorded_and_audited(
    database_url: str, tmp_path: Path
) -> None:
    repo = repository(tmp_path)
    package = make_package(tmp_path, version=3)
    async with database(database_url):
        stored = await upload(repo, package)

        row = stored.package
        assert stored.created
        assert (row.kind, row.name, row.version, row.size) == (
            "content",
            "guide",
            3,
            package.stat().st_size,
        )
        assert row.uploaded_by == "publisher"
        assert row.key_id == next(iter(TRUSTED))
        assert [f["path"] for f in row.manifest["files"]] == ["cards/card.bin", "notice.txt"]
        assert kept_files(repo) == [f"{row.sha256}.tfpkg"]
        assert repo.path_of(row.sha256).read_bytes() == package.read_bytes()
        entries = await AuditEntry.filter(action="package.upload")
        assert [(e.actor_name, e.actor_token_id, e.target_id) for e in entries] == [
            ("publisher", 7, row.sha256)
        ]
        assert entries[0].after == content_repo.summary_view(row)


async def test_the_same_file_again_changes_nothing(database_url: str, tmp_path: Path) -> None:
    repo = repository(tmp_path)
    package = make_package(tmp_path)
    async with database(database_url):
        first = await upload(repo, package)
        again = await upload(repo, package, declared=False)

        assert not again.created
        assert again.package.id == first.package.id
        assert await ContentPackage.all().count() == 1
        assert await AuditEntry.filter(action="package.upload").count() == 1
        assert kept_files(repo) == [f"{first.package.sha256}.tfpkg"]


async def test_another_file_for_a_version_held_is_a_conflict_naming_it(
    database_url: str, tmp_path: Path
) -> None:
    repo = repository(tmp_path)
    async with database(database_url):
        first = await upload(repo, make_package(tmp_path, version=2))
        with pytest.raises(ConflictError, match=r"guide version 2 \(content\) is in the repo"):
            await upload(repo, make_package(tmp_path, version=2, text=b"changed"))

        assert await ContentPackage.all().count() == 1
        assert kept_files(repo) == [f"{first.package.sha256}.tfpkg"]
        # The same name as another kind, or the next version, is another package.
        await upload(repo, make_package(tmp_path, version=2, kind=PackageKind.CATALOG))
        await upload(repo, make_package(tmp_path, version=3, text=b"changed"))
        assert await ContentPackage.all().count() == 3


@pytest.mark.parametrize("reason", REFUSALS)
async def test_a_refused_package_leaves_no_row_and_no_file(
    database_url: str, tmp_path: Path, reason: str
) -> None:
    repo = repository(tmp_path)
    async with database(database_url):
        with pytest.raises(PackageRefusedError) as refused:
            await upload(repo, tampered(tmp_path, reason))

        assert refused.value.reason == reason
        assert await ContentPackage.all().count() == 0
        assert await AuditEntry.filter(action="package.upload").count() == 0
        assert kept_files(repo) == []


async def test_a_server_that_trusts_no_key_refuses_every_upload(
    database_url: str, tmp_path: Path
) -> None:
    repo = repository(tmp_path, trusted={})
    async with database(database_url):
        with pytest.raises(PackageRefusedError, match="trusts no content-signing key") as refused:
            await upload(repo, make_package(tmp_path))

        assert refused.value.reason == "unknown_key"
        assert kept_files(repo) == []


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "streamed"])
async def test_an_upload_over_the_cap_is_refused_whether_declared_or_streamed(
    database_url: str,
    tmp_path: Path,
    declared: bool,  # noqa: FBT001 - a parameter of the test
) -> None:
    package = make_package(tmp_path)
    repo = repository(tmp_path, max_upload_bytes=package.stat().st_size - 1)
    async with database(database_url):
        with pytest.raises(UploadTooLargeError):
            await upload(repo, package, declared=declared)

        assert kept_files(repo) == []
        fits = repository(tmp_path, max_upload_bytes=package.stat().st_size)
        assert (await upload(fits, package, declared=declared)).created


async def test_a_file_left_without_its_row_is_adopted_and_a_lost_file_restored(
    database_url: str, tmp_path: Path
) -> None:
    repo = repository(tmp_path)
    package = make_package(tmp_path)
    async with database(database_url):
        # A crash between the rename and the commit leaves the file without its row.
        stored = await upload(repo, package)
        await ContentPackage.all().delete()
        assert (await upload(repo, package)).created

        repo.path_of(stored.package.sha256).unlink()
        assert not (await upload(repo, package)).created
        assert repo.path_of(stored.package.sha256).read_bytes() == package.read_bytes()


# --- reading ------------------------------------------------------------------------------------


async def test_listing_filters_by_kind_and_name_and_pages_in_upload_order(
    database_url: str, tmp_path: Path
) -> None:
    repo = repository(tmp_path)
    async with database(database_url):
        for name, version, kind in [
            ("guide", 1, PackageKind.CONTENT),
            ("items", 1, PackageKind.CATALOG),
            ("guide", 2, PackageKind.CONTENT),
            ("pad-fw", 9, PackageKind.FIRMWARE),
        ]:
            await upload(repo, make_package(tmp_path, name=name, version=version, kind=kind))

        def keys(page: Page[int]) -> list[tuple[str, int]]:
            return [(item["name"], item["version"]) for item in page.items]

        first = await content_repo.listed(kind=None, name=None, after=None, limit=3)
        rest = await content_repo.listed(kind=None, name=None, after=first.next_after, limit=3)
        assert keys(first) == [("guide", 1), ("items", 1), ("guide", 2)]
        assert (keys(rest), rest.next_after) == ([("pad-fw", 9)], None)
        guides = await content_repo.listed(kind=None, name="guide", after=None, limit=10)
        assert keys(guides) == [("guide", 1), ("guide", 2)]
        catalogs = await content_repo.listed(
            kind=PackageKind.CATALOG, name=None, after=None, limit=10
        )
        assert keys(catalogs) == [("items", 1)]


async def test_a_notice_artifact_carries_a_signed_url_and_the_manifest_signature(
    database_url: str, tmp_path: Path
) -> None:
    repo = repository(tmp_path)
    key = content_urls.url_key(bytes(range(32)))
    package = make_package(tmp_path)
    async with database(database_url):
        row = (await upload(repo, package)).package
        artifact = artifact_for(row, "kiosk-1", "https://cp.example", key, 3600, now=1000.5)

    assert (artifact.sha256, artifact.size, artifact.key_id) == (row.sha256, row.size, row.key_id)
    sig = content_urls.url_signature(row.sha256, "kiosk-1", "4601", key)
    assert artifact.url.split("?", 1)[1] == f"device=kiosk-1&expires=4601&sig={sig}"
    assert content_urls.check(row.sha256, "kiosk-1", "4601", sig, key, now=4600) is None
    with tarfile.open(package) as tar:
        manifest = tar.extractfile("manifest.json")
        assert manifest is not None
        KEY.verify_key.verify(manifest.read(), base64.b64decode(artifact.signature))


# --- settings -----------------------------------------------------------------------------------


def test_the_content_directory_defaults_beside_a_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "data" / "termfleet.sqlite3"
    assert content_repo.default_content_dir(f"sqlite://{db}") == tmp_path / "data" / "content"
    assert content_repo.default_content_dir("postgres://u@h/db") == Path("content")
    assert content_repo.default_content_dir("sqlite://:memory:") == Path("content")


def test_the_servers_default_cap_is_the_repositorys() -> None:
    assert DEFAULT_MAX_UPLOAD_MIB * MIB == content_repo.DEFAULT_MAX_UPLOAD_BYTES


def test_trusted_key_files_are_read_and_a_bad_one_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.pub"
    good.write_text(public_key_text(KEY.verify_key) + "\n")
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")

    assert read_trusted_keys([good]).keys() == TRUSTED.keys()
    with pytest.raises(ContentKeyError, match=r"bad\.pub: not an Ed25519 public key"):
        read_trusted_keys([good, bad])
