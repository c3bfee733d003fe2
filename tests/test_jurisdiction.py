"""The jurisdiction tree's pure rules: codes, levels, paths and subtree ranges; the lifecycle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane import jurisdiction
from control_plane.jurisdiction import JurisdictionError, Level
from control_plane.lifecycle import ALLOWED, Lifecycle, LifecycleError, advance


@pytest.mark.parametrize("code", ["44", "4401", "440117", "440117001", "440117001001"])
def test_codes_of_every_level_are_accepted(code: str) -> None:
    assert jurisdiction.check_code(code) == code


@pytest.mark.parametrize("code", ["", "4", "44O1", "4401-1", " 4401", "4401\n", "4401170010011"])
def test_bad_codes_are_refused_with_the_code_in_the_message(code: str) -> None:
    with pytest.raises(JurisdictionError, match=r"is not a 行政区划 code \(2 to 12 digits\)"):
        jurisdiction.check_code(code)


def test_levels_read_case_insensitively_and_name_the_known_ones() -> None:
    assert jurisdiction.parse_level(" Town ") is Level.TOWN
    with pytest.raises(JurisdictionError, match=r"'street' is not a level \(province, city, "):
        jurisdiction.parse_level("street")


def test_levels_go_down_from_province_to_village() -> None:
    assert [level.depth for level in Level] == [0, 1, 2, 3, 4]
    assert next(iter(Level)) is Level.PROVINCE
    assert list(Level)[-1] is Level.VILLAGE


def test_a_child_is_below_its_parent_and_may_skip_levels() -> None:
    jurisdiction.check_child(Level.CITY, Level.DISTRICT)
    jurisdiction.check_child(Level.PROVINCE, Level.DISTRICT)  # 省直辖县
    with pytest.raises(JurisdictionError, match="a town cannot be below a town"):
        jurisdiction.check_child(Level.TOWN, Level.TOWN)
    with pytest.raises(JurisdictionError, match="a city cannot be below a district"):
        jurisdiction.check_child(Level.DISTRICT, Level.CITY)


def test_paths_list_the_codes_from_the_root() -> None:
    province = jurisdiction.path_of(None, "44")
    district = jurisdiction.path_of(jurisdiction.path_of(province, "4401"), "440117")

    assert province == "/44/"
    assert district == "/44/4401/440117/"
    assert jurisdiction.codes(district) == ["44", "4401", "440117"]


def test_a_subtree_range_holds_the_subtree_and_nothing_else() -> None:
    low, high = jurisdiction.subtree_range("/44/4401/")
    inside = ["/44/4401/", "/44/4401/440117/", "/44/4401/440117/440117001/"]
    # 44010 starts with 4401 as text but is no child of it; the separator keeps them apart.
    outside = ["/44/", "/44/44010/", "/44/4402/", "/45/", "/44/4400/"]

    assert all(low <= path < high for path in inside)
    assert not any(low <= path < high for path in outside)


def test_a_subtree_range_needs_a_node_path() -> None:
    with pytest.raises(JurisdictionError, match="is not a node path"):
        jurisdiction.subtree_range("/44/4401")


codes = st.from_regex(r"\A\d{2,12}\Z")
paths = st.lists(codes, min_size=1, max_size=5).map(lambda cs: "/" + "".join(f"{c}/" for c in cs))


@given(paths, paths)
def test_range_membership_is_ancestry_for_any_two_paths(root: str, path: str) -> None:
    low, high = jurisdiction.subtree_range(root)
    ancestry = jurisdiction.codes(path)[: len(jurisdiction.codes(root))] == jurisdiction.codes(root)

    # Byte-wise comparison, as SQLite (BINARY) and PostgreSQL (COLLATE "C") make it.
    in_range = low.encode() <= path.encode() < high.encode()
    assert in_range == ancestry == jurisdiction.is_within(path, root)


# --- lifecycle -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Lifecycle.REGISTERED, Lifecycle.ENROLLED),
        (Lifecycle.ENROLLED, Lifecycle.COMMISSIONING),
        (Lifecycle.COMMISSIONING, Lifecycle.IN_SERVICE),
        (Lifecycle.COMMISSIONING, Lifecycle.ENROLLED),
        (Lifecycle.IN_SERVICE, Lifecycle.COMMISSIONING),
        (Lifecycle.IN_SERVICE, Lifecycle.RETIRED),
        (Lifecycle.REGISTERED, Lifecycle.RETIRED),
    ],
)
def test_lifecycle_moves_that_are_allowed(current: Lifecycle, target: Lifecycle) -> None:
    assert advance(current, target) is target


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Lifecycle.REGISTERED, Lifecycle.IN_SERVICE),
        (Lifecycle.ENROLLED, Lifecycle.IN_SERVICE),
        (Lifecycle.IN_SERVICE, Lifecycle.IN_SERVICE),
        (Lifecycle.RETIRED, Lifecycle.REGISTERED),
    ],
)
def test_lifecycle_moves_that_are_refused(current: Lifecycle, target: Lifecycle) -> None:
    with pytest.raises(LifecycleError, match=f"a {current} terminal cannot become {target}"):
        advance(current, target)


def test_retired_is_final_and_every_other_state_can_retire() -> None:
    assert ALLOWED[Lifecycle.RETIRED] == frozenset()
    assert all(Lifecycle.RETIRED in ALLOWED[s] for s in Lifecycle if s is not Lifecycle.RETIRED)
    assert [s.value for s in Lifecycle] == [
        "registered",
        "enrolled",
        "commissioning",
        "in_service",
        "retired",
    ]
