"""``termfleet monitoring publish`` against a small Grafana (tests/support/fake_grafana.py).

The fake answers as Grafana's documented HTTP API does and keeps state, so idempotence is
checked by what was written: a second publish sends no write request at all.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from control_plane.cli import cli
from monitoring.publish import TERMFLEET_FOLDER, DashboardFileError, DatasourceSpec
from monitoring.publish_files import DASHBOARDS_DIR, load_dashboards
from monitoring.publish_grafana import display_url
from tests.support.fake_grafana import FakeGrafana, serve

TOKEN = "glsa_test-token-0123456789"
PROMETHEUS_URL = "http://prometheus.internal:9090"
PROVISIONING = DASHBOARDS_DIR.parent / "provisioning"


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana(token=TOKEN)
    with serve(fake) as url:
        yield fake, url


@pytest.fixture
def dashboards(tmp_path: Path) -> Path:
    """A copy of the committed dashboards that a test may change."""
    directory = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS_DIR, directory)
    return directory


def publish(url: str, *args: str, token: str | None = TOKEN) -> Result:
    env = {"TERMFLEET_GRAFANA_TOKEN": token} if token is not None else {}
    return CliRunner().invoke(
        cli,
        ["monitoring", "publish", "--grafana-url", url, *args],
        env=env,
        prog_name="termfleet",
    )


def committed_uids() -> set[str]:
    return {json.loads(p.read_text())["uid"] for p in DASHBOARDS_DIR.glob("*.json")}


def edit(path: Path, **changes: object) -> None:
    model = json.loads(path.read_text())
    path.write_text(json.dumps({**model, **changes}))


def test_first_publish_creates_everything(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    result = publish(url, "--prometheus-url", PROMETHEUS_URL)
    assert result.exit_code == 0, result.output
    datasource = fake.datasources["prometheus"]
    assert (datasource["type"], datasource["url"]) == ("prometheus", PROMETHEUS_URL)
    assert datasource["jsonData"] == {"timeInterval": "15s"}
    assert fake.folders["termfleet"]["title"] == "termfleet"
    assert set(fake.dashboards) == committed_uids()
    assert {d["folderUid"] for d in fake.dashboards.values()} == {"termfleet"}
    saves = [r for r in fake.writes() if r.path == "/api/dashboards/db"]
    assert len(saves) == len(committed_uids())
    for save in saves:
        assert save.body["overwrite"] is True
        assert save.body["message"].startswith("termfleet 0.")
        assert save.headers["authorization"] == f"Bearer {TOKEN}"
        assert save.headers["content-type"].startswith("application/json")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KIND", "UID", "TITLE", "ACTION", "CHANGES"]
    assert sum(" created " in line for line in lines) == 2 + len(committed_uids())
    assert "dashboard termfleet-fleet [fleet-overview.json]: created" in result.stderr
    assert "8 created, 0 updated, 0 unchanged" in result.stderr
    assert TOKEN not in result.output


def test_second_publish_writes_nothing(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    assert publish(url, "--prometheus-url", PROMETHEUS_URL).exit_code == 0
    writes = len(fake.writes())
    again = publish(url, "--prometheus-url", PROMETHEUS_URL, "--json")
    assert again.exit_code == 0, again.output
    assert len(fake.writes()) == writes
    assert {item["action"] for item in json.loads(again.stdout)["items"]} == {"unchanged"}
    # Without --prometheus-url the live URL is kept: still nothing to write.
    assert publish(url).exit_code == 0
    assert len(fake.writes()) == writes


def test_a_changed_dashboard_file_updates_only_it(
    grafana: tuple[FakeGrafana, str], dashboards: Path
) -> None:
    fake, url = grafana
    assert publish(url, "--dashboards", str(dashboards)).exit_code == 0
    before = len(fake.requests)
    edit(dashboards / "site.json", title="termfleet / Site (renamed)", refresh="1m")
    result = publish(url, "--dashboards", str(dashboards), "--json")
    assert result.exit_code == 0, result.output
    writes = [r for r in fake.requests[before:] if r.method != "GET"]
    assert [(w.path, w.body["dashboard"]["uid"]) for w in writes] == [
        ("/api/dashboards/db", "termfleet-site")
    ]
    assert fake.dashboards["termfleet-site"]["dashboard"]["title"] == "termfleet / Site (renamed)"
    assert fake.dashboards["termfleet-site"]["dashboard"]["version"] == 2
    report = json.loads(result.stdout)
    changed = [item for item in report["items"] if item["action"] != "unchanged"]
    assert changed == [
        {
            "kind": "dashboard",
            "uid": "termfleet-site",
            "title": "termfleet / Site (renamed)",
            "action": "updated",
            "changes": ["refresh", "title"],
            "source": "site.json",
        }
    ]


def test_json_output_shape(grafana: tuple[FakeGrafana, str]) -> None:
    _, url = grafana
    result = publish(url, "--json", "--prometheus-url", PROMETHEUS_URL)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"grafana", "dry_run", "message", "items", "counts"}
    assert report["grafana"] == {"url": url, "version": "11.3.0"}
    assert report["dry_run"] is False
    assert report["counts"] == {
        "datasource": {"created": 1, "updated": 0, "unchanged": 0},
        "folder": {"created": 1, "updated": 0, "unchanged": 0},
        "dashboard": {"created": len(committed_uids()), "updated": 0, "unchanged": 0},
    }
    kinds = [item["kind"] for item in report["items"]]
    assert kinds[:2] == ["datasource", "folder"]
    assert set(kinds[2:]) == {"dashboard"}
    for item in report["items"]:
        assert set(item) == {"kind", "uid", "title", "action", "changes", "source"}


def test_dry_run_writes_nothing(grafana: tuple[FakeGrafana, str], dashboards: Path) -> None:
    fake, url = grafana
    result = publish(url, "--dry-run", "--dashboards", str(dashboards), "--json")
    assert result.exit_code == 0, result.output
    assert fake.writes() == []
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert {item["action"] for item in report["items"]} == {"created"}
    assert "datasource prometheus: would be created" in result.stderr
    assert publish(url, "--dashboards", str(dashboards)).exit_code == 0
    writes = len(fake.writes())
    edit(dashboards / "rollouts.json", description="changed")
    dry = publish(url, "--dry-run", "--dashboards", str(dashboards))
    assert dry.exit_code == 0, dry.output
    assert len(fake.writes()) == writes
    assert "dashboard termfleet-rollouts [rollouts.json]: would be updated (description)" in (
        dry.stderr
    )
    assert "(dry run: nothing was written)" in dry.stderr
    assert fake.dashboards["termfleet-rollouts"]["dashboard"]["description"] != "changed"


def test_wrong_token_is_a_clear_error(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    result = publish(url, token="glsa_wrong-token")
    assert result.exit_code == 5
    assert "refused the token (401" in result.stderr
    assert "glsa_wrong-token" not in result.output
    assert fake.writes() == []


def test_no_token_is_a_usage_error(grafana: tuple[FakeGrafana, str], tmp_path: Path) -> None:
    fake, url = grafana
    result = publish(url, token=None)
    assert result.exit_code == 2
    assert "no Grafana token: set TERMFLEET_GRAFANA_TOKEN" in result.stderr
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    both = publish(url, "--token", TOKEN, "--token-file", str(token_file), token=None)
    assert both.exit_code == 2
    assert "not both" in both.stderr
    assert fake.requests == []
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    unreadable = publish(url, "--token-file", str(binary), token=None)
    assert unreadable.exit_code == 2
    assert "cannot read a token from it" in unreadable.stderr
    from_file = publish(url, "--token-file", str(token_file), token="glsa_env-is-overridden")
    assert from_file.exit_code == 0, from_file.output


def test_editor_token_names_the_missing_permission(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    fake.role = "Editor"
    result = publish(url)
    assert result.exit_code == 5
    assert "denied the token datasources:read (403" in result.stderr
    assert "the Admin role" in result.stderr
    assert "--no-datasource" in result.stderr
    before = len(fake.requests)
    without = publish(url, "--no-datasource", "--json")
    assert without.exit_code == 0, without.output
    assert not any("datasource" in r.path for r in fake.requests[before:])
    assert fake.datasources == {}
    assert json.loads(without.stdout)["counts"]["datasource"]["created"] == 0


def test_unreachable_grafana_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = publish(f"http://127.0.0.1:{port}", "--timeout", "2")
    assert result.exit_code == 4
    assert f"Grafana at http://127.0.0.1:{port} is unreachable" in result.stderr
    assert "Connection refused" in result.stderr


def test_a_web_server_that_is_not_grafana(tmp_path: Path) -> None:
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        result = publish(f"http://user:pw@127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 4
    assert "has no Grafana /api/health: is it Grafana" in result.stderr
    assert "user:pw" not in result.output


def test_a_broken_json_file_publishes_nothing(
    grafana: tuple[FakeGrafana, str], dashboards: Path
) -> None:
    fake, url = grafana
    (dashboards / "reviews.json").write_text('{"uid": "termfleet-reviews", "title": "x",\n}')
    result = publish(url, "--dashboards", str(dashboards), "--json")
    assert result.exit_code == 3
    assert "reviews.json: not valid JSON" in result.stderr
    assert "(line 2, column 1)" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == 3
    assert fake.requests == []
    assert fake.dashboards == {}


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"a.json": "[1, 2]"}, "a.json: a dashboard is a JSON object, not list"),
        ({"a.json": '{"title": "A"}'}, "a.json: uid None is not 1-40 letters"),
        ({"a.json": '{"uid": "has space", "title": "A"}'}, "a.json: uid 'has space' is not"),
        ({"a.json": json.dumps({"uid": "u" * 41, "title": "A"})}, "is not 1-40 letters"),
        ({"a.json": '{"uid": "a", "title": " "}'}, "a.json: title is missing or empty"),
        (
            {"a.json": '{"uid": "same", "title": "A"}', "b.json": '{"uid": "same", "title": "B"}'},
            'b.json: uid "same" is also the uid of a.json',
        ),
        ({"a.json": b"\xff\xfe{}"}, "a.json: not UTF-8 text"),
        ({"notes.txt": "not a dashboard"}, "no dashboard files (*.json) to publish"),
    ],
)
def test_dashboard_file_refusals(tmp_path: Path, files: dict[str, Any], problem: str) -> None:
    for name, text in files.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DashboardFileError) as caught:
        load_dashboards(tmp_path)
    assert problem in str(caught.value)


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{")
    (tmp_path / "b.json").write_text('{"uid": "b"}')
    (tmp_path / "c.json").write_text('{"uid": "c", "title": "C", "id": 7, "version": 3}')
    with pytest.raises(DashboardFileError) as caught:
        load_dashboards(tmp_path)
    assert "a.json: not valid JSON" in str(caught.value)
    assert "b.json: title is missing" in str(caught.value)
    assert "c.json" not in str(caught.value)


def test_file_ids_and_versions_are_grafanas_business(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"uid": "c", "title": "C", "id": 7, "version": 3}')
    [spec] = load_dashboards(tmp_path)
    assert dict(spec.model) == {"uid": "c", "title": "C"}


def test_a_renamed_folder_is_renamed_back_with_its_version(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    fake.folders["termfleet"] = {"id": 9, "uid": "termfleet", "title": "old name", "version": 4}
    result = publish(url)
    assert result.exit_code == 0, result.output
    [put] = [r for r in fake.writes() if r.method == "PUT"]
    assert (put.path, put.body["title"], put.body["version"]) == (
        "/api/folders/termfleet",
        "termfleet",
        4,
    )
    assert "folder termfleet: updated (title)" in result.stderr
    assert fake.folders["termfleet"] == {
        "id": 9,
        "uid": "termfleet",
        "title": "termfleet",
        "version": 5,
    }


def test_a_folder_changed_meanwhile_is_a_conflict(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    fake.folders["termfleet"] = {"id": 9, "uid": "termfleet", "title": "old name", "version": 4}
    fake.rename_folder_after_read = "termfleet"
    result = publish(url, "--json", "--prometheus-url", PROMETHEUS_URL)
    assert result.exit_code == 6
    assert "conflict (412 the folder has been changed by someone else: version-mismatch)" in (
        result.stderr
    )
    report = json.loads(result.stdout)
    assert [(i["kind"], i["action"]) for i in report["items"]] == [("datasource", "created")]
    assert fake.dashboards == {}


def test_another_dashboard_with_the_same_title_is_a_conflict(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    fake.folders["termfleet"] = {"id": 9, "uid": "termfleet", "title": "termfleet", "version": 1}
    squatter = {"id": 50, "uid": "hand-made", "title": "termfleet / Fleet overview", "version": 3}
    fake.dashboards["hand-made"] = {"dashboard": squatter, "folderUid": "termfleet"}
    result = publish(url)
    assert result.exit_code == 6
    assert "name-exists" in result.stderr
    assert "termfleet-fleet" not in fake.dashboards
    assert fake.dashboards["hand-made"]["dashboard"] == squatter


def test_a_dashboard_in_another_folder_is_moved(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    assert publish(url).exit_code == 0
    fake.folders["elsewhere"] = {"id": 99, "uid": "elsewhere", "title": "Elsewhere", "version": 1}
    fake.dashboards["termfleet-usage"]["folderUid"] = "elsewhere"
    result = publish(url)
    assert result.exit_code == 0, result.output
    assert "dashboard termfleet-usage [service-usage.json]: updated (folder)" in result.stderr
    assert fake.dashboards["termfleet-usage"]["folderUid"] == "termfleet"


def test_the_datasource_url_is_updated_and_other_settings_kept(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    fake.datasources["prometheus"] = {
        "id": 3,
        "uid": "prometheus",
        "name": "Prometheus",
        "type": "prometheus",
        "access": "proxy",
        "url": "http://old:9090",
        "isDefault": False,
        "basicAuth": True,
        "basicAuthUser": "grafana",
        "jsonData": {"timeInterval": "15s", "httpMethod": "POST"},
        "version": 2,
        "readOnly": False,
    }
    result = publish(url, "--prometheus-url", PROMETHEUS_URL)
    assert result.exit_code == 0, result.output
    assert "datasource prometheus: updated (url)" in result.stderr
    stored = fake.datasources["prometheus"]
    assert stored["url"] == PROMETHEUS_URL
    assert (stored["isDefault"], stored["basicAuth"], stored["basicAuthUser"]) == (
        False,
        True,
        "grafana",
    )
    assert stored["jsonData"] == {"timeInterval": "15s", "httpMethod": "POST"}


def test_a_provisioned_datasource_that_differs_is_refused_before_any_write(
    grafana: tuple[FakeGrafana, str],
) -> None:
    fake, url = grafana
    fake.datasources["prometheus"] = {
        "id": 1,
        "uid": "prometheus",
        "name": "Prometheus",
        "type": "prometheus",
        "access": "proxy",
        "url": "http://prometheus:9090",
        "jsonData": {"timeInterval": "15s"},
        "readOnly": True,
        "version": 1,
    }
    refused = publish(url, "--prometheus-url", PROMETHEUS_URL)
    assert refused.exit_code == 1
    assert "provisioned from a file in Grafana (read-only) and differs in url" in refused.stderr
    assert fake.writes() == []
    # As compose provisions it, it matches: publishing the rest goes ahead.
    assert publish(url).exit_code == 0
    assert fake.datasources["prometheus"]["version"] == 1


def test_a_provisioned_dashboard_that_differs_is_refused_before_any_write(
    grafana: tuple[FakeGrafana, str], dashboards: Path
) -> None:
    fake, url = grafana
    assert publish(url, "--dashboards", str(dashboards)).exit_code == 0
    fake.dashboards["termfleet-reviews"]["provisioned"] = True
    writes = len(fake.writes())
    edit(dashboards / "reviews.json", description="changed")
    edit(dashboards / "control-plane.json", description="changed too")
    result = publish(url, "--dashboards", str(dashboards))
    assert result.exit_code == 1
    assert 'dashboard "termfleet-reviews" (reviews.json) is provisioned from files' in (
        result.stderr
    )
    assert len(fake.writes()) == writes


@pytest.mark.parametrize("suffix", ["/grafana", "/grafana/"])
def test_grafana_under_a_sub_path(suffix: str) -> None:
    fake = FakeGrafana(token=TOKEN, sub_path="/grafana")
    with serve(fake) as url:
        result = publish(url + suffix, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["grafana"]["url"] == url + suffix
    assert set(fake.dashboards) == committed_uids()


def test_a_bad_grafana_url_is_a_usage_error() -> None:
    result = publish("ftp://grafana.example.org")
    assert result.exit_code == 2
    assert "is not an http:// or https:// URL with a host" in result.stderr


def test_messages_never_show_credentials_in_urls() -> None:
    assert display_url("https://admin:pw@grafana.example.org:3000/sub/?verify=false") == (
        "https://grafana.example.org:3000/sub/"
    )


def test_the_specs_match_the_compose_provisioning_files() -> None:
    """Publishing and compose's file provisioning put the same things in the same places."""
    [source] = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    spec = DatasourceSpec()
    assert (spec.uid, spec.name, spec.type, spec.access, spec.url, spec.is_default) == (
        source["uid"],
        source["name"],
        source["type"],
        source["access"],
        source["url"],
        source["isDefault"],
    )
    assert dict(spec.json_data) == source["jsonData"]
    [provider] = yaml.safe_load((PROVISIONING / "dashboards" / "termfleet.yml").read_text())[
        "providers"
    ]
    assert (TERMFLEET_FOLDER.uid, TERMFLEET_FOLDER.title) == (
        provider["folderUid"],
        provider["folder"],
    )
