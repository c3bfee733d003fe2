"""``termfleet nodes``, ``sites add/set/rm``, ``windows``, ``departments``, ``staff set``.

The commands that change the tree, sites, windows, departments and staff, against the API in a
thread on the scoped tree (``tests/support/admin_api.py``), run as a user runs them: each
success with its table and its ``--json``, and each refusal with the API's own message and exit
status 1: out of scope, a bad field (named), a missing object, a conflict. Then the hours and
holidays people type, read without a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from control_plane.auth import Permission, Role
from control_plane.cli import cli
from control_plane.cli.site_hours import (
    Hours,
    HoursError,
    holiday_changes,
    holidays_text,
    merged_holidays,
    read_hours,
)
from control_plane.http import nodes, sites, staff, windows
from tests.support.admin_api import Api, admin_api_in_a_thread
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_B, VILLAGE_A1

TOKENS = {
    "admin": (Role.ADMIN, None),
    "town_a": (Role.ADMIN, TOWN_A),
    "ops_a": (Role.OPERATOR, TOWN_A),
}
SITE_A, SITE_B, SITE_A1 = f"s{TOWN_A}", f"s{TOWN_B}", f"s{VILLAGE_A1}"
NEW_VILLAGE = f"{TOWN_A}002"


def run(server: str, secret: str, *args: str, stdin: str | None = None) -> Result:
    env = {"TERMFLEET_TOKEN": secret, "TERMFLEET_SERVER": server, "TERMFLEET_CONFIG": None,
           "XDG_CONFIG_HOME": "/nonexistent"}  # fmt: skip
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, prog_name="termfleet")


def refused(result: Result, status: int, message: str) -> None:
    """Exit 1 with the API's status and message on stderr, nothing on stdout."""
    assert result.exit_code == 1, result.output
    assert f"HTTP {status}: " in result.stderr, result.stderr
    assert message in result.stderr, result.stderr
    assert result.stdout == ""


def table(result: Result) -> list[list[str]]:
    """A table's rows (the header first), cells split on runs of two spaces or more."""
    assert result.exit_code == 0, result.output
    return [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines() if line]


