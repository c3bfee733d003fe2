"""The administration API's pure rules: bodies, codes, national ID numbers, cursors, grants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane import admin_bodies, jurisdiction
from control_plane.admin_errors import InvalidFieldError
from control_plane.auth import ROLE_PERMISSIONS, Role
from control_plane.jurisdiction import JurisdictionError, Level
from control_plane.site_views import common_path
from control_plane.token_admin import may_grant
from edge.national_id import check_character, holds_national_id

# GB 11643-1999's own example, and one made up with a valid check character.
VALID_IDS = ["11010519491231002X", "440117199001011234"]


# --- codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "code"),
    [("44", "4401"), ("4401", "440117"), ("440117", "440117001"), ("440117", "4401170010")],
)
def test_a_child_code_extends_its_parents(parent: str, code: str) -> None:
    jurisdiction.check_child_code(parent, code)


@pytest.mark.parametrize(
    ("parent", "code"), [("44", "44"), ("44", "4501"), ("440117", "440118001"), ("4401", "44")]
)
def test_a_child_code_that_does_not_extend_its_parents_is_refused(parent: str, code: str) -> None:
    with pytest.raises(JurisdictionError, match=f"'{code}' does not extend its parent's code"):
        jurisdiction.check_child_code(parent, code)


def test_a_move_is_audited_at_the_deepest_node_holding_both_ends() -> None:
    town_a, town_b = "/44/4401/440117/440117001/", "/44/4401/440117/440117002/"
    assert common_path(town_a, town_b) == "/44/4401/440117/"
    assert common_path(town_a, town_a) == town_a
    assert common_path(town_a + "440117001001/", town_a) == town_a
    assert common_path("/44/", "/45/") is None


# --- national ID numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("text", [*VALID_IDS, "11010519491231002x", "A-11010519491231002X-b"])
def test_resident_id_numbers_are_spotted_in_any_text(text: str) -> None:
    assert holds_national_id(text)


def test_first_generation_15_digit_numbers_are_spotted() -> None:
    assert holds_national_id("110105491231002")


@pytest.mark.parametrize(
    "text", ["A0012", "11010519491231002", "110105194912310021", "1101051949123100211", "李四"]
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert not holds_national_id(text)


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_exactly_one_check_character_completes_17_digits(digits: str) -> None:
    completions = [c for c in "0123456789X" if holds_national_id(digits + c)]
    assert completions == [check_character(digits)]


# --- bodies ----------------------------------------------------------------------------------


def refused(reader: Any, body: dict[str, object]) -> InvalidFieldError:  # noqa: ANN401 - any reader
    with pytest.raises(InvalidFieldError) as caught:
        reader(body)
    return caught.value


def test_a_node_body_reads_as_an_import_row() -> None:
    spec = admin_bodies.node(
        {"code": "440117003", "name": "温泉镇", "level": "Town", "parent": "440117"}
    )
    assert (spec.code, spec.name, spec.level, spec.parent) == (
        "440117003", "温泉镇", Level.TOWN, "440117"
    )  # fmt: skip
    assert (
        admin_bodies.node(
            {"code": "44", "name": "广东", "level": "province", "parent": None}
        ).parent
        is None
    )


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"code": "44", "name": "x", "level": "province"}, "parent", "missing (null for a root)"),
        ({"code": 44, "name": "x", "level": "province", "parent": None}, "code", "must be text"),
        ({"code": "4a", "name": "x", "level": "province", "parent": None}, "code", "2 to 12"),
        ({"code": "44", "name": "", "level": "province", "parent": None}, "name", "missing"),
        ({"code": "44", "name": "x", "level": "street", "parent": None}, "level", "not a level"),
        ({"code": "44", "name": "x", "level": "city", "parent": "44"}, "parent", "own parent"),
        ({"code": "44", "name": "x", "level": "city", "parent": None, "id": 1}, None, "unknown"),
    ],
)
def test_a_bad_node_body_names_the_field(
    body: dict[str, object], field: str | None, problem: str
) -> None:
    error = refused(admin_bodies.node, body)
    assert error.field == field
    assert problem in error.message


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"code": "x"}, "code", "cannot be changed"),
        ({"parent": "44"}, "parent", "cannot be changed"),
        ({"level": "city"}, "level", "cannot be changed"),
        ({}, None, "changes nothing"),
        ({"name": 3}, "name", "must be text"),
        ({"name": "  "}, "name", "must be text"),
        ({"title": "x"}, None, "unknown field(s) title; allowed: name"),
    ],
)
def test_a_node_patch_changes_the_name_only(
    body: dict[str, object], field: str | None, problem: str
) -> None:
    error = refused(admin_bodies.node_name, body)
    assert error.field == field
    assert problem in error.message


def test_a_site_body_checks_hours_and_holidays_with_the_schedule_parser() -> None:
    site = {"code": "hall", "name": "Hall", "level": "town", "node": "440117001"}
    assert admin_bodies.site({**site, "hours": "mon-fri 08:30-17:30"}).hours
    assert refused(admin_bodies.site, {**site, "hours": "8:30-17:30"}).field == "hours"
    holidays = {"2026-10-01..2026-10-03": "closed"}
    spec = admin_bodies.site({**site, "hours": "24/7", "holidays": holidays})
    assert spec.holidays == {f"2026-10-0{d}": "closed" for d in (1, 2, 3)}
    bad = refused(admin_bodies.site, {**site, "hours": "24/7", "holidays": {"x": "closed"}})
    assert bad.field == "holidays"
    assert refused(admin_bodies.site_changes, {"code": "y"}).field == "code"


def test_a_window_takes_its_site_and_number_from_the_url_only() -> None:
    spec = admin_bodies.window("hall", "A12", {"name": "综合窗口", "departments": ["gongan"]})
    assert (spec.site, spec.number, spec.departments) == ("hall", "A12", ("gongan",))
    assert refused(lambda b: admin_bodies.window("hall", "01", b), {"site": "x"}).field == "site"
    bad_number = refused(lambda b: admin_bodies.window("hall", "0 1", b), {})
    assert bad_number.field == "number"


STAFF = {"number": "A001", "name": "李四", "department": "gongan", "site": "hall"}


def test_staff_bodies_are_checked_field_by_field() -> None:
    assert admin_bodies.staff(STAFF) == admin_bodies.StaffSpec("A001", "李四", "gongan", "hall")
    assert admin_bodies.staff({**STAFF, "window": "01", "active": False}).window == "01"
    assert admin_bodies.staff_changes({"window": None}) == {"window": None}


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({**STAFF, "number": VALID_IDS[0]}, "number", "resident ID card number"),
        ({**STAFF, "name": f"李四 {VALID_IDS[1]}"}, "name", "resident ID card number"),
        ({**STAFF, "id_number": VALID_IDS[0]}, None, "unknown field(s) id_number"),
        ({**STAFF, "number": "A 1"}, "number", "not a staff number"),
        ({**STAFF, "name": "x" * 65}, "name", "1 to 64"),
        ({**STAFF, "name": "a\tb"}, "name", "printable"),
        ({**STAFF, "active": "yes"}, "active", "true or false"),
        ({**STAFF, "window": 1}, "window", "not a window code"),
        ({k: v for k, v in STAFF.items() if k != "site"}, "site", "missing"),
    ],
)
def test_a_bad_staff_body_names_the_field(
    body: dict[str, object], field: str | None, problem: str
) -> None:
    error = refused(admin_bodies.staff, body)
    assert error.field == field
    assert problem in error.message


def test_a_staff_number_is_fixed() -> None:
    assert refused(admin_bodies.staff_changes, {"number": "B"}).field == "number"


def test_a_token_body_tells_an_absent_scope_from_the_whole_tree() -> None:
    own = admin_bodies.token({"name": "n", "role": "operator"})
    whole = admin_bodies.token({"name": "n", "role": "operator", "scope": None})
    town = admin_bodies.token({"name": "n", "role": "auditor", "scope": "440117001"})
    assert (own.scope, own.scope_given) == (None, False)
    assert (whole.scope, whole.scope_given) == (None, True)
    assert (town.scope, town.role) == ("440117001", Role.AUDITOR)
    days = admin_bodies.token({"name": "n", "role": "admin", "expires_in_days": 30})
    assert days.expires_in == timedelta(days=30)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "admin"}, "name"),
        ({"name": "n", "role": "root"}, "role"),
        ({"name": "n", "role": "admin", "scope": 44}, "scope"),
        ({"name": "n", "role": "admin", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "n", "role": "admin", "expires_in_days": True}, "expires_in_days"),
        ({"name": "n", "role": "admin", "expires_in_days": 3651}, "expires_in_days"),
        ({"name": "n", "role": "admin", "replace": "yes"}, "replace"),
        ({"name": "n", "role": "admin", "secret": "x"}, None),
    ],
)
def test_a_bad_token_body_names_the_field(body: dict[str, object], field: str | None) -> None:
    assert refused(admin_bodies.token, body).field == field


# --- grants ----------------------------------------------------------------------------------


@pytest.mark.parametrize("granter", list(Role))
@pytest.mark.parametrize("role", list(Role))
def test_a_token_grants_no_permission_it_lacks(granter: Role, role: Role) -> None:
    assert may_grant(granter, role) == (ROLE_PERMISSIONS[role] <= ROLE_PERMISSIONS[granter])
    if granter is not Role.ADMIN and role is Role.ADMIN:
        assert not may_grant(granter, role)
    assert may_grant(Role.ADMIN, role)
