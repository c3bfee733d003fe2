"""/api/v1/reviews, /api/v1/scores and /api/v1/review-policies on SQLite and PostgreSQL.

The league tables of ``tests/support/review_world.py``'s March are computed by hand below (the
default points 10/8/6/4/2, a rule ranking from 3 reviews so that the small data set ranks);
reviews are listed, filtered and paged within each token's scope; a case beyond it is a 404;
policies are set, refused and removed. Most tests serve the review routes alone
(``review_api``); one goes through ``make_app``, as the server serves them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiohttp import test_utils

from control_plane import registry
from control_plane.auth import Role
from control_plane.db import database
from control_plane.db.models import Site
from control_plane.db.review_models import ReviewRow, WorkOrderRow
from control_plane.fleet import FleetState
from control_plane.http.app import make_app
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.review_policy import PolicyValues, policy_for_site
from control_plane.reviews.scores import ScoreRule
from tests.support.review_world import (
    CONGHUA,
    HUADU,
    JIEKOU,
    NOW,
    W01,
    ReviewApi,
    add_review,
    build_world,
    march,
    review_api,
    seed_march,
)

RANK_FROM_3 = ScoreRule(min_reviews=3)
SCORES = "/api/v1/scores"


def table(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(item["rank"], item["key"], item["score"], item["reviews"]) for item in body["items"]]


# --- league tables, by hand ---------------------------------------------------------------------


async def test_the_window_table_of_march_for_the_whole_tree(database_url: str) -> None:
    async with review_api(database_url, rule=RANK_FROM_3) as api:
        await seed_march()
        body = await api.ok(f"{SCORES}?by=window&month=2026-03", await api.token())

    # Points = 10 * 非常满意 + 8 * 满意 + 6 * 基本满意 + 4 * 不满意 + 2 * 非常不满意.
    # Huadu W01:  3 非常满意               = 30 / 3 = 10.00
    # Hall W01:   2 非常满意 + 1 满意       = 28 / 3 = 9.333… → 9.33 (the 非常不满意 of
    #             1 April and of 28 February, local time, lie outside March)
    # Town 01:    3 满意 + 1 基本满意 (a default) = 30 / 4 = 7.50
    # Hall W02:   1 each of 非常满意, 满意, 基本满意, 不满意 = 28 / 4 = 7.00 (voided, unknown out)
    # Village 01: 2 满意 + 1 非常不满意     = 18 / 3 = 6.00
    # Hall W03:   1 非常满意                = 10 / 1 = 10.00, but 1 < 3 reviews: unranked, last
    assert table(body) == [
        (1, "s440114/W01", 10.0, 3),
        (2, "s440117/W01", 9.33, 3),
        (3, "s440117101/01", 7.5, 4),
        (4, "s440117/W02", 7.0, 4),
        (5, "s440117101001/01", 6.0, 3),
        (None, "s440117/W03", 10.0, 1),
    ]
    assert body["items"][1]["name"] == "W01 从化区政务服务中心"
    w02 = body["items"][3]
    assert (w02["satisfaction_rate"], w02["bad_rate"], w02["bad"]) == (0.75, 0.25, 1)  # 3/4, 1/4
    assert w02["counts"] == {
        "very_satisfied": 1, "satisfied": 1, "basic": 1, "dissatisfied": 1,
        "very_dissatisfied": 0,
    }  # fmt: skip
    village = body["items"][4]
    assert village["satisfaction_rate"] == pytest.approx(2 / 3)
    assert village["bad_rate"] == pytest.approx(1 / 3)
    # Overall: 8 非常满意, 7 满意, 2 基本满意, 1 不满意, 1 非常不满意 = 19 reviews (the loose
    # pad's included); 80 + 56 + 12 + 4 + 2 = 154 points; 154 / 19 = 8.105… → 8.11;
    # 满意率 17 / 19, 差评率 2 / 19. The loose pad's review is in no window's line.
    overall = body["overall"]
    assert (overall["score"], overall["reviews"], overall["bad"]) == (8.11, 19, 2)
    assert overall["satisfaction_rate"] == pytest.approx(17 / 19)
    assert overall["bad_rate"] == pytest.approx(2 / 19)
    assert body["unassigned"] == 1
    assert (body["by"], body["month"], body["node"]) == ("window", "2026-03", None)
    assert (body["since"], body["until"]) == (
        "2026-02-28T16:00:00+00:00",
        "2026-03-31T16:00:00+00:00",
    )
    assert body["rule"]["min_reviews"] == 3
    assert body["rule"]["points"]["basic"] == 6.0


async def test_a_district_token_ranks_its_own_windows_only(database_url: str) -> None:
    async with review_api(database_url, rule=RANK_FROM_3) as api:
        await seed_march()
        conghua = await api.token(Role.OPERATOR, CONGHUA)
        body = await api.ok(f"{SCORES}?by=window", conghua)  # this month: March, by the clock

    # Without Huadu and the loose pad, the ranks close up: competition ranking, 1 to 4.
    assert table(body) == [
        (1, "s440117/W01", 9.33, 3),
        (2, "s440117101/01", 7.5, 4),
        (3, "s440117/W02", 7.0, 4),
        (4, "s440117101001/01", 6.0, 3),
        (None, "s440117/W03", 10.0, 1),
    ]
    # Overall: 4 非常满意, 7 满意, 2 基本满意, 1 不满意, 1 非常不满意 = 15 reviews;
    # 40 + 56 + 12 + 4 + 2 = 114 points; 114 / 15 = 7.60.
    assert (body["overall"]["score"], body["overall"]["reviews"]) == (7.6, 15)
    assert (body["node"], body["month"], body["unassigned"]) == (CONGHUA, "2026-03", 0)


async def test_the_level_table_of_march(database_url: str) -> None:
    async with review_api(database_url, rule=RANK_FROM_3) as api:
        await seed_march()
        body = await api.ok(f"{SCORES}?by=level&month=2026-03", await api.token())

    # district: Conghua's hall (W01 2+1, W02 1+1+1+1, W03 1) and Huadu's hall (3 非常满意):
    #           7 非常满意, 2 满意, 1 基本满意, 1 不满意 = 11 reviews;
    #           70 + 16 + 6 + 4 = 96 points; 96 / 11 = 8.7272… → 8.73; 满意率 10/11
    # town:     3 满意 + 1 基本满意 = 30 / 4 = 7.50
    # village:  2 满意 + 1 非常不满意 = 18 / 3 = 6.00
    assert table(body) == [
        (1, "district", 8.73, 11),
        (2, "town", 7.5, 4),
        (3, "village", 6.0, 3),
    ]
    assert body["items"][0]["satisfaction_rate"] == pytest.approx(10 / 11)
    assert body["items"][0]["name"] == "district"
    assert body["unassigned"] == 1  # the loose pad stands at no site: no level


async def test_the_site_and_department_tables_name_their_lines(database_url: str) -> None:
    async with review_api(database_url, rule=RANK_FROM_3) as api:
        await seed_march()
        admin = await api.token()
        sites = await api.ok(f"{SCORES}?by=site&month=2026-03&node={CONGHUA}", admin)
        departments = await api.ok(f"{SCORES}?by=department&month=2026-03", admin)

    # Hall: 4 非常满意, 2 满意, 1 基本满意, 1 不满意 = 40+16+6+4 = 66 / 8 = 8.25.
    assert [(i["rank"], i["key"], i["name"], i["score"]) for i in sites["items"]] == [
        (1, "s440117", "从化区政务服务中心", 8.25),
        (2, "s440117101", "街口街便民服务中心", 7.5),
        (3, "s440117101001", "村居服务站", 6.0),
    ]
    # 人社 (rs): W01 2+1, W03 1, town 3 满意 + 1 基本满意, Huadu 3 = 6 非常满意, 4 满意,
    #            1 基本满意 = 60 + 32 + 6 = 98 / 11 = 8.909… → 8.91
    # 公安 (ga): W02 1+1+1+1, village 2 满意 + 1 非常不满意 = 1, 3, 1, 1, 1 =
    #            10 + 24 + 6 + 4 + 2 = 46 / 7 = 6.571… → 6.57
    assert [(i["rank"], i["key"], i["name"], i["score"]) for i in departments["items"]] == [
        (1, "rs", "人社", 8.91),
        (2, "ga", "公安", 6.57),
    ]
    assert departments["unassigned"] == 1  # the loose pad's review names no department


async def test_a_period_of_since_and_until_and_other_months(database_url: str) -> None:
    async with review_api(database_url, rule=RANK_FROM_3) as api:
        await seed_march()
        admin = await api.token()
        february = await api.ok(f"{SCORES}?by=window&month=2026-02", admin)
        april = await api.ok(f"{SCORES}?by=window&month=2026-04", admin)
        week = await api.ok(f"{SCORES}?by=site&since=2026-03-07&until=2026-03-10", admin)
        since_only = await api.ok(f"{SCORES}?by=site&since=2026-03-14", admin)

    # 23:59:59 on 28 February (local): one 非常不满意 at W01, 2 points, too few to rank.
    assert table(february) == [(None, "s440117/W01", 2.0, 1)]
    assert table(april) == [(None, "s440117/W01", 2.0, 1)]  # 00:00 on 1 April
    assert april["month"] == "2026-04"
    # 7, 8 and 9 March: the town's 3 满意 (the default of the 10th is outside).
    assert table(week) == [(1, "s440117101", 8.0, 3)]
    assert week["month"] is None
    assert week["until"] == "2026-03-09T16:00:00+00:00"
    # From 14 March to now (20 March): Huadu's 3 and the loose pad's review.
    assert table(since_only) == [(1, "s440114", 10.0, 3)]
    assert since_only["until"] == NOW.isoformat()
    assert since_only["unassigned"] == 1


async def test_a_node_beyond_the_scope_is_no_node(database_url: str) -> None:
    async with review_api(database_url) as api:
        conghua = await api.token(Role.AUDITOR, CONGHUA)
        own = await api.call("GET", f"{SCORES}?node={JIEKOU}", conghua)
        other = await api.call("GET", f"{SCORES}?node={HUADU}", conghua)
        above = await api.call("GET", f"{SCORES}?node=44", conghua)
        unknown = await api.call("GET", f"{SCORES}?node=999999", conghua)

    assert own[0] == 200
    assert own[1]["node"] == JIEKOU
    assert own[1]["items"] == []
    assert own[1]["overall"]["score"] is None
    for status, body in (other, above, unknown):
        assert status == 404, body
        assert body["error"]["code"] == "not_found"
    assert other[1]["error"]["message"] == unknown[1]["error"]["message"].replace("999999", HUADU)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("by=hall", "by"),
        ("month=2026-13", "month"),
        ("month=March", "month"),
        ("month=2026-03&since=2026-03-01", "month"),
        ("until=2026-03-10", "since"),
        ("since=2026-03-10&until=2026-03-01", "since"),
        ("since=tomorrow", "since"),
        ("limit=5", "limit"),
        ("node=4401x", "node"),
    ],
)
async def test_a_bad_scores_parameter_is_a_400_naming_it(
    sqlite_url: str, query: str, parameter: str
) -> None:
    async with review_api(sqlite_url) as api:
        status, body = await api.call("GET", f"{SCORES}?{query}", await api.token())

    if parameter == "node":  # a code no node has: as one beyond the scope
        assert status == 404, body
        return
    assert status == 400, body
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["details"]["parameter"] == parameter


# --- reviews ------------------------------------------------------------------------------------


def cases(items: list[dict[str, Any]]) -> list[str]:
    return [item["case_number"] for item in items]


async def test_reviews_are_listed_newest_first_in_pages_within_the_scope(
    database_url: str,
) -> None:
    async with review_api(database_url) as api:
        await seed_march()
        whole = await api.every("/api/v1/reviews", await api.token(), page=3)
        conghua = await api.every("/api/v1/reviews", await api.token(Role.OPERATOR, CONGHUA))
        jiekou = await api.every("/api/v1/reviews", await api.token(Role.AUDITOR, JIEKOU))
        huadu = await api.every("/api/v1/reviews", await api.token(Role.ADMIN, HUADU))
        rows = await ReviewRow.all().order_by("-rated_at", "-id")

    assert cases(whole) == [row.case_number for row in rows]
    assert len(whole) == 23
    assert {item["site"] for item in conghua} == {"s440117", "s440117101", "s440117101001"}
    assert len(conghua) == 19  # 23 less Huadu's 3 and the loose pad's
    assert {item["site"] for item in jiekou} == {"s440117101", "s440117101001"}
    assert {item["site"] for item in huadu} == {"s440114"}
    assert any(item["site"] is None for item in whole)  # the loose pad's: whole tree only
    first = next(item for item in whole if item["window"] == "W02" and item["rating"] == "basic")
    assert first["site_name"] == "从化区政务服务中心"
    assert (first["department"], first["source"], first["bad"]) == ("ga", "terminal", False)
    assert "citizen_ref" not in first
    assert "payload" not in first


async def test_filters_of_the_review_listing(database_url: str) -> None:
    async with review_api(database_url) as api:
        await seed_march()
        admin = await api.token()
        asked = {
            "site": "site=s440117101001",
            "node": f"node={JIEKOU}",
            "department": "department=ga",
            "ratings": "rating=basic&rating=dissatisfied",
            "bad": "bad=true",
            "not_bad": f"bad=false&node={JIEKOU}",
            "default": "source=default",
            "days": "since=2026-03-07&until=2026-03-10",
            "time": "since=2026-03-17T10:00:00%2B08:00",
        }
        got = {
            name: await api.every(f"/api/v1/reviews?{query}", admin)
            for name, query in asked.items()
        }

    assert {item["site"] for item in got["site"]} == {"s440117101001"}
    assert len(got["site"]) == 3
    assert len(got["node"]) == 7  # the town's 4 and the village's 3
    assert {item["department"] for item in got["department"]} == {"ga"}
    assert len(got["department"]) == 9  # W02's 6 and the village's 3
    assert sorted(item["rating"] for item in got["ratings"]) == ["basic", "basic", "dissatisfied"]
    assert len(got["bad"]) == 5
    assert all(item["bad"] for item in got["bad"])
    assert [item["rating"] for item in got["not_bad"]].count("very_dissatisfied") == 0
    assert len(got["not_bad"]) == 6
    assert [(item["source"], item["device_id"]) for item in got["default"]] == [("default", None)]
    assert len(got["days"]) == 3
    # From 10:00 on 17 March, local: the loose pad's review then, and W01's of 1 April.
    assert [item["site"] for item in got["time"]] == ["s440117", None]


async def test_a_case_shows_its_work_order_and_a_case_beyond_the_scope_is_a_404(
    database_url: str,
) -> None:
    async with review_api(database_url) as api:
        bad = await add_review(W01, "dissatisfied", march(2), case_number="GD-2026-1")
        await add_review(W01, "satisfied", march(2), case_number="GD 2026/2")
        order = await WorkOrderRow.create(
            review_id=bad.id, case_number="GD-2026-1", site_id=bad.site_id,
            rating="dissatisfied", opened_at=march(2), due=date(2026, 3, 9),
            deadline_working_days=5, state="to_call_back", updated_at=march(2),
        )  # fmt: skip
        conghua, huadu = await api.token(Role.AUDITOR, CONGHUA), await api.token(Role.ADMIN, HUADU)
        shown = await api.call("GET", "/api/v1/reviews/GD-2026-1", conghua)
        quoted = await api.call("GET", "/api/v1/reviews/GD%202026%2F2", conghua)
        beyond = await api.call("GET", "/api/v1/reviews/GD-2026-1", huadu)
        missing = await api.call("GET", "/api/v1/reviews/GD-2026-9", huadu)
        too_long = await api.call("GET", "/api/v1/reviews/" + "9" * 65, conghua)
        with_parameter = await api.call("GET", "/api/v1/reviews/GD-2026-1?limit=1", conghua)

    assert shown[0] == 200, shown
    assert shown[1]["work_order"] == {
        "id": order.id, "state": "to_call_back", "due": "2026-03-09", "due_provisional": False,
        "closed_at": None,
    }  # fmt: skip
    assert (shown[1]["rating"], shown[1]["bad"], shown[1]["window"]) == (
        "dissatisfied",
        True,
        "W01",
    )
    assert quoted[0] == 200, quoted
    assert quoted[1]["work_order"] is None
    assert beyond[0] == missing[0] == too_long[0] == 404
    assert beyond[1]["error"]["message"] == "no review of case 'GD-2026-1'"
    assert with_parameter[0] == 400


async def test_refusals_and_chain_problems_are_not_read_as_case_numbers(
    database_url: str,
) -> None:
    async with review_api(database_url) as api:
        admin = await api.token()
        refusals = await api.call("GET", "/api/v1/reviews/refusals", admin)
        problems = await api.call("GET", "/api/v1/reviews/chain-problems?kind=hash_mismatch", admin)
        bad_kind = await api.call("GET", "/api/v1/reviews/chain-problems?kind=odd", admin)

    assert refusals == (200, {"items": [], "next_cursor": None})
    assert problems == (200, {"items": [], "next_cursor": None})
    assert bad_kind[0] == 400
    assert bad_kind[1]["error"]["details"]["parameter"] == "kind"


@pytest.mark.parametrize(
    ("query", "parameter", "status"),
    [
        ("rating=great", "rating", 400),
        ("bad=yes", "bad", 400),
        ("source=kiosk", "source", 400),
        ("since=yesterday", "since", 400),
        ("until=2026-02-30", "until", 400),
        ("cursor=bm9wZQ", "cursor", 400),
        ("limit=0", "limit", 400),
        ("colour=red", "colour", 400),
        ("department=" + "x" * 65, "department", 400),
        ("site=s999", None, 404),
        (f"node={HUADU}", None, 404),  # beyond the district token's scope
    ],
)
async def test_a_bad_listing_parameter_is_refused_naming_it(
    sqlite_url: str, query: str, parameter: str | None, status: int
) -> None:
    async with review_api(sqlite_url) as api:
        conghua = await api.token(Role.ADMIN, CONGHUA)
        got, body = await api.call("GET", f"/api/v1/reviews?{query}", conghua)

    assert got == status, body
    if parameter is not None:
        assert body["error"]["details"]["parameter"] == parameter


async def test_a_cursor_of_another_listing_is_refused(sqlite_url: str) -> None:
    async with review_api(sqlite_url) as api:
        for n in range(3):
            await add_review(W01, "satisfied", march(2 + n))
        admin = await api.token()
        first = await api.ok("/api/v1/reviews?limit=1", admin)
        refusal_cursor = "eyJhZnRlciI6NX0"  # {"after":5}: the refusals' kind of cursor
        wrong = await api.call("GET", f"/api/v1/reviews?cursor={refusal_cursor}", admin)
        right = await api.ok(f"/api/v1/reviews?limit=1&cursor={first['next_cursor']}", admin)

    assert wrong[0] == 400
    assert wrong[1]["error"]["details"]["parameter"] == "cursor"
    assert right["items"][0]["rated_at"] < first["items"][0]["rated_at"]


# --- policies -----------------------------------------------------------------------------------


async def put(api: ReviewApi, node: str, secret: str, deadline: object, within: object) -> Any:  # noqa: ANN401 - JSON
    body = {"deadline_working_days": deadline, "rate_within_days": within}
    return await api.call("PUT", f"/api/v1/review-policies/{node}", secret, body)


async def test_policies_are_set_refused_and_removed(database_url: str) -> None:
    async with review_api(database_url) as api:
        admin, conghua = await api.token(), await api.token(Role.ADMIN, CONGHUA)
        operator = await api.token(Role.OPERATOR, CONGHUA)
        village_site = (await Site.get(code="s440117101001")).id
        province = await put(api, "44", admin, 5, 7)
        district = await put(api, CONGHUA, conghua, 15, 10)
        district_rule = await policy_for_site(village_site)
        too_long = await put(api, CONGHUA, conghua, 61, 10)
        too_short = await put(api, CONGHUA, conghua, 15, 0)
        not_a_number = await put(api, CONGHUA, conghua, "15", 10)
        beyond = await put(api, HUADU, conghua, 15, 10)
        above = await put(api, "44", conghua, 15, 10)
        by_operator = await put(api, CONGHUA, operator, 15, 10)
        listed = await api.every("/api/v1/review-policies", conghua, page=1)
        removed = await api.call("DELETE", f"/api/v1/review-policies/{CONGHUA}", conghua)
        removed_again = await api.call("DELETE", f"/api/v1/review-policies/{CONGHUA}", conghua)
        province_rule = await policy_for_site(village_site)

    assert province[0] == 200, province
    assert district[0] == 200, district
    assert district[1]["node"] == CONGHUA
    assert district[1]["node_name"] == f"n{CONGHUA}"
    assert district[1]["updated_at"] == NOW.isoformat()
    assert district_rule == PolicyValues(15, 10, CONGHUA)
    for (status, body), field in (
        (too_long, "deadline_working_days"),
        (too_short, "rate_within_days"),
    ):
        assert status == 422, body
        assert body["error"]["code"] == "out_of_range"
        assert body["error"]["details"] == {"field": field}
    assert not_a_number[0] == 400
    assert not_a_number[1]["error"]["details"] == {"field": "deadline_working_days"}
    assert beyond[0] == above[0] == 404
    assert by_operator[0] == 403
    assert by_operator[1]["error"]["code"] == "forbidden"
    assert [(item["node"], item["within_scope"]) for item in listed] == [
        ("44", False),
        (CONGHUA, True),
    ]
    assert listed[1]["deadline_working_days"] == 15  # the refused changes changed nothing
    assert removed == (204, None)
    assert removed_again[0] == 404
    assert province_rule == PolicyValues(5, 7, "44")


# --- through make_app ---------------------------------------------------------------------------


async def test_the_server_app_serves_the_review_routes_with_the_default_rule(
    database_url: str,
) -> None:
    async with database(database_url):
        await build_world()
        await seed_march()
        fleet = FleetState(await registry.load_states())
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics), clock=lambda: NOW)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            api = ReviewApi(client)
            admin = await api.token()
            scores = await api.ok(f"{SCORES}?by=window", admin)
            refusals = await api.ok("/api/v1/reviews/refusals", admin)
            policies = await api.ok("/api/v1/review-policies", admin)
            listed = await api.ok("/api/v1/reviews?limit=1", admin)

    # The default rule ranks from 10 reviews: none of these windows has as many.
    assert [item["rank"] for item in scores["items"]] == [None] * 6
    assert scores["items"][0]["key"] == "s440114/W01"  # unranked lines by score, best first
    assert scores["rule"]["min_reviews"] == 10
    assert refusals == {"items": [], "next_cursor": None}
    assert policies == {"items": [], "next_cursor": None}
    assert listed["next_cursor"] is not None
    assert listed["items"][0]["rated_at"] == datetime(2026, 3, 31, 16, tzinfo=UTC).isoformat()