def answered(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


# --- nodes --------------------------------------------------------------------------------------


def test_nodes_add_rename_and_rm(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        town_a, admin = secrets["town_a"], secrets["admin"]
        added = run(server, town_a, "nodes", "add", NEW_VILLAGE, "--name", "温泉村",
                    "--level", "village", "--parent", TOWN_A)  # fmt: skip
        renamed = run(server, town_a, "nodes", "rename", NEW_VILLAGE, "石海村", "--json")
        root = run(server, admin, "nodes", "add", "45", "--name", "广西", "--level", "province",
                   "--root", "--json")  # fmt: skip
        kept = run(server, town_a, "nodes", "rm", NEW_VILLAGE, stdin="n\n")
        removed = run(server, town_a, "nodes", "rm", NEW_VILLAGE, "--yes")
        tree = run(server, town_a, "sites", "tree")

    assert table(added) == [
        ["CODE", "NAME", "LEVEL", "PARENT"],
        [NEW_VILLAGE, "温泉村", "village", TOWN_A],
    ]
    assert f"added node {NEW_VILLAGE} (44 / 4401 / {DISTRICT} / {TOWN_A} / {NEW_VILLAGE})" in (
        added.stderr
    )
    assert answered(renamed) == {"code": NEW_VILLAGE, "name": "石海村", "level": "village",
                                 "parent": TOWN_A,
                                 "path": ["44", "4401", DISTRICT, TOWN_A, NEW_VILLAGE]}  # fmt: skip
    assert renamed.stderr == ""
    assert answered(root)["parent"] is None
    assert kept.exit_code == 1
    assert "Aborted" in kept.stderr
    assert removed.exit_code == 0, removed.output
    assert removed.stdout.strip() == f"deleted node {NEW_VILLAGE}"
    assert NEW_VILLAGE not in tree.stdout
    assert f"{VILLAGE_A1}  n{VILLAGE_A1}" in tree.stdout


def test_nodes_refusals_carry_the_apis_message(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        town_a = secrets["town_a"]
        add = ("nodes", "add", "--name", "x", "--level", "village")
        root = run(server, town_a, *add, "46", "--root")
        beyond = run(server, town_a, *add, f"{TOWN_B}009", "--parent", TOWN_B)
        bad_code = run(server, town_a, *add, "440118001", "--parent", TOWN_A)
        taken = run(server, town_a, *add, VILLAGE_A1, "--parent", TOWN_A)
        missing = run(server, town_a, "nodes", "rename", TOWN_B, "x")
        in_use = run(server, town_a, "nodes", "rm", TOWN_A, "--yes")
        operator = run(server, secrets["ops_a"], "nodes", "rename", TOWN_A, "x")
        both = run(server, town_a, *add, "47", "--root", "--parent", TOWN_A)
        neither = run(server, town_a, *add, "47")

    refused(root, 403, "a root node belongs to the whole tree")
    refused(beyond, 403, f"parent: '{TOWN_B}' is no node within this token's scope")
    refused(bad_code, 400, f"code: '440118001' does not extend its parent's code '{TOWN_A}'")
    refused(taken, 409, f"a node with the code {VILLAGE_A1} exists")
    refused(missing, 404, f"no node has the code '{TOWN_B}'")
    refused(in_use, 409, f"node {TOWN_A} cannot be deleted: it has 1 child node, 1 site")
    refused(operator, 403, "sites.write")
    for usage in (both, neither):
        assert usage.exit_code == 2
        assert "give the node's --parent, or --root" in usage.stderr


# --- sites --------------------------------------------------------------------------------------


def test_sites_add_set_and_rm(database_url: str, tmp_path: Path) -> None:
    hours_file = tmp_path / "hours.json"
    hours_file.write_text(json.dumps({"hours": "24/7", "holidays": {}}), encoding="utf-8")
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        town_a = secrets["town_a"]
        added = run(server, town_a, "sites", "add", "sv1", "--name", "温泉村服务站",
                    "--level", "village", "--node", VILLAGE_A1, "--address", "温泉路 1 号",
                    "--hours", "mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00",
                    "--holiday", "2026-10-01..2026-10-03=closed")  # fmt: skip
        days = run(server, town_a, "sites", "set", "sv1", "--holiday", "2026-10-02-",
                   "--holiday", "2026-09-27=09:00-12:00", "--json")  # fmt: skip
        moved = run(server, town_a, "sites", "set", "sv1", "--node", TOWN_A, "--name", "温泉站",
                    "--hours", '"mon-sat 09:00-17:00"', "--json")  # fmt: skip
        from_file = run(server, town_a, "sites", "set", "sv1", "--hours", str(hours_file))
        removed = run(server, town_a, "sites", "rm", "sv1", "--yes")
        gone = run(server, town_a, "sites", "ls", "--json")

    assert added.exit_code == 0, added.output
    assert added.stdout.splitlines() == [
        "code      sv1",
        "name      温泉村服务站",
        "level     village",
        f"node      {VILLAGE_A1}",
        "address   温泉路 1 号",
        "hours     mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00",
        "holidays  2026-10-01..2026-10-03 closed",
    ]
    assert added.stderr.strip() == "added site sv1"
    assert answered(days)["holidays"] == {
        "2026-09-27": "09:00-12:00",
        "2026-10-01": "closed",
        "2026-10-03": "closed",
    }
    site = answered(moved)
    assert (site["node"], site["name"], site["hours"]) == (TOWN_A, "温泉站", "mon-sat 09:00-17:00")
    assert len(site["holidays"]) == 3
    assert "hours     24/7" in from_file.stdout
    assert "holidays  -" in from_file.stdout
    assert from_file.stderr.strip() == "updated site sv1"
    assert removed.stdout.strip() == "deleted site sv1 and its windows"
    assert "sv1" not in {s["code"] for s in json.loads(gone.stdout)}


def test_sites_refusals_carry_the_apis_message(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        town_a = secrets["town_a"]
        add = ("sites", "add", "--name", "x", "--level", "village", "--hours", "24/7")
        beyond = run(server, town_a, *add, "sv2", "--node", TOWN_B)
        unseen = run(server, town_a, "sites", "set", SITE_B, "--name", "x")
        move_out = run(server, town_a, "sites", "set", SITE_A, "--node", TOWN_B)
        bad_hours = run(server, town_a, "sites", "set", SITE_A, "--hours", "8:30-17:30")
        bad_spans = run(server, town_a, "sites", "set", SITE_A, "--holiday", "2026-10-01=9-5")
        bad_level = run(server, town_a, "sites", "set", SITE_A1, "--level", "town")
        nothing = run(server, town_a, "sites", "set", SITE_A)
        taken = run(server, town_a, *add, SITE_B, "--node", VILLAGE_A1)
        in_use = run(server, town_a, "sites", "rm", SITE_A, "--yes")
        missing = run(server, town_a, "sites", "rm", "nosuch", "--yes")
        operator = run(server, secrets["ops_a"], "sites", "set", SITE_A, "--name", "x")
        bad_day = run(server, town_a, "sites", "set", SITE_A, "--holiday", "2026-13-01=closed")
        no_file = run(server, town_a, "sites", "set", SITE_A, "--hours", "nowhere.json")
        still = run(server, town_a, "sites", "show", SITE_A, "--json")

    refused(beyond, 403, f"node: '{TOWN_B}' is no node within this token's scope")
    refused(unseen, 404, f"no site has the code '{SITE_B}'")
    refused(move_out, 403, f"node: '{TOWN_B}' is no node within this token's scope")
    refused(bad_hours, 400, "hours: '8:30-17:30' has no hours")
    refused(bad_spans, 400, "holidays: 2026-10-01: '9-5' is not HH:MM-HH:MM")
    refused(bad_level, 400, f"level: a town site cannot hang off the village {VILLAGE_A1}")
    refused(nothing, 400, "the body changes nothing")
    refused(taken, 409, f"a site with the code {SITE_B} exists")
    refused(in_use, 409, f"site {SITE_A} cannot be deleted: 1 device(s) and 0 member(s)")
    refused(missing, 404, "no site has the code 'nosuch'")
    refused(operator, 403, "sites.write")
    assert bad_day.exit_code == 2
    assert "'2026-13-01' is not a date or range" in bad_day.stderr
    assert no_file.exit_code == 2
    assert "cannot read nowhere.json" in no_file.stderr
    site = answered(still)
    assert (site["name"], site["node"], site["hours"]) == (f"site {TOWN_A}", TOWN_A, "24/7")


# --- windows ------------------------------------------------------------------------------------


async def staff_at_window_01(api: Api, secrets: Mapping[str, str]) -> None:
    window = {"name": "综合窗口", "departments": ["gongan"]}
    await api.ok("POST", f"/api/v1/sites/{SITE_A}/windows/01", secrets["admin"], window)
    member = {"number": "A001", "name": "李四", "department": "gongan", "site": SITE_A,
              "window": "01"}  # fmt: skip
    await api.ok("POST", "/api/v1/staff", secrets["admin"], member)


def test_windows_set_creates_then_changes_and_rm_deletes(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        town_a = secrets["town_a"]
        created = run(server, town_a, "windows", "set", SITE_A, "02", "--name", "综合窗口",
                      "--department", "gongan", "--department", "shebao")  # fmt: skip
        changed = run(server, town_a, "windows", "set", SITE_A, "02", "--department",
                      "minzheng", "--json")  # fmt: skip
        emptied = run(server, town_a, "windows", "set", SITE_A, "02", "--no-departments")
        bare = run(server, town_a, "windows", "set", SITE_A, "03", "--json")
        shown = run(server, town_a, "sites", "show", SITE_A, "--json")
        removed = run(server, town_a, "windows", "rm", SITE_A, "03", "--yes")
        after = run(server, town_a, "sites", "show", SITE_A, "--json")

    assert table(created) == [
        ["SITE", "NUMBER", "NAME", "DEPARTMENTS"],
        [SITE_A, "02", "综合窗口", "gongan, shebao"],
    ]
    assert created.stderr.strip() == f"added window 02 of site {SITE_A}"
    assert answered(changed) == {"number": "02", "name": "综合窗口", "departments": ["minzheng"]}
    assert table(emptied)[1] == [SITE_A, "02", "综合窗口", "-"]
    assert emptied.stderr.strip() == f"updated window 02 of site {SITE_A}"
    assert answered(bare) == {"number": "03", "name": "", "departments": []}
    assert [w["number"] for w in answered(shown)["windows"]] == ["02", "03"]
    assert removed.stdout.strip() == f"deleted window 03 of site {SITE_A}"
    assert [w["number"] for w in answered(after)["windows"]] == ["02"]


def test_windows_refusals_carry_the_apis_message(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS, staff_at_window_01) as (server, secrets):
        town_a = secrets["town_a"]
        unseen = run(server, town_a, "windows", "set", SITE_B, "01", "--name", "x")
        unknown = run(server, town_a, "windows", "set", SITE_A, "01", "--department", "nosuch")
        bad_number = run(server, town_a, "windows", "set", SITE_A, "A 1", "--name", "x")
        nothing = run(server, town_a, "windows", "set", SITE_A, "01")
        in_use = run(server, town_a, "windows", "rm", SITE_A, "01", "--yes")
        missing = run(server, town_a, "windows", "rm", SITE_A, "99", "--yes")
        operator = run(server, secrets["ops_a"], "windows", "set", SITE_A, "01", "--name", "x")
        both = run(server, town_a, "windows", "set", SITE_A, "01", "--department", "gongan",
                   "--no-departments")  # fmt: skip

    refused(unseen, 404, f"no site has the code '{SITE_B}'")
    refused(unknown, 400, "departments: unknown: nosuch")
    refused(bad_number, 400, "number: 'A 1' is not a window number")
    refused(nothing, 400, "the body changes nothing")
    refused(in_use, 409, f"window 01 of site {SITE_A} cannot be deleted: 0 device(s) and 1")
    refused(missing, 404, f"site {SITE_A} has no window '99'")
    refused(operator, 403, "sites.write")
    assert both.exit_code == 2
    assert "--no-departments, not both" in both.stderr


# --- departments --------------------------------------------------------------------------------


def test_departments_ls_and_add(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        admin, town_a = secrets["admin"], secrets["town_a"]
        added = run(server, admin, "departments", "add", "tongji", "--name", "统计局")
        as_json = run(server, admin, "departments", "add", "shuiwu", "--name", "税务", "--json")
        listed = run(server, secrets["ops_a"], "departments", "ls")
        listed_json = run(server, town_a, "departments", "ls", "--json")
        scoped = run(server, town_a, "departments", "add", "x", "--name", "x")
        bad_code = run(server, admin, "departments", "add", "no such", "--name", "x")
        taken = run(server, admin, "departments", "add", "gongan", "--name", "x")

    assert table(added) == [["CODE", "NAME"], ["tongji", "统计局"]]
    assert added.stderr.strip() == "added department tongji"
    assert answered(as_json) == {"code": "shuiwu", "name": "税务"}
    assert [row[0] for row in table(listed)] == [
        "CODE", "gongan", "minzheng", "shebao", "shuiwu", "tongji",
    ]  # fmt: skip
    assert "5 departments" in listed.stderr
    assert json.loads(listed_json.stdout)[0] == {"code": "gongan", "name": "dept gongan"}
    refused(scoped, 403, "a department belongs to the whole tree")
    refused(bad_code, 400, "code: 'no such' is not a department code")
    refused(taken, 409, "a department with the code gongan exists")


# --- staff --------------------------------------------------------------------------------------


def test_staff_set_changes_what_it_names(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS, staff_at_window_01) as (server, secrets):
        town_a = secrets["town_a"]
        renamed = run(server, town_a, "staff", "set", "A001", "--name", "李四四", "--inactive")
        unbound = run(server, town_a, "staff", "set", "A001", "--no-window", "--json")
        rebound = run(server, town_a, "staff", "set", "A001", "--active", "--window", "01",
                      "--department", "shebao", "--json")  # fmt: skip
        moved = run(server, town_a, "staff", "set", "A001", "--site", SITE_A1, "--json")
        inactive = run(server, town_a, "staff", "ls", "--inactive", "--json")

    assert table(renamed) == [
        ["NUMBER", "NAME", "DEPARTMENT", "SITE", "WINDOW", "ACTIVE"],
        ["A001", "李四四", "gongan", SITE_A, "01", "False"],
    ]
    assert renamed.stderr.strip() == "updated staff A001"
    assert answered(unbound)["window"] is None
    member = answered(rebound)
    assert (member["window"], member["active"], member["department"]) == ("01", True, "shebao")
    member = answered(moved)
    assert (member["site"], member["window"]) == (SITE_A1, None)
    assert json.loads(inactive.stdout) == []


def test_staff_set_refusals_carry_the_apis_message(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS, staff_at_window_01) as (server, secrets):
        town_a = secrets["town_a"]
        beyond = run(server, town_a, "staff", "set", "A001", "--site", SITE_B)
        department = run(server, town_a, "staff", "set", "A001", "--department", "nosuch")
        window = run(server, town_a, "staff", "set", "A001", "--window", "99")
        national_id = run(server, town_a, "staff", "set", "A001", "--name", "11010519491231002X")
        missing = run(server, town_a, "staff", "set", "NOPE", "--name", "x")
        nothing = run(server, town_a, "staff", "set", "A001")
        operator = run(server, secrets["ops_a"], "staff", "set", "A001", "--name", "x")
        both = run(server, town_a, "staff", "set", "A001", "--window", "01", "--no-window")
        still = run(server, town_a, "staff", "ls", "--json")

    refused(beyond, 403, f"site: '{SITE_B}' is no site within this token's scope")
    refused(department, 400, "department: no department has the code 'nosuch'")
    refused(window, 400, f"window: site {SITE_A} has no window '99'")
    refused(national_id, 400, "name: holds a resident ID card number")
    refused(missing, 404, "no member of staff has the number 'NOPE'")
    refused(nothing, 400, "the body changes nothing")
    refused(operator, 403, "sites.write")
    assert both.exit_code == 2
    (member,) = json.loads(still.stdout)
    assert (member["name"], member["site"], member["window"]) == ("李四", SITE_A, "01")


# --- help: the permission each command needs ----------------------------------------------------

ROUTE_OF = {
    ("nodes", "add"): ("POST", nodes.NODES),
    ("nodes", "rename"): ("PATCH", nodes.NODE),
    ("nodes", "rm"): ("DELETE", nodes.NODE),
    ("sites", "add"): ("POST", sites.SITES),
    ("sites", "set"): ("PATCH", sites.SITE),
    ("sites", "rm"): ("DELETE", sites.SITE),
    ("windows", "set"): ("PATCH", windows.WINDOW),
    ("windows", "rm"): ("DELETE", windows.WINDOW),
    ("departments", "ls"): ("GET", sites.DEPARTMENTS),
    ("departments", "add"): ("POST", sites.DEPARTMENTS),
    ("staff", "set"): ("PATCH", staff.MEMBER),
    ("staff", "add"): ("POST", staff.STAFF),
    ("staff", "ls"): ("GET", staff.STAFF),
    ("sites", "ls"): ("GET", sites.SITES),
    ("sites", "show"): ("GET", sites.SITE),
    ("sites", "tree"): ("GET", nodes.NODES),
}
PERMISSIONS = {
    (route.method, route.path): route.permission
    for module in (nodes, sites, windows, staff)
    for route in module.ROUTES
}


@pytest.mark.parametrize("path", sorted(ROUTE_OF), ids=" ".join)
def test_help_names_the_permission_the_route_needs(path: tuple[str, str]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="termfleet")
    permission = PERMISSIONS[ROUTE_OF[path]]

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"Needs the {permission} permission (role: admin" in text
    if permission is Permission.SITES_READ:
        assert "auditor" in text


def test_whole_tree_commands_say_so() -> None:
    for path in (("departments", "add"), ("nodes", "add")):
        text = " ".join(CliRunner().invoke(cli, [*path, "--help"]).output.split())
        assert "a token for the whole tree (no scope)" in text


# --- hours and holidays as typed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mon-fri 08:30-17:30; sat 09:00-12:00", Hours("mon-fri 08:30-17:30; sat 09:00-12:00")),
        ("24/7", Hours("24/7")),
        ('"24/7"', Hours("24/7")),
        ('{"hours": "24/7"}', Hours("24/7")),
        ('{"holidays": "2026-10-01 closed"}', Hours(None, "2026-10-01 closed")),
        (' {"hours": "24/7", "holidays": {}}', Hours("24/7", {})),
    ],
)
def test_hours_read_as_text_or_json(value: str, expected: Hours) -> None:
    assert read_hours(value) == expected


def test_hours_read_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "hall.json"
    path.write_text('{"hours": "mon-fri 09:00-17:00", "holidays": {"2026-01-01": "closed"}}')

    assert read_hours(str(path)) == Hours("mon-fri 09:00-17:00", {"2026-01-01": "closed"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{", "the --hours JSON is not JSON"),
        ('{"hours": "24/7", "days": 1}', "unknown field(s) days; it takes hours, holidays"),
        ("nowhere.json", "cannot read nowhere.json"),
    ],
)
def test_hours_refused_name_the_problem(value: str, message: str) -> None:
    with pytest.raises(HoursError, match=re.escape(message)):
        read_hours(value)


def test_a_json_file_of_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[]")

    with pytest.raises(HoursError, match="must be a string of hours, or an object"):
        read_hours(str(path))


def test_holiday_changes_apply_in_order_day_by_day() -> None:
    base = "2026-10-01..2026-10-07 closed; 2026-09-27 08:30-17:30"
    changes = holiday_changes(["2026-10-06..2026-10-08-", "2026-10-02=09:00-12:00",
                               "2026-10-08=closed"])  # fmt: skip

    assert merged_holidays(base, changes) == {
        "2026-09-27": "08:30-17:30",
        "2026-10-01": "closed",
        "2026-10-02": "09:00-12:00",
        "2026-10-03": "closed",
        "2026-10-04": "closed",
        "2026-10-05": "closed",
        "2026-10-08": "closed",
    }
    assert merged_holidays({"2026-10-01..2026-10-02": "closed"}, []) == {
        "2026-10-01": "closed",
        "2026-10-02": "closed",
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("2026-10-01", "write DAYS=SPANS to set days"),
        ("-", "write DAYS=SPANS to set days"),
        ("2026-10-31..2026-10-01=closed", "is not a range of up to 366 days"),
        ("2026-01-01..2027-01-02=closed", "is not a range of up to 366 days"),
        ("2026-01-01..2027-01-01", "write DAYS=SPANS to set days"),
        ("yesterday=closed", "'yesterday' is not a date or range"),
    ],
)
def test_holiday_changes_refused_name_the_entry(entry: str, message: str) -> None:
    with pytest.raises(HoursError, match=message):
        merged_holidays({}, holiday_changes([entry]))


def test_holidays_text_joins_runs_of_days() -> None:
    holidays = {"2026-10-01": "closed", "2026-10-02": "closed", "2026-10-03": "09:00-12:00",
                "2026-10-05": "09:00-12:00", "2026-10-06": "closed"}  # fmt: skip

    assert holidays_text(holidays) == (
        "2026-10-01..2026-10-02 closed; 2026-10-03 09:00-12:00; 2026-10-05 09:00-12:00;"
        " 2026-10-06 closed"
    )
    assert holidays_text({}) == ""


SPANS = st.sampled_from(["closed", "09:00-12:00", "08:30-12:00,14:00-17:30"])
DAYS = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))


@given(st.dictionaries(DAYS.map(date.isoformat), SPANS, max_size=20))
def test_holidays_text_reads_back_as_the_same_days(holidays: dict[str, str]) -> None:
    assert merged_holidays(holidays_text(holidays), []) == dict(sorted(holidays.items()))


@given(DAYS, st.integers(0, 365), SPANS)
def test_a_range_sets_each_of_its_days(start: date, length: int, spans: str) -> None:
    end = start + timedelta(days=length)

    days = merged_holidays({}, holiday_changes([f"{start}..{end}={spans}"]))

    assert len(days) == length + 1
    assert set(days.values()) == {spans}
    assert min(days) == start.isoformat()
    assert max(days) == end.isoformat()


def test_a_mistyped_holiday_is_a_usage_error_before_any_request() -> None:
    result = CliRunner().invoke(
        cli, ["sites", "set", "x", "--holiday", "oops", "--server", "http://127.0.0.1:9"],
        env={"TERMFLEET_TOKEN": "tf_x"},
    )  # fmt: skip

    assert result.exit_code == 2
    assert "Invalid value for '--holiday': 'oops': write DAYS=SPANS" in result.stderr
