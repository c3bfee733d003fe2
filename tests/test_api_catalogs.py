"""/api/v1/catalogs and ``termfleet catalog import --upload|ls|show``, over a real server.

On both databases: a catalog imported and uploaded with the CLI is listed and shown, filtered by
department and channel and paged; a catalog package whose file is invalid is a 422 with the
reason and keeps nothing; every bad parameter is a 400 naming it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.db.catalog_models import CatalogEdition, CatalogItem
from edge.catalog import ServiceChannel, encode_catalog
from edge.content.signing import signing_key_text
from tests.test_api_content import content_api, stored
from tests.test_catalog_cli import SAMPLE
from tests.test_catalog_store import catalog_json, catalog_package, item_json, sample
from tests.test_content_repo import KEY

CATALOGS = "/api/v1/catalogs"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["catalog", *(str(arg) for arg in args)], prog_name="termfleet")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "signing.key"
    path.write_bytes(signing_key_text(KEY))
    path.chmod(0o600)
    return path


async def test_a_catalog_imported_and_uploaded_is_listed_and_shown(
    database_url: str, tmp_path: Path, key_file: Path
) -> None:
    catalog = sample()
    stations = [item.code for item in catalog.items if ServiceChannel.STATION in item.channels]
    async with content_api(database_url, tmp_path) as content:
        base_url = content.base
        server = ["--server", base_url, "--token", await content.api.token()]
        reader = await content.api.token(Role.AUDITOR)
        args = ("import", SAMPLE, "--name", "conghua", "--key", key_file, "--out", tmp_path / "o")

        first = await asyncio.to_thread(run, *args, "--version", "1", "--upload", *server, "--json")
        second = await asyncio.to_thread(run, *args, "--version", "2", "--upload", *server)
        listed = await asyncio.to_thread(run, "ls", *server, "--json")
        table = await asyncio.to_thread(run, "ls", *server)
        shown = await asyncio.to_thread(
            run, "show", "conghua", "2", "--department", "rs", *server, "--json"
        )
        shown_table = await asyncio.to_thread(run, "show", "conghua", "1", *server)
        catalogs = await content.api.ok("GET", CATALOGS, reader)
        on_stations = await content.api.listing(
            f"{CATALOGS}/conghua/1?channel=station", reader, page_size=3
        )
        edition = await content.api.ok("GET", f"{CATALOGS}/conghua/2?limit=1", reader)

    assert first.exit_code == 0, first.output
    view = json.loads(first.stdout)
    assert (view["items"], view["uploaded"]["created"]) == (24, True)
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[-1] == f"uploaded to the control plane at {base_url}"
    assert json.loads(listed.stdout) == catalogs["items"]
    [row] = catalogs["items"]
    assert (row["name"], row["latest_version"], row["latest_item_count"]) == ("conghua", 2, 24)
    assert [v["version"] for v in row["versions"]] == [1, 2]
    assert row["versions"][0]["sha256"] == view["uploaded"]["sha256"]
    assert table.stdout.splitlines()[1].split() == ["conghua", "2", "24", "1", "(24),", "2", "(24)"]
    assert shown.exit_code == 0, shown.output
    rs = json.loads(shown.stdout)
    assert [item["code"] for item in rs["items"]] == [
        item.code for item in catalog.items if item.department == "rs"
    ]
    assert shown_table.stdout.split()[:6] == [
        "CODE", "NAME", "DEPARTMENT", "CHANNELS", "NEEDS", "QUERY_NEEDS"
    ]  # fmt: skip
    assert len(shown_table.stdout.splitlines()) == 25
    assert [item["code"] for item in on_stations] == stations
    assert (edition["name"], edition["version"], edition["item_count"]) == ("conghua", 2, 24)
    assert len(edition["items"]) == 1
    assert edition["next_cursor"]


async def test_an_invalid_catalog_package_is_a_422_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    bad = catalog_package(tmp_path, catalog_json([item_json(code="rs 1")]))
    missing = catalog_package(tmp_path, None, extra={"card.txt": b"x"})
    async with content_api(database_url, tmp_path) as content:
        admin = await content.api.token()
        refusals = [await content.upload(package, admin) for package in (bad, missing)]
        cli_refusal = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["content", "upload", str(bad), "--server", content.base, "--token", admin],
        )
        kept = await stored(content)
        editions, items = await CatalogEdition.all().count(), await CatalogItem.all().count()

    for status, answer in refusals:
        assert status == 422
        assert answer["error"]["code"] == "package_refused"
        assert answer["error"]["details"]["reason"] == "malformed"
    assert "catalog.json is no valid catalog (bad_code)" in refusals[0][1]["error"]["message"]
    assert "'rs 1' is not an item code" in refusals[0][1]["error"]["message"]
    assert "holds its catalog in catalog.json" in refusals[1][1]["error"]["message"]
    assert cli_refusal.exit_code == 1
    assert "HTTP 422" in cli_refusal.stderr
    assert "(malformed)" in cli_refusal.stderr
    assert kept == (0, [])
    assert (editions, items) == (0, 0)


@pytest.mark.parametrize(
    ("path", "status", "parameter"),
    [
        (f"{CATALOGS}/conghua/0", 400, "version"),
        (f"{CATALOGS}/conghua/x1", 400, "version"),
        (f"{CATALOGS}/conghua/{2**63}", 400, "version"),
        (f"{CATALOGS}/Cong!hua/1", 400, "name"),
        (f"{CATALOGS}/conghua/1?department=r%20s", 400, "department"),
        (f"{CATALOGS}/conghua/1?channel=fax", 400, "channel"),
        (f"{CATALOGS}/conghua/1?sort=code", 400, "sort"),
        (f"{CATALOGS}/conghua/1?cursor=bogus", 400, "cursor"),
        (f"{CATALOGS}?department=rs", 400, "department"),
        (f"{CATALOGS}?limit=0", 400, "limit"),
        (f"{CATALOGS}/conghua/2", 404, None),
        (f"{CATALOGS}/baiyun/1", 404, None),
    ],
)
async def test_bad_parameters_are_400s_naming_them_and_unknown_catalogs_404s(
    database_url: str, tmp_path: Path, path: str, status: int, parameter: str | None
) -> None:
    package = catalog_package(tmp_path, encode_catalog(sample()))
    async with content_api(database_url, tmp_path) as content:
        admin = await content.api.token()
        assert (await content.upload(package, admin))[0] == 201
        answer = await content.api.call("GET", path, admin)
        unauthenticated = await content.api.client.get(CATALOGS)

    assert answer[0] == status, answer
    if parameter is not None:
        assert answer[1]["error"]["details"]["parameter"] == parameter
    else:
        assert answer[1]["error"]["code"] == "not_found"
    assert unauthenticated.status == 401
