"""/api/v1/staff on SQLite and PostgreSQL: staff by their site's scope, never an ID number."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from control_plane.auth import Role
from control_plane.db.models import AuditEntry
from control_plane.db.staff_models import Staff
from tests.support.admin_api import Api, admin_api, audit_count
from tests.support.scoped_fleet import TOWN_A, TOWN_B, VILLAGE_A1

ID_NUMBER = "11010519491231002X"  # GB 11643-1999's example


def member(number: str, site: str, **more: object) -> dict[str, object]:
    return {
        "number": number,
        "name": f"staff {number}",
        "department": "gongan",
        "site": site,
        **more,
    }


async def staffed(api: Api) -> str:
    """Windows in towns A and B, and staff: two in A, one in its village, one in B."""
    secret = await api.token()
    for site in (f"s{TOWN_A}", f"s{TOWN_B}"):
        await api.ok(
            "POST", f"/api/v1/sites/{site}/windows/01", secret, {"departments": ["gongan"]}
        )
    for body in (
        member("A001", f"s{TOWN_A}", window="01"),
        member("A002", f"s{TOWN_A}", department="minzheng", active=False),
        member("V001", f"s{VILLAGE_A1}"),
        member("B001", f"s{TOWN_B}", window="01"),
    ):
        await api.ok("POST", "/api/v1/staff", secret, body)
    return secret


async def numbers(api: Api, query: str, secret: str) -> list[str]:
    return [item["number"] for item in await api.listing(f"/api/v1/staff{query}", secret)]


async def test_staff_are_added_shown_and_audited(database_url: str) -> None:
    async with admin_api(database_url) as api:
        await staffed(api)
        shown = await api.ok("GET", "/api/v1/staff/A001", await api.token(Role.AUDITOR, TOWN_A))
        entry = await AuditEntry.get(action="staff.create", target_id="A001")

    assert {k: v for k, v in shown.items() if not k.endswith("_at")} == {
        "number": "A001", "name": "staff A001", "department": "gongan", "site": f"s{TOWN_A}",
        "window": "01", "active": True,
    }  # fmt: skip
    assert shown["created_at"] == shown["updated_at"]
    assert entry.scope_path == f"/44/4401/440117/{TOWN_A}/"
    assert entry.after == shown


@pytest.mark.parametrize(
    ("scope", "query", "expected"),
    [
        (None, "", ["A001", "A002", "B001", "V001"]),
        (TOWN_A, "", ["A001", "A002", "V001"]),
        (TOWN_B, "", ["B001"]),
        (VILLAGE_A1, "", ["V001"]),
        (None, f"?node={TOWN_A}", ["A001", "A002", "V001"]),
        (None, f"?site=s{TOWN_A}", ["A001", "A002"]),
        (None, "?department=minzheng", ["A002"]),
        (TOWN_A, "?active=true", ["A001", "V001"]),
        (TOWN_A, "?active=false", ["A002"]),
    ],
)
async def test_each_scope_lists_the_staff_of_its_sites(
    database_url: str, scope: str | None, query: str, expected: list[str]
) -> None:
    async with admin_api(database_url) as api:
        await staffed(api)
        assert await numbers(api, query, await api.token(Role.OPERATOR, scope)) == expected


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?active=yes", 400),
        ("?window=01", 400),
        (f"?site=s{TOWN_B}", 404),
        (f"?node={TOWN_B}", 404),
        ("?department=nope", 404),
    ],
)
async def test_staff_listing_refusals(database_url: str, query: str, status: int) -> None:
    async with admin_api(database_url) as api:
        await staffed(api)
        got, body = await api.call(
            "GET", f"/api/v1/staff{query}", await api.token(Role.ADMIN, TOWN_A)
        )

    assert got == status, body


async def test_moving_staff_unbinds_their_window_unless_one_is_named(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await staffed(api)
        moved = await api.ok("PATCH", "/api/v1/staff/A001", secret, {"site": f"s{TOWN_B}"})
        bound = await api.ok("PATCH", "/api/v1/staff/A001", secret, {"window": "01"})
        both = await api.ok(
            "PATCH", "/api/v1/staff/B001", secret, {"site": f"s{TOWN_A}", "window": "01"}
        )
        off = await api.ok("PATCH", "/api/v1/staff/V001", secret, {"active": False, "name": "赵六"})
        entries = await AuditEntry.filter(action="staff.update").order_by("id")

    assert (moved["site"], moved["window"]) == (f"s{TOWN_B}", None)
    assert bound["window"] == "01"
    assert (both["site"], both["window"]) == (f"s{TOWN_A}", "01")
    assert (off["active"], off["name"]) == (False, "赵六")
    assert off["updated_at"] > off["created_at"]
    assert [e.target_id for e in entries] == ["A001", "A001", "B001", "V001"]
    assert entries[0].scope_path == "/44/4401/440117/"  # between town A and town B
    assert entries[0].before is not None
    assert entries[0].before["window"] == "01"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (member(ID_NUMBER, f"s{TOWN_A}"), 400, "number: holds a resident ID card number"),
        (member("A009", f"s{TOWN_A}", name=f"李 {ID_NUMBER}"), 400, "name: holds a resident ID"),
        (member("A009", f"s{TOWN_A}", id_number=ID_NUMBER), 400, "unknown field(s) id_number"),
        (member("A009", f"s{TOWN_A}", department="nope"), 400, "department: no department"),
        (member("A009", f"s{TOWN_A}", window="09"), 400, f"window: site s{TOWN_A} has no window"),
        (member("A009", "nowhere"), 400, "site: no site has the code 'nowhere'"),
        (member("A001", f"s{TOWN_A}"), 409, "a member of staff has the number A001"),
    ],
)
async def test_a_bad_member_of_staff_is_refused(
    database_url: str, body: dict[str, object], status: int, message: str
) -> None:
    async with admin_api(database_url) as api:
        secret = await staffed(api)
        before = await audit_count()
        got, answer = await api.call("POST", "/api/v1/staff", secret, body)

        assert got == status, answer
        assert message in answer["error"]["message"]
        assert await audit_count() == before
        assert ID_NUMBER not in str(await Staff.all().values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"number": "X"}, "number: cannot be changed"),
        ({"window": "09"}, "window: site s440117001 has no window '09'"),
        ({"name": ID_NUMBER}, "name: holds a resident ID card number"),
        ({"active": 1}, "active: must be true or false"),
        ({}, "the body changes nothing"),
    ],
)
async def test_a_bad_change_of_staff_is_refused(
    database_url: str, change: dict[str, object], message: str
) -> None:
    async with admin_api(database_url) as api:
        secret = await staffed(api)
        got, answer = await api.call("PATCH", "/api/v1/staff/A001", secret, change)

    assert got == 400, answer
    assert message in answer["error"]["message"]


async def test_the_staff_table_has_no_column_for_an_id_number(database_url: str) -> None:
    async with admin_api(database_url):
        columns = await staff_columns(database_url)

    expected = {"id", "number", "name", "department_id", "site_id", "window_id", "active"}
    assert columns == expected | {"created_at", "updated_at"}


async def staff_columns(database_url: str) -> set[str]:
    """The columns of the staff table as the database has them, not as the model says."""
    connection = Staff._meta.db  # noqa: SLF001 - tortoise's way to a model's connection
    rows: Sequence[dict[str, Any]]
    if database_url.startswith("sqlite"):
        _, rows = await connection.execute_query('PRAGMA table_info("staff")')
        return {row["name"] for row in rows}
    _, rows = await connection.execute_query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'staff'"
    )
    return {row["column_name"] for row in rows}
