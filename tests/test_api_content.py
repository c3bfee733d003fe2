"""/api/v1/packages and the signed download route, over a real aiohttp server, on both databases.

An admin for the whole tree uploads; every verifier refusal is a 422 with its reason and keeps
nothing. Terminals download at signed URLs with Range and If-Range: a download cut mid-way and
resumed reassembles the exact file. ``termfleet content upload|ls`` go through the same API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import test_utils
from click.testing import CliRunner, Result

from control_plane import content_urls
from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.content_repo import ContentRepo, ContentSettings
from control_plane.db import database
from control_plane.db.content_models import ContentPackage
from control_plane.fleet import FleetState
from control_plane.http.app import make_app
from control_plane.http.content import install
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from edge.content.manifest import PackageKind
from tests.support.admin_api import Api
from tests.support.scoped_fleet import TOWN_A, document, load_fleet
from tests.test_content_repo import REFUSALS, TRUSTED, make_package, tampered

PACKAGES = "/api/v1/packages"
URL_KEY = content_urls.url_key(bytes(range(32)))
NOW_S = 1_800_000_000
VALID_UNTIL = NOW_S + 3600
DEVICE = "kiosk-a"
BIG_TEXT = bytes(range(256)) * 12 * 1024  # 3 MiB: more than a socket's buffers hold
CUT_AFTER = 100_000


@dataclass(frozen=True)
class ContentApi:
    api: Api
    repo: ContentRepo
    metrics: ControlPlaneMetrics

    @property
    def base(self) -> str:
        return str(self.api.client.make_url("")).rstrip("/")

    async def upload(self, package: Path, secret: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/octet-stream"}
        data = await asyncio.to_thread(package.read_bytes)
        response = await self.api.client.post(PACKAGES, data=data, headers=headers)
        return response.status, await response.json()

    def downloads(self, result: str) -> float | None:
        labels = {"result": result}
        return self.metrics.registry.get_sample_value("termfleet_content_downloads_total", labels)


@contextlib.asynccontextmanager
async def content_api(
    database_url: str, tmp_path: Path, *, url_key: bytes | None = URL_KEY, max_bytes: int = 10**8
) -> AsyncIterator[ContentApi]:
    """The API on the scoped tree with a content repository, as ``server run`` serves it."""
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        fleet = await load_fleet()
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics))
        settings = ContentSettings(tmp_path / "content", TRUSTED, max_upload_bytes=max_bytes)
        repo = ContentRepo(settings)
        install(app, repo, url_key=url_key, registry=metrics.registry, clock=lambda: NOW_S)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield ContentApi(Api(client, fleet), repo, metrics)


async def stored(content: ContentApi) -> tuple[int, list[str]]:
    """The rows and the files of the repository."""
    files = sorted(path.name for path in content.repo.settings.directory.iterdir())
    return await ContentPackage.all().count(), files


def path_of(url: str) -> str:
    split = urlsplit(url)
    return f"{split.path}?{split.query}" if split.query else split.path


def sha_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1].removesuffix(".tfpkg")


# --- uploads ------------------------------------------------------------------------------------


async def test_an_upload_is_created_then_idempotent_then_listed_and_shown(
    database_url: str, tmp_path: Path
) -> None:
    package = make_package(tmp_path, version=4)
    async with content_api(database_url, tmp_path) as content:
        admin = await content.api.token()

        status, created = await content.upload(package, admin)
        again_status, again = await content.upload(package, admin)
        shown = await content.api.ok("GET", f"{PACKAGES}/{created['sha256']}", admin)
        listed = await content.api.listing(PACKAGES, await content.api.token(Role.TECHNICIAN))

    assert (status, again_status) == (201, 200)
    assert again == created == shown
    assert (created["name"], created["version"], created["kind"]) == ("guide", 4, "content")
    assert created["size"] == package.stat().st_size
    assert [f["path"] for f in created["files"]] == ["cards/card.bin", "notice.txt"]
    assert created["file_count"] == 2
    assert created["uploaded_by"].startswith("admin-all")
    assert [item["sha256"] for item in listed] == [created["sha256"]]
    assert "files" not in listed[0]


async def test_another_file_for_a_held_version_is_a_409_naming_it(
    database_url: str, tmp_path: Path
) -> None:
    async with content_api(database_url, tmp_path) as content:
        admin = await content.api.token()
        await content.upload(make_package(tmp_path, version=2), admin)

        status, answer = await content.upload(make_package(tmp_path, version=2, text=b"x"), admin)

        assert status == 409
        assert answer["error"]["code"] == "already_exists"
        assert (
            "guide version 2 (content) is in the repository already" in answer["error"]["message"]
        )
        assert (await stored(content))[0] == 1


@pytest.mark.parametrize("reason", REFUSALS)
async def test_every_verifier_refusal_is_a_422_with_its_reason_keeping_nothing(
    database_url: str, tmp_path: Path, reason: str
) -> None:
    async with content_api(database_url, tmp_path) as content:
        status, answer = await content.upload(tampered(tmp_path, reason), await content.api.token())

        assert status == 422
        assert answer["error"]["code"] == "package_refused"
        assert answer["error"]["details"] == {"reason": reason}
        assert await stored(content) == (0, [])


async def test_an_upload_over_the_cap_is_a_413_declared_or_streamed(
    database_url: str, tmp_path: Path
) -> None:
    package = make_package(tmp_path, text=BIG_TEXT)
    data = package.read_bytes()
    async with content_api(database_url, tmp_path, max_bytes=len(data) // 2) as content:
        headers = {"Authorization": f"Bearer {await content.api.token()}"}

        declared = await content.api.client.post(PACKAGES, data=data, headers=headers)

        async def streamed() -> AsyncIterator[bytes]:  # chunked: no Content-Length to go by
            for start in range(0, len(data), 64 * 1024):
                yield data[start : start + 64 * 1024]

        chunked = await content.api.client.post(PACKAGES, data=streamed(), headers=headers)

        assert (declared.status, chunked.status) == (413, 413)
        assert (await chunked.json())["error"]["code"] == "request_entity_too_large"
        assert await stored(content) == (0, [])


async def test_only_an_admin_for_the_whole_tree_publishes(
    database_url: str, tmp_path: Path
) -> None:
    package = make_package(tmp_path)
    async with content_api(database_url, tmp_path) as content:
        operator = await content.api.token(Role.OPERATOR)
        town_admin = await content.api.token(Role.ADMIN, TOWN_A)

        forbidden = await content.upload(package, operator)
        scoped = await content.upload(package, town_admin)
        auditor_reads = await content.api.call(
            "GET", PACKAGES, await content.api.token(Role.AUDITOR)
        )

        assert forbidden[0] == 403
        assert forbidden[1]["error"]["code"] == "forbidden"
        assert forbidden[1]["error"]["details"]["permission"] == "content.publish"
        assert (scoped[0], scoped[1]["error"]["code"]) == (403, "out_of_scope")
        assert auditor_reads == (200, {"items": [], "next_cursor": None})
        assert await stored(content) == (0, [])


async def test_listing_pages_and_filters_and_refuses_bad_parameters(
    database_url: str, tmp_path: Path
) -> None:
    async with content_api(database_url, tmp_path) as content:
        admin = await content.api.token()
        for name, version, kind in [
            ("guide", 1, PackageKind.CONTENT),
            ("items", 1, PackageKind.CATALOG),
            ("guide", 2, PackageKind.CONTENT),
        ]:
            package = make_package(tmp_path, name=name, version=version, kind=kind)
            assert (await content.upload(package, admin))[0] == 201

        every = await content.api.listing(PACKAGES, admin, page_size=2)
        guides = await content.api.listing(f"{PACKAGES}?name=guide", admin, page_size=1)
        catalogs = await content.api.listing(f"{PACKAGES}?kind=catalog", admin)
        bad_kind = await content.api.call("GET", f"{PACKAGES}?kind=video", admin)
        bad_name = await content.api.call("GET", f"{PACKAGES}?name=Guide!", admin)
        unknown = await content.api.call("GET", f"{PACKAGES}?sort=name", admin)
        bad_sha = await content.api.call("GET", f"{PACKAGES}/{'A' * 64}", admin)
        missing = await content.api.call("GET", f"{PACKAGES}/{'0' * 64}", admin)

    assert [(p["name"], p["version"]) for p in every] == [("guide", 1), ("items", 1), ("guide", 2)]
    assert [p["version"] for p in guides] == [1, 2]
    assert [p["name"] for p in catalogs] == ["items"]
    for (status, answer), parameter in [(bad_kind, "kind"), (bad_name, "name"), (unknown, "sort"),
                                        (bad_sha, "sha256")]:  # fmt: skip
        assert status == 400
        assert answer["error"]["details"]["parameter"] == parameter
    assert (missing[0], missing[1]["error"]["code"]) == (404, "not_found")


async def test_a_server_without_a_repository_refuses_uploads(
    database_url: str, tmp_path: Path
) -> None:
    async with database(database_url):
        fleet = FleetState()
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics))
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            api = Api(client, fleet)
            status, answer = await ContentApi(api, None, metrics).upload(  # type: ignore[arg-type]
                make_package(tmp_path), await api.token()
            )
            no_route = await client.get(f"/content/v1/packages/{'0' * 64}.tfpkg")

    assert (status, answer["error"]["details"]) == (422, {"reason": "unknown_key"})
    assert no_route.status == 404  # no secret, no URL key: downloads are not served


# --- downloads ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def with_package(
    database_url: str, tmp_path: Path, text: bytes = BIG_TEXT
) -> AsyncIterator[tuple[ContentApi, bytes, str]]:
    """The API with one package uploaded: its bytes, and a URL signed for DEVICE."""
    package = make_package(tmp_path, text=text)
    async with content_api(database_url, tmp_path) as content:
        status, answer = await content.upload(package, await content.api.token())
        assert status == 201
        url = content_urls.sign_url(content.base, answer["sha256"], DEVICE, VALID_UNTIL, URL_KEY)
        yield content, package.read_bytes(), url


async def test_a_valid_url_gives_the_whole_file_with_its_etag(
    database_url: str, tmp_path: Path
) -> None:
    async with with_package(database_url, tmp_path) as (content, data, url):
        response = await content.api.client.get(path_of(url))
        body = await response.read()
        head = await content.api.client.head(path_of(url))

        assert await head.read() == b""

    assert (response.status, body) == (200, data)
    assert response.headers["ETag"] == f'"{sha_of(url)}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert int(response.headers["Content-Length"]) == len(data)
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(data)
    # Read once the server has closed, which waits for its handlers: they count after sending.
    assert content.downloads("complete") == 1  # a HEAD downloads nothing
    sent = content.metrics.registry.get_sample_value("termfleet_content_bytes_sent_total")
    assert sent == len(data)


@pytest.mark.parametrize(
    ("range_header", "first", "stop"),
    [
        ("bytes=0-99", 0, 100),  # the first bytes
        ("bytes=1000-1999", 1000, 2000),  # the middle
        ("bytes=-500", -500, None),  # a suffix
        ("bytes=3000000-", 3000000, None),  # open-ended
    ],
)
async def test_a_range_is_a_206_with_its_content_range(
    database_url: str, tmp_path: Path, range_header: str, first: int, stop: int | None
) -> None:
    async with with_package(database_url, tmp_path) as (content, data, url):
        response = await content.api.client.get(path_of(url), headers={"Range": range_header})
        body = await response.read()

    expected = data[first:stop]
    start = first % len(data)
    assert response.status == 206
    assert body == expected
    assert response.headers["Content-Range"] == (
        f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
    )
    assert content.downloads("partial") == 1


async def test_if_range_resumes_only_the_same_file_and_a_range_past_the_end_is_a_416(
    database_url: str, tmp_path: Path
) -> None:
    async with with_package(database_url, tmp_path) as (content, data, url):
        client = content.api.client
        etag = (await client.head(path_of(url))).headers["ETag"]

        other = await client.get(
            path_of(url), headers={"Range": "bytes=10-", "If-Range": f'"{"0" * 64}"'}
        )
        same = await client.get(path_of(url), headers={"Range": "bytes=10-", "If-Range": etag})
        past = await client.get(path_of(url), headers={"Range": f"bytes={len(data)}-"})

        assert (other.status, await other.read()) == (200, data)
        assert (same.status, await same.read()) == (206, data[10:])
        assert past.status == 416
        assert past.headers["Content-Range"] == f"bytes */{len(data)}"
        assert (await past.json())["error"]["code"] == "range_not_satisfiable"

    assert content.downloads("unsatisfiable") == 1


async def test_expired_forged_or_another_devices_urls_are_403_and_unknown_packages_404(
    database_url: str, tmp_path: Path
) -> None:
    async with with_package(database_url, tmp_path, text=b"small") as (content, _data, url):
        sha256 = sha_of(url)
        expired = content_urls.sign_url(content.base, sha256, DEVICE, NOW_S, URL_KEY)
        forged = url[:-1] + ("0" if url[-1] != "0" else "1")
        other_device = url.replace(f"device={DEVICE}", "device=kiosk-b")
        other_key = content_urls.sign_url(
            content.base, sha256, DEVICE, VALID_UNTIL, content_urls.url_key(bytes(32))
        )
        unsigned = url.split("?")[0]
        unknown = content_urls.sign_url(content.base, "0" * 64, DEVICE, VALID_UNTIL, URL_KEY)

        answers = {}
        urls = {"expired": expired, "forged": forged, "device": other_device, "key": other_key,
                "unsigned": unsigned, "unknown": unknown}  # fmt: skip
        for name, each in urls.items():
            response = await content.api.client.get(path_of(each))
            answers[name] = (response.status, (await response.json())["error"])

    assert answers["expired"][0] == 403
    assert answers["expired"][1]["details"] == {"reason": "expired"}
    for name in ("forged", "device", "key"):
        assert answers[name][0] == 403
        assert answers[name][1]["code"] == "url_refused"
        assert answers[name][1]["details"] == {"reason": "bad_signature"}
    assert answers["unsigned"][1]["details"] == {"reason": "malformed"}
    assert (answers["unknown"][0], answers["unknown"][1]["code"]) == (404, "not_found")
    assert content.downloads("refused") == 5
    assert content.downloads("not_found") == 1


async def test_a_download_cut_mid_way_resumes_with_range_to_the_exact_file(
    database_url: str, tmp_path: Path
) -> None:
    async with with_package(database_url, tmp_path) as (content, data, url):
        server = content.api.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(f"GET {path_of(url)} HTTP/1.1\r\nHost: cp\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        received = await reader.readexactly(CUT_AFTER)
        writer.close()  # the terminal loses its network here
        await writer.wait_closed()

        resume = {"Range": f"bytes={len(received)}-", "If-Range": f'"{sha_of(url)}"'}
        rest = await content.api.client.get(path_of(url), headers=resume)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert rest.status == 206
        assert received + await rest.read() == data

    # The cut answer is counted as cut (or complete, had the kernel taken it all before the
    # close), never as partial: only the resume is.
    assert content.downloads("partial") == 1
    assert (content.downloads("cut") or 0) + (content.downloads("complete") or 0) == 1


# --- the CLI ------------------------------------------------------------------------------------


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["content", *args], prog_name="termfleet")


async def test_content_upload_and_ls_through_the_api(database_url: str, tmp_path: Path) -> None:
    good = make_package(tmp_path, version=5)
    bad = tampered(tmp_path, "hash_mismatch")
    async with content_api(database_url, tmp_path) as content:
        server = ["--server", content.base, "--token", await content.api.token()]

        first = await asyncio.to_thread(run, "upload", str(good), *server, "--json")
        again = await asyncio.to_thread(run, "upload", str(good), *server)
        refused = await asyncio.to_thread(run, "upload", str(bad), *server)
        listed = await asyncio.to_thread(run, "ls", "--name", "guide", "--json", *server)
        table = await asyncio.to_thread(run, "ls", "--kind", "content", *server)
        none = await asyncio.to_thread(run, "ls", "--kind", "firmware", *server)

    assert first.exit_code == 0, first.output
    uploaded = json.loads(first.stdout)
    assert (uploaded["created"], uploaded["version"]) == (True, 5)
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("already in the repository: guide version 5 (content)")
    assert refused.exit_code == 1
    assert "HTTP 422" in refused.stderr
    assert "(hash_mismatch)" in refused.stderr
    assert [row["sha256"] for row in json.loads(listed.stdout)] == [uploaded["sha256"]]
    assert table.stdout.split()[:8] == [
        "NAME", "VERSION", "KIND", "SIZE", "SHA256", "KEY_ID", "UPLOADED_AT", "UPLOADED_BY"
    ]  # fmt: skip
    assert table.stdout.splitlines()[1].split()[:3] == ["guide", "5", "content"]
    assert none.stdout == "(none)\n"
