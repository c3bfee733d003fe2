"""Windows of sites and /api/v1/departments, on SQLite and PostgreSQL.

The tree is ``tests/support/scoped_fleet.py``'s; its sites (``s<node code>``) have no windows.
"""

from __future__ import annotations

import json

from control_plane.auth import Role
from control_plane.db.models import AuditEntry
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from tests.support.admin_api import admin_api
from tests.support.scoped_fleet import TOWN_A, TOWN_B

# --- windows ---------------------------------------------------------------------------------


async def test_windows_are_created_changed_and_deleted_with_audit(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token(Role.ADMIN, TOWN_B)
        path = f"/api/v1/sites/s{TOWN_B}/windows/03"
        created = await api.ok("POST", path, secret, {"name": "3号窗口", "departments": ["gongan"]})
        again = await api.call("POST", path, secret, {})
        changed = await api.ok("PATCH", path, secret, {"departments": ["minzheng", "shebao"]})
        renamed = await api.ok("PATCH", path, secret, {"name": "综合窗口"})
        deleted = await api.call("DELETE", path, secret)
        missing = await api.call("PATCH", path, secret, {"name": "x"})
        actions = (
            await AuditEntry.filter(target_type="window")
            .order_by("id")
            .values_list("action", "target_id")
        )

    assert created == {"number": "03", "name": "3号窗口", "departments": ["gongan"]}
    assert (again[0], again[1]["error"]["code"]) == (409, "already_exists")
    assert changed["departments"] == ["minzheng", "shebao"]
    assert renamed == {"number": "03", "name": "综合窗口", "departments": ["minzheng", "shebao"]}
    assert deleted == (204, None)
    assert missing[0] == 404
    target = f"s{TOWN_B}/03"
    assert actions == [
        ("window.create", target),
        ("window.update", target),
        ("window.update", target),
        ("window.delete", target),
    ]


async def test_window_refusals(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token()
        site = f"/api/v1/sites/s{TOWN_B}/windows"
        unknown_department = await api.call("POST", f"{site}/01", secret, {"departments": ["x"]})
        bad_number = await api.call("POST", f"{site}/0%201", secret, {})
        not_a_list = await api.call("POST", f"{site}/01", secret, {"departments": 3})
        empty_patch = await api.call("PATCH", f"{site}/01", secret, {})
        await api.ok("POST", f"{site}/02", secret, {})
        device = {"devices": [{"device_id": "pad-b-02", "kind": "review_pad",
                               "site": f"s{TOWN_B}", "window": "02"}]}  # fmt: skip
        await import_inventory(read_json(json.dumps(device), "pad.json"))
        bound = await api.call("DELETE", f"{site}/02", secret)

    assert unknown_department[1]["error"]["message"] == "departments: unknown: x"
    assert bad_number[1]["error"]["message"].startswith("number: '0 1' is not a window number")
    assert not_a_list[1]["error"]["message"].startswith("departments: must be a list")
    assert [r[0] for r in (unknown_department, bad_number, not_a_list, empty_patch)] == [400] * 4
    assert (bound[0], bound[1]["error"]["code"]) == (409, "in_use")
    assert "1 device(s) and 0 member(s) of staff are bound to it" in bound[1]["error"]["message"]


# --- departments -----------------------------------------------------------------------------


async def test_departments_are_shared_and_created_by_the_whole_tree_only(
    database_url: str,
) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token()
        created = await api.ok(
            "POST", "/api/v1/departments", secret, {"code": "rsj", "name": "人社局"}
        )
        twice = await api.call("POST", "/api/v1/departments", secret, {"code": "rsj", "name": "x"})
        scoped = await api.call(
            "POST",
            "/api/v1/departments",
            await api.token(Role.ADMIN, TOWN_A),
            {"code": "y", "name": "y"},
        )
        bad = await api.call("POST", "/api/v1/departments", secret, {"code": "a b", "name": "y"})
        listed = await api.listing("/api/v1/departments", await api.token(Role.AUDITOR, TOWN_A))
        entry = await AuditEntry.get(action="department.create")

    assert created == {"code": "rsj", "name": "人社局"}
    assert (twice[0], twice[1]["error"]["code"]) == (409, "already_exists")
    assert (scoped[0], scoped[1]["error"]["code"]) == (403, "out_of_scope")
    assert bad[0] == 400
    assert [d["code"] for d in listed] == ["gongan", "minzheng", "rsj", "shebao"]
    assert (entry.scope_path, entry.after) == (None, created)
