"""``termfleet sites ls/show/tree``, ``staff ls/add`` and ``tokens … --server`` against the API.

The API runs in a thread on the scoped tree (``tests/support/admin_api.py``); the commands run
as a user would run them, with the token in TERMFLEET_TOKEN.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from click.testing import CliRunner, Result

from control_plane.auth import Role
from control_plane.cli import cli
from tests.support.admin_api import Api, admin_api_in_a_thread
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_B, TOWN_X, VILLAGE_A1

TOKENS = {
    "admin": (Role.ADMIN, None),
    "town_a": (Role.ADMIN, TOWN_A),
    "ops_a": (Role.OPERATOR, TOWN_A),
}


def run(server: str, secret: str, *args: str) -> Result:
    env = {"TERMFLEET_TOKEN": secret, "TERMFLEET_SERVER": server}
    return CliRunner().invoke(cli, list(args), env=env, prog_name="termfleet")


async def windows_and_staff(api: Api, secrets: Mapping[str, str]) -> None:
    window = {"name": "综合窗口", "departments": ["gongan", "shebao"]}
    await api.ok("POST", f"/api/v1/sites/s{TOWN_A}/windows/01", secrets["admin"], window)


def test_sites_ls_lists_the_scope_with_filters(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        table = run(server, secrets["ops_a"], "sites", "ls")
        villages = run(server, secrets["admin"], "sites", "ls", "--level", "village", "--json")
        texts = run(server, secrets["admin"], "sites", "ls", "-q", f"site {TOWN_B}", "--json")
        below = run(server, secrets["admin"], "sites", "ls", "--node", TOWN_A, "--json")

    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CODE", "NAME", "LEVEL", "NODE", "HOURS"]
    assert [line.split()[0] for line in lines[1:]] == [f"s{TOWN_A}", f"s{VILLAGE_A1}"]
    assert "2 sites" in table.stderr
    assert [s["code"] for s in json.loads(villages.stdout)] == [f"s{VILLAGE_A1}"]
    assert [s["code"] for s in json.loads(texts.stdout)] == [f"s{TOWN_B}"]
    assert [s["code"] for s in json.loads(below.stdout)] == [f"s{TOWN_A}", f"s{VILLAGE_A1}"]


def test_sites_show_prints_the_site_and_its_windows(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS, windows_and_staff) as (server, secrets):
        shown = run(server, secrets["ops_a"], "sites", "show", f"s{TOWN_A}")
        as_json = run(server, secrets["ops_a"], "sites", "show", f"s{TOWN_A}", "--json")
        beyond = run(server, secrets["ops_a"], "sites", "show", f"s{TOWN_B}")

    assert shown.exit_code == 0, shown.output
    assert "hours     24/7" in shown.stdout
    assert f"path      44 / 4401 / {DISTRICT} / {TOWN_A}" in shown.stdout
    assert "01      综合窗口  gongan (dept gongan), shebao (dept shebao)" in shown.stdout
    assert json.loads(as_json.stdout)["windows"][0]["departments"] == ["gongan", "shebao"]
    assert beyond.exit_code == 1
    assert f"HTTP 404: no site has the code 's{TOWN_B}'" in beyond.stderr


def test_sites_tree_walks_the_scope(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        whole = run(server, secrets["admin"], "sites", "tree")
        town = run(server, secrets["ops_a"], "sites", "tree")
        shallow = run(server, secrets["admin"], "sites", "tree", "--depth", "1")
        below = run(server, secrets["admin"], "sites", "tree", DISTRICT, "--depth", "1", "--json")
        beyond = run(server, secrets["ops_a"], "sites", "tree", TOWN_B)

    assert whole.exit_code == 0, whole.output
    assert whole.stdout.splitlines() == [
        "44  n44  (province, 0 sites)",
        "  4401  n4401  (city, 0 sites)",
        f"    {DISTRICT}  n{DISTRICT}  (district, 1 site)",
        f"      {TOWN_A}  n{TOWN_A}  (town, 1 site)",
        f"        {VILLAGE_A1}  n{VILLAGE_A1}  (village, 1 site)",
        f"      {TOWN_X}  n{TOWN_X}  (town, 1 site)",
        f"      {TOWN_B}  n{TOWN_B}  (town, 1 site)",
    ]
    assert town.stdout.splitlines() == [
        f"{TOWN_A}  n{TOWN_A}  (town, 1 site)",
        f"  {VILLAGE_A1}  n{VILLAGE_A1}  (village, 1 site)",
    ]
    assert len(shallow.stdout.splitlines()) == 2
    (district,) = json.loads(below.stdout)
    assert [n["code"] for n in district["children_nodes"]] == [TOWN_A, TOWN_X, TOWN_B]
    assert "children_nodes" not in district["children_nodes"][0]
    assert (beyond.exit_code, "HTTP 404" in beyond.stderr) == (1, True)


def test_staff_add_and_ls(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS, windows_and_staff) as (server, secrets):
        add = ("staff", "add", "--department", "gongan", "--site", f"s{TOWN_A}")
        added = run(server, secrets["town_a"], *add, "--number", "A001", "--name", "李四",
                    "--window", "01")  # fmt: skip
        run(server, secrets["town_a"], *add, "--number", "A002", "--name", "王五")
        refused = run(server, secrets["town_a"], *add, "--number", "11010519491231002X",
                      "--name", "x")  # fmt: skip
        elsewhere = run(server, secrets["town_a"], "staff", "add", "--number", "B1", "--name",
                        "x", "--department", "gongan", "--site", f"s{TOWN_B}")  # fmt: skip
        listed = run(server, secrets["ops_a"], "staff", "ls", "--json")
        by_site = run(server, secrets["admin"], "staff", "ls", "--site", f"s{TOWN_B}")
        inactive = run(server, secrets["admin"], "staff", "ls", "--inactive", "--json")

    assert added.exit_code == 0, added.output
    assert added.stdout.strip() == f"added A001 李四 (gongan) at s{TOWN_A}, window 01"
    assert refused.exit_code == 1
    assert "number: holds a resident ID card number" in refused.stderr
    assert elsewhere.exit_code == 1
    assert "HTTP 403" in elsewhere.stderr
    assert "is no site within this token's scope" in elsewhere.stderr
    assert [(s["number"], s["window"]) for s in json.loads(listed.stdout)] == [
        ("A001", "01"),
        ("A002", None),
    ]
    assert by_site.stdout.strip() == "(none)"
    assert json.loads(inactive.stdout) == []


def test_tokens_through_the_api_stay_in_the_scope(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        town_a = secrets["town_a"]
        created = run(server, town_a, "tokens", "create", "--server", server, "--name", "v",
                      "--role", "auditor", "--scope", VILLAGE_A1)  # fmt: skip
        own = run(server, town_a, "tokens", "create", "--server", server, "--name", "o",
                  "--role", "operator", "--json")  # fmt: skip
        beyond = run(server, town_a, "tokens", "create", "--server", server, "--name", "b",
                     "--role", "operator", "--scope", TOWN_B)  # fmt: skip
        listed = run(server, town_a, "tokens", "list", "--server", server, "--json")
        revoked = run(server, town_a, "tokens", "revoke", "v", "--server", server)
        again = run(server, town_a, "tokens", "revoke", "v", "--server", server)
        foreign = run(server, town_a, "tokens", "revoke", "admin-all-0", "--server", server)
        works = run(server, created.stdout.strip(), "sites", "ls")

    assert created.exit_code == 0, created.output
    assert created.stdout.strip().startswith("tf_")
    assert f"created token 'v' (auditor, scope {VILLAGE_A1}" in created.stderr
    assert json.loads(own.stdout)["scope"] == TOWN_A
    assert beyond.exit_code == 1
    assert "HTTP 403" in beyond.stderr
    names = {t["name"] for t in json.loads(listed.stdout)}
    assert names == {f"admin-{TOWN_A}-1", f"operator-{TOWN_A}-2", "v", "o"}
    assert revoked.stdout.strip().startswith("revoked token 'v'")
    assert (again.exit_code, "token 'v' is already revoked" in again.stderr) == (1, True)
    assert foreign.exit_code == 1
    assert "no token in this token's scope is named 'admin-all-0'" in foreign.stderr
    assert works.exit_code == 1
    assert "HTTP 401" in works.stderr


def test_without_a_token_the_commands_say_how_to_get_one() -> None:
    result = CliRunner().invoke(
        cli, ["sites", "ls", "--server", "http://127.0.0.1:9"], env={"TERMFLEET_TOKEN": ""}
    )

    assert result.exit_code == 2
    assert "no API token" in result.stderr
