"""好差评 reads and review policies on SQLite and PostgreSQL, below the API.

The counts for scores against the March of ``tests/support/review_world.py`` (voided, unknown
and out-of-month reviews left out; each scope its own), the review listing's filters and keyset
pages against a plain sort, refused ratings and chain problems by the device's site, and review
policies set, refused and removed, with their effect on the nearest-ancestor lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from control_plane.admin_errors import InvalidFieldError, NotFoundError
from control_plane.auth import Principal, Role
from control_plane.db import database
from control_plane.db.models import AuditEntry, JurisdictionNode, ServiceWindow, Site
from control_plane.db.review_models import ReviewChainProblem, ReviewRefusal, ReviewRow
from control_plane.review_period import month_period
from control_plane.review_policy import DEFAULT_POLICY, PolicyValues, policy_for_site
from control_plane.review_policy_admin import (
    PolicyValueError,
    delete_policy,
    list_policies,
    policy_values,
    set_policy,
)
from control_plane.review_queries import (
    Grouping,
    ReviewFilters,
    chain_problems_page,
    parse_review_key,
    rating_counts,
    refusals_page,
    review_by_case,
    review_key,
    reviews_page,
)
from tests.support.review_world import (
    CONGHUA,
    HALL,
    HUADU,
    JIEKOU,
    NOW,
    SHANGHAI,
    STATION,
    TOWN_CENTRE,
    VILLAGE,
    W01,
    add_review,
    build_world,
    march,
    seed_march,
)

MARCH = month_period("2026-03", SHANGHAI)


async def site_id(code: str) -> int:
    return (await Site.get(code=code)).id


async def path_of(code: str) -> str:
    return (await JurisdictionNode.get(code=code)).path


def principal(scope: str | None = None, path: str | None = None) -> Principal:
    return Principal(1, f"admin-{scope or 'all'}", Role.ADMIN, path, scope)


# --- counts for scores --------------------------------------------------------------------------


async def test_counts_by_window_leave_out_voided_unknown_and_other_months(
    database_url: str,
) -> None:
    async with database(database_url):
        await build_world()
        await seed_march()
        counted = await rating_counts(Grouping.WINDOW, MARCH, None)
        hall = await site_id(HALL)
        windows = dict(await ServiceWindow.filter(site_id=hall).values_list("id", "number"))

    by_number = {windows.get(key, key): value for key, value in counted.items()}
    # W01: the two 非常不满意 of 1 April and 28 February (local) are outside March.
    assert by_number["W01"] == {"very_satisfied": 2, "satisfied": 1}
    # W02: the voided 非常不满意 and the unknown rating do not count.
    assert by_number["W02"] == {
        "very_satisfied": 1, "satisfied": 1, "basic": 1, "dissatisfied": 1
    }  # fmt: skip
    assert by_number["W03"] == {"very_satisfied": 1}
    assert counted[None] == {"very_satisfied": 1}  # the pad placed at no window
    assert sum(sum(ratings.values()) for ratings in counted.values()) == 19


async def test_counts_by_site_department_and_level_within_a_scope(database_url: str) -> None:
    async with database(database_url):
        await build_world()
        await seed_march()
        conghua = await path_of(CONGHUA)
        by_site = await rating_counts(Grouping.SITE, MARCH, conghua)
        by_department = await rating_counts(Grouping.DEPARTMENT, MARCH, conghua)
        whole_tree = await rating_counts(Grouping.DEPARTMENT, MARCH, None)
        ids = {code: await site_id(code) for code in (HALL, TOWN_CENTRE, STATION)}

    assert by_site == {
        ids[HALL]: {"very_satisfied": 4, "satisfied": 2, "basic": 1, "dissatisfied": 1},
        ids[TOWN_CENTRE]: {"satisfied": 3, "basic": 1},  # the default 基本满意 counts
        ids[STATION]: {"satisfied": 2, "very_dissatisfied": 1},
    }
    assert by_department == {
        "rs": {"very_satisfied": 3, "satisfied": 4, "basic": 1},
        "ga": {"very_satisfied": 1, "satisfied": 3, "basic": 1, "dissatisfied": 1,
               "very_dissatisfied": 1},
    }  # fmt: skip
    # The whole tree adds Huadu's 3 非常满意 (人社) and the loose pad's review, naming none.
    assert whole_tree["rs"]["very_satisfied"] == 6
    assert whole_tree[""] == {"very_satisfied": 1}


async def test_a_scope_sees_no_review_of_a_pad_placed_nowhere(database_url: str) -> None:
    async with database(database_url):
        await build_world()
        await add_review(None, "satisfied", march(2))
        scoped = await rating_counts(Grouping.LEVEL, MARCH, await path_of("44"))
        everything = await rating_counts(Grouping.LEVEL, MARCH, None)

    assert scoped == {}
    assert everything == {None: {"satisfied": 1}}


# --- the review listing -------------------------------------------------------------------------


async def every_page(filters: ReviewFilters, scope: str | None, limit: int) -> list[ReviewRow]:
    rows: list[ReviewRow] = []
    after = None
    while True:
        page = await reviews_page(filters, scope, after=after, limit=limit)
        rows += page[:limit]
        if len(page) <= limit:
            return rows
        key = parse_review_key(review_key(page[limit - 1]))
        assert key is not None
        after = key


def newest_first(rows: list[ReviewRow]) -> list[str]:
    return [row.case_number for row in sorted(rows, key=lambda r: (r.rated_at, r.id), reverse=True)]


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
async def test_pages_hold_every_review_once_newest_first(database_url: str, limit: int) -> None:
    async with database(database_url):
        await build_world()
        await seed_march()  # W02's four reviews share one rating time: the id breaks the tie
        paged = await every_page(ReviewFilters(), None, limit)
        everything = await ReviewRow.all()

    assert [row.case_number for row in paged] == newest_first(everything)
    assert len(paged) == 23


async def test_each_filter_narrows_the_listing(database_url: str) -> None:
    async with database(database_url):
        await build_world()
        await seed_march()
        conghua, jiekou = await path_of(CONGHUA), await path_of(JIEKOU)
        everything = await ReviewRow.all()
        hall = await site_id(HALL)
        cases: dict[str, list[str]] = {}
        asked = {
            "site": ReviewFilters(site_id=hall),
            "node": ReviewFilters(node_path=jiekou),
            "department": ReviewFilters(department="ga"),
            "ratings": ReviewFilters(ratings=frozenset({"basic", "unknown"})),
            "bad": ReviewFilters(bad=True),
            "good": ReviewFilters(bad=False, node_path=jiekou),
            "source": ReviewFilters(source="default"),
            "since_until": ReviewFilters(since=march(7), until=march(10)),
            "scoped": ReviewFilters(),
        }
        for name, filters in asked.items():
            scope = conghua if name == "scoped" else None
            cases[name] = [row.case_number for row in await every_page(filters, scope, 4)]
        sites = dict(await Site.all().values_list("id", "code"))

    def expect(keep: Callable[[ReviewRow], bool]) -> list[str]:
        return newest_first([row for row in everything if keep(row)])

    bad = {"dissatisfied", "very_dissatisfied"}
    below_jiekou = {TOWN_CENTRE, STATION}
    assert cases["site"] == expect(lambda r: r.site_id == hall)
    assert len(cases["site"]) == 12  # W01 5, W02 6, W03 1
    assert cases["node"] == expect(lambda r: sites.get(r.site_id) in below_jiekou)
    assert cases["department"] == expect(lambda r: r.department == "ga")
    assert cases["ratings"] == expect(lambda r: r.rating in {"basic", "unknown"})
    assert cases["bad"] == expect(lambda r: r.rating in bad)
    assert len(cases["bad"]) == 5  # the voided one is still a review, listed with voided_at
    assert cases["good"] == expect(
        lambda r: sites.get(r.site_id) in below_jiekou and r.rating not in bad
    )
    assert cases["source"] == expect(lambda r: r.source == "default")
    assert len(cases["source"]) == 1
    assert cases["since_until"] == expect(lambda r: march(7) <= r.rated_at < march(10))
    assert len(cases["since_until"]) == 3
    assert cases["scoped"] == expect(
        lambda r: r.site_id is not None and sites[r.site_id] != "s440114"
    )


def test_a_cursor_key_round_trips_and_nothing_else_reads_as_one() -> None:
    row = ReviewRow(id=7, rated_at=datetime(2026, 3, 1, 8, 0, 0, 123, tzinfo=UTC))
    assert parse_review_key(review_key(row)) == (row.rated_at, 7)
    for text in (
        "",
        "7",
        "2026-03-01T08:00:00~x",
        "2026-03-01T08:00:00~7",
        "nonsense~7",
        f"2026-03-01T08:00:00+00:00~{2**63}",
        "2026-03-01T08:00:00+00:00~\u0663",  # an Arabic-Indic digit three
        "0001-01-01T00:00:00+08:00~1",  # before year 1 in UTC
    ):
        assert parse_review_key(text) is None, text


async def test_a_case_is_found_only_within_the_scope(database_url: str) -> None:
    async with database(database_url):
        await build_world()
        await add_review(W01, "satisfied", march(2), case_number="GD-1")
        await add_review(None, "satisfied", march(2), case_number="GD-2")
        conghua, huadu = await path_of(CONGHUA), await path_of(HUADU)
        found = [
            await review_by_case("GD-1", None),
            await review_by_case("GD-1", conghua),
            await review_by_case("GD-1", huadu),
            await review_by_case("GD-2", None),
            await review_by_case("GD-2", conghua),
            await review_by_case("x" * 65, None),
        ]

    assert [row is not None for row in found] == [True, True, False, True, False, False]


# --- refused ratings and chain problems ----------------------------------------------------------


async def test_refusals_and_chain_problems_lie_where_their_device_stands(
    database_url: str,
) -> None:
    async with database(database_url):
        await build_world()
        for seq, (device, reason) in enumerate(
            [("pad-w01", "duplicate"), ("pad-huadu", "late"), ("pad-loose", "duplicate"),
             ("pad-village", "late")], start=1,
        ):  # fmt: skip
            await ReviewRefusal.create(
                device_id=device, seq=seq, case_number=f"R{seq}", reason=reason,
                rating="satisfied", received_at=march(seq), payload="{}",
            )  # fmt: skip
            await ReviewChainProblem.create(
                device_id=device, seq=seq, kind="broken_link", expected="a", found="b",
                found_at=march(seq),
            )  # fmt: skip
        conghua = await path_of(CONGHUA)
        scoped = await refusals_page(conghua, reason=None, after=None, limit=10)
        late = await refusals_page(conghua, reason="late", after=None, limit=10)
        first_page = await refusals_page(None, reason=None, after=None, limit=2)
        second_page = await refusals_page(None, reason=None, after=first_page[1].id, limit=2)
        problems = await chain_problems_page(conghua, kind=None, after=None, limit=10)
        other_kind = await chain_problems_page(None, kind="hash_mismatch", after=None, limit=10)

    assert [row.device_id for row in scoped] == ["pad-village", "pad-w01"]  # newest first
    assert [row.case_number for row in late] == ["R4"]
    assert [row.case_number for row in first_page] == ["R4", "R3", "R2"]  # limit + 1: more
    assert [row.case_number for row in second_page] == ["R2", "R1"]
    assert [row.device_id for row in problems] == ["pad-village", "pad-w01"]
    assert other_kind == []


# --- review policies ----------------------------------------------------------------------------


def test_policy_values_name_the_field_at_fault() -> None:
    assert policy_values({"deadline_working_days": 15, "rate_within_days": 7}) == (15, 7)
    refusals: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"deadline_working_days": 0, "rate_within_days": 7}, PolicyValueError,
         "deadline_working_days"),
        ({"deadline_working_days": 61, "rate_within_days": 7}, PolicyValueError,
         "deadline_working_days"),
        ({"deadline_working_days": 5, "rate_within_days": 61}, PolicyValueError,
         "rate_within_days"),
        ({"deadline_working_days": 5, "rate_within_days": 0}, PolicyValueError,
         "rate_within_days"),
        ({"deadline_working_days": True, "rate_within_days": 7}, InvalidFieldError,
         "deadline_working_days"),
        ({"deadline_working_days": 5.0, "rate_within_days": 7}, InvalidFieldError,
         "deadline_working_days"),
        ({"deadline_working_days": 5}, InvalidFieldError, "rate_within_days"),
        ({"deadline_working_days": 5, "rate_within_days": 7, "x": 1}, InvalidFieldError, "x"),
    ]  # fmt: skip
    for body, error, field in refusals:
        with pytest.raises(error) as refused:
            policy_values(body)
        assert getattr(refused.value, "field", None) == field, body
    # The edges are in range.
    assert policy_values({"deadline_working_days": 60, "rate_within_days": 1}) == (60, 1)


async def test_policies_hold_for_the_nearest_node_above_a_site(database_url: str) -> None:
    async with database(database_url):
        await build_world()
        root = principal()
        village_site = await site_id(STATION)
        hall = await site_id(HALL)
        before = await policy_for_site(village_site)
        await set_policy(root, "44", {"deadline_working_days": 5, "rate_within_days": 7}, now=NOW)
        await set_policy(
            root, CONGHUA, {"deadline_working_days": 15, "rate_within_days": 10}, now=NOW
        )
        district_rule = await policy_for_site(village_site)
        await set_policy(
            root, VILLAGE, {"deadline_working_days": 3, "rate_within_days": 5}, now=NOW
        )
        village_rule, hall_rule = await policy_for_site(village_site), await policy_for_site(hall)
        await delete_policy(root, VILLAGE, now=NOW)
        await delete_policy(root, CONGHUA, now=NOW)
        province_rule = await policy_for_site(village_site)
        entries = await AuditEntry.filter(target_type="review_policy").order_by("id")

    assert before is DEFAULT_POLICY
    assert district_rule == PolicyValues(15, 10, CONGHUA)
    assert village_rule == PolicyValues(3, 5, VILLAGE)
    assert hall_rule == PolicyValues(15, 10, CONGHUA)  # a sibling subtree keeps the district's
    assert province_rule == PolicyValues(5, 7, "44")
    assert [(e.action, e.target_id) for e in entries] == [
        ("review_policy.set", "44"),
        ("review_policy.set", CONGHUA),
        ("review_policy.set", VILLAGE),
        ("review_policy.delete", VILLAGE),
        ("review_policy.delete", CONGHUA),
    ]
    assert entries[1].before is None
    assert entries[1].after is not None
    assert entries[1].after["deadline_working_days"] == 15
    assert entries[3].before is not None
    assert entries[3].scope_path == "/44/4401/440117/440117101/440117101001/"


async def test_a_policy_is_replaced_whole_and_audited_with_before_and_after(
    database_url: str,
) -> None:
    async with database(database_url):
        await build_world()
        root = principal()
        await set_policy(root, CONGHUA, {"deadline_working_days": 15, "rate_within_days": 7},
                         now=NOW)  # fmt: skip
        view = await set_policy(
            root, CONGHUA, {"deadline_working_days": 10, "rate_within_days": 7}, now=NOW
        )
        entry = await AuditEntry.filter(target_type="review_policy").order_by("-id").first()
        rule = await policy_for_site(await site_id(HALL))

    assert view["deadline_working_days"] == 10
    assert rule == PolicyValues(10, 7, CONGHUA)
    assert entry is not None
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["deadline_working_days"], entry.after["deadline_working_days"]) == (15, 10)
    assert entry.actor_name == "admin-all"


async def test_a_scoped_token_sets_policies_in_its_scope_only(database_url: str) -> None:
    async with database(database_url):
        await build_world()
        conghua = principal(CONGHUA, await path_of(CONGHUA))
        body = {"deadline_working_days": 15, "rate_within_days": 7}
        await set_policy(principal(), "44", body, now=NOW)
        await set_policy(conghua, JIEKOU, body, now=NOW)
        refused = []
        for code in ("44", HUADU, "999999"):
            with pytest.raises(NotFoundError):
                await set_policy(conghua, code, body, now=NOW)
            refused.append(code)
        with pytest.raises(NotFoundError):
            await delete_policy(conghua, "44", now=NOW)
        with pytest.raises(NotFoundError, match="no review policy of its own"):
            await delete_policy(conghua, CONGHUA, now=NOW)
        listed = await list_policies(conghua, after=None, limit=10)
        everything = await list_policies(principal(), after=None, limit=1)
        rule = await policy_for_site(await site_id(TOWN_CENTRE))

    assert refused == ["44", HUADU, "999999"]
    # The province's policy holds in the district too: listed, but not the district's own.
    assert [(item["node"], item["within_scope"]) for item in listed.items] == [
        ("44", False),
        (JIEKOU, True),
    ]
    assert [item["node"] for item in everything.items] == ["44"]
    assert everything.next_after == "44"
    assert rule == PolicyValues(15, 7, JIEKOU)


async def test_the_whole_tree_removes_the_policy_of_a_deleted_node(database_url: str) -> None:
    async with database(database_url):
        await build_world()
        body = {"deadline_working_days": 15, "rate_within_days": 7}
        await set_policy(principal(), HUADU, body, now=NOW)
        await Site.filter(code="s440114").delete()  # cascades to its windows
        await JurisdictionNode.filter(code=HUADU).delete()
        with pytest.raises(NotFoundError):
            await delete_policy(principal(CONGHUA, await path_of(CONGHUA)), HUADU, now=NOW)
        await delete_policy(principal(), HUADU, now=NOW)
        listed = await list_policies(principal(), after=None, limit=10)

    assert listed.items == []
