"""/api/v1/stats/cases and /reviews on SQLite and PostgreSQL: the seed table in one call.

Also: groupings, scopes through both routes, and every bad parameter a 400 naming it.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from control_plane import stats
from control_plane.auth import Role
from control_plane.db.models import Department
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.stats_query import MAX_PERIOD_DAYS
from edge.protocol import CallForHelp, PrintJob, Rating, Review, Transaction, TransactionOutcome
from tests.support.scoped_fleet import (
    DEVICES_AT,
    DISTRICT,
    NODES,
    TOWN_A,
    TOWN_X,
    UNPLACED,
    VILLAGE_A1,
    document,
    visible,
    within,
)
from tests.support.stats_api import stats_api
from tests.support.stats_fixture import SEED, SHANGHAI, seed_district, store

ROUTES = ("/api/v1/stats/cases", "/api/v1/stats/reviews")
NOW = datetime(2026, 4, 20, 2, tzinfo=UTC)
QUARTER = "from=2026-01-01&to=2026-03-31"


def clock() -> datetime:
    return NOW


def by_key(items: list[dict[str, Any]], key: str, figure: str) -> dict[Any, Any]:
    return {item[key]: item[figure] for item in items}


# --- the seed table --------------------------------------------------------------------------


async def test_the_seed_table_is_one_call_by_level_for_the_district_over_the_quarter(
    database_url: str,
) -> None:
    """Conghua, Q1: district hall 34,435, town centres 5,277, village halls 1,311 (seed 000)."""
    async with stats_api(database_url, clock) as (api, roll_up):
        await seed_district()
        await roll_up()
        admin = await api.token()

        body = await api.ok(f"/api/v1/stats/cases?by=level&node=440117&{QUARTER}", admin)
        reviews = await api.ok(f"/api/v1/stats/reviews?by=level&node=440117&{QUARTER}", admin)

    assert by_key(body["items"], "level", "cases") == SEED
    assert body["total"]["cases"] == 41_023
    assert body["total"]["window_cases"] == 41_023
    assert body["total"]["self_service_cases"] == 0
    assert (body["from"], body["to"], body["by"], body["node"]) == (
        "2026-01-01",
        "2026-03-31",
        ["level"],
        "440117",
    )
    assert body["rolled_up_at"] is not None
    # The district hall's kiosk rated one of its own transactions too: a review, not a case.
    assert by_key(reviews["items"], "level", "reviews") == {
        "district": 34_436,
        "town": 5_277,
        "village": 1_311,
    }
    assert reviews["total"]["bad_reviews"] == 0
    assert reviews["total"]["satisfaction_rate"] == 1.0
    town = next(item for item in reviews["items"] if item["level"] == "town")
    assert (town["very_satisfied"], town["satisfied"], town["basic"]) == (1759, 1759, 1759)


async def test_a_town_operator_gets_its_towns_figures_only(database_url: str) -> None:
    async with stats_api(database_url, clock) as (api, roll_up):
        await seed_district()
        await roll_up()
        town = await api.token(Role.OPERATOR, "440117101")

        body = await api.ok(f"/api/v1/stats/cases?by=level,site&{QUARTER}", town)
        status, refused = await api.get(f"/api/v1/stats/cases?node=440117&{QUARTER}", town)

    # Town 101 has its own centre and two of the three villages: 5,277 over two town pads
    # (one each way), 1,311 over three village pads.
    assert {(item["level"], item["site"]) for item in body["items"]} == {
        ("town", "s440117101"),
        ("village", "s440117101001"),
        ("village", "s440117101002"),
    }
    assert by_key(body["items"], "site", "cases") == {
        "s440117101": 2639,
        "s440117101001": 437,
        "s440117101002": 437,
    }
    assert body["node"] == "440117101"
    assert status == 403
    assert refused["error"]["code"] == "out_of_scope"


# --- groupings -------------------------------------------------------------------------------

JAN = datetime(2026, 1, 15, 2, tzinfo=UTC)  # 10:00 in Shanghai
FEB = datetime(2026, 2, 3, 2, tzinfo=UTC)


async def usage_in_the_scoped_tree() -> None:
    await import_inventory(read_json(document(), "scoped.json"))
    await Department.create(code="rs", name="人社")
    await store(
        [
            ("kiosk-a", Transaction(department="rs", item_code="RS-1"), JAN),
            ("kiosk-a", Transaction(department="rs", item_code="RS-1"), FEB),
            ("kiosk-a", Transaction(department="ga", item_code="GA-1"), FEB),
            ("kiosk-a", Transaction(item_code="GA-1", outcome=TransactionOutcome.FAILED), FEB),
            ("kiosk-a", PrintJob(pages=3), FEB),
            ("kiosk-a", CallForHelp(), FEB),
            ("pad-a1", Review(case_number="1", rating=Rating.DISSATISFIED, institution="rs"), JAN),
            ("kiosk-b", Transaction(department="rs", item_code="RS-1"), JAN),
            ("kiosk-d", Transaction(department="rs", item_code="RS-2"), FEB),
            (UNPLACED, Transaction(department="rs", item_code="RS-9"), FEB),
        ]
    )


async def test_by_node_gives_the_children_of_the_node_each_with_its_subtree(
    database_url: str,
) -> None:
    async with stats_api(database_url, clock) as (api, roll_up):
        await usage_in_the_scoped_tree()
        await roll_up()
        admin = await api.token()

        district = await api.ok(f"/api/v1/stats/cases?by=node&node={DISTRICT}&{QUARTER}", admin)
        town_a = await api.ok(f"/api/v1/stats/cases?by=node&node={TOWN_A}&{QUARTER}", admin)
        tree = await api.ok(f"/api/v1/stats/cases?by=node&{QUARTER}", admin)

    # The district hall hangs off the district itself: its own group. Town A has its village.
    assert by_key(district["items"], "node", "cases") == {DISTRICT: 1, TOWN_A: 4, "440117002": 1}
    assert by_key(district["items"], "node", "node_name")[TOWN_A] == f"n{TOWN_A}"
    assert by_key(town_a["items"], "node", "cases") == {TOWN_A: 3, VILLAGE_A1: 1}
    # The whole tree: its root, and the device placed nowhere, last, as a group of None.
    assert [(item["node"], item["cases"]) for item in tree["items"]] == [("44", 6), (None, 1)]


async def test_groupings_combine_and_name_their_codes(database_url: str) -> None:
    async with stats_api(database_url, clock) as (api, roll_up):
        await usage_in_the_scoped_tree()
        await roll_up()
        admin = await api.token()
        query = f"node={TOWN_A}&{QUARTER}"

        by_month = await api.ok(f"/api/v1/stats/cases?by=department,month&{query}", admin)
        by_day = await api.ok(f"/api/v1/stats/cases?by=day&by=item&{query}", admin)
        filtered = await api.ok(f"/api/v1/stats/cases?by=site&department=rs&{query}", admin)
        villages = await api.ok(f"/api/v1/stats/cases?by=site&level=village&{query}", admin)

    assert [
        (item["department"], item["department_name"], item["month"], item["cases"])
        for item in by_month["items"]
    ] == [
        ("", None, "2026-02", 0),  # the print, the help call and the failed transaction
        ("ga", None, "2026-02", 1),
        ("rs", "人社", "2026-01", 2),  # kiosk-a's transaction and pad-a1's rated case
        ("rs", "人社", "2026-02", 1),
    ]
    blank = next(item for item in by_month["items"] if item["department"] == "")
    assert (blank["pages_printed"], blank["help_calls"], blank["transactions_failed"]) == (3, 1, 1)
    assert [(item["day"], item["item"], item["cases"]) for item in by_day["items"]] == [
        ("2026-01-15", "", 1),
        ("2026-01-15", "RS-1", 1),
        ("2026-02-03", "", 0),
        ("2026-02-03", "GA-1", 1),
        ("2026-02-03", "RS-1", 1),
    ]
    assert [(item["site"], item["cases"]) for item in filtered["items"]] == [
        (f"s{TOWN_A}", 2),
        (f"s{VILLAGE_A1}", 1),
    ]
    assert filtered["filters"] == {"department": "rs", "item": None, "level": None}
    assert [(item["site"], item["site_name"]) for item in villages["items"]] == [
        (f"s{VILLAGE_A1}", f"site {VILLAGE_A1}")
    ]


async def test_without_by_there_is_one_group_and_without_a_period_the_last_30_days(
    database_url: str,
) -> None:
    recent = NOW - timedelta(days=29)
    async with stats_api(database_url, clock) as (api, roll_up):
        await usage_in_the_scoped_tree()
        await store([("kiosk-b", Transaction(item_code="new"), recent)], first_seq=100)
        await roll_up()

        body = await api.ok("/api/v1/stats/cases", await api.token())

    assert (body["from"], body["to"]) == ("2026-03-22", "2026-04-20")
    assert [item["cases"] for item in body["items"]] == [1]
    assert body["total"]["cases"] == 1


async def test_any_period_counts_exactly_the_days_in_it(database_url: str) -> None:
    """Months and the days around them, read from two tables, sum as the days one by one."""
    rng = random.Random(4)
    first = date(2025, 12, 1)
    per_day = {first + timedelta(days=n): rng.randrange(3) for n in range(120)}
    records = [
        ("kiosk-a", CallForHelp(), datetime.combine(day, time(10), SHANGHAI))
        for day, count in per_day.items()
        for _ in range(count)
    ]
    periods = [(date(2026, 1, 1), date(2026, 2, 28)), (date(2025, 12, 31), date(2026, 3, 1))]
    for _ in range(12):
        low, high = sorted(rng.sample(sorted(per_day), 2))
        periods.append((low, high))
    async with stats_api(database_url, clock) as (api, roll_up):
        await import_inventory(read_json(document(), "scoped.json"))
        await store(records)
        await roll_up()
        admin = await api.token()

        for low, high in periods:
            query = f"from={low}&to={high}"
            body = await api.ok(f"/api/v1/stats/cases?{query}", admin)
            by_month = await api.ok(f"/api/v1/stats/cases?by=month,level&{query}", admin)
            by_day = await api.ok(f"/api/v1/stats/cases?by=day&{query}", admin)

            expected = sum(count for day, count in per_day.items() if low <= day <= high)
            assert body["total"]["help_calls"] == expected, (low, high)
            assert sum(item["help_calls"] for item in by_month["items"]) == expected
            assert {item["day"]: item["help_calls"] for item in by_day["items"]} == {
                day.isoformat(): count
                for day, count in per_day.items()
                if low <= day <= high and count
            }


# --- scopes ----------------------------------------------------------------------------------

SCOPES: list[str | None] = [None, *(code for code, _, _ in NODES)]
ITEM_OF = {device: f"item-{device}" for device in [*DEVICES_AT, UNPLACED]}


async def one_case_per_device() -> None:
    """Each device of the scoped tree (and one placed nowhere) reports one item of its own."""
    await import_inventory(read_json(document(), "scoped.json"))
    await store(
        [
            (device, record, JAN)
            for device, item in ITEM_OF.items()
            for record in (
                Transaction(item_code=item),
                Review(case_number=device, item_code=item, rating=Rating.SATISFIED),
            )
        ]
    )


@pytest.mark.parametrize("path", ROUTES)
async def test_each_scope_counts_its_subtree_and_nothing_else(database_url: str, path: str) -> None:
    async with stats_api(database_url, clock) as (api, roll_up):
        await one_case_per_device()
        await roll_up()

        for scope in SCOPES:
            secret = await api.token(Role.AUDITOR, scope)
            body = await api.ok(f"{path}?by=item&{QUARTER}", secret)

            items = {item["item"] for item in body["items"]}
            assert items == {ITEM_OF[device] for device in visible(scope)}, scope
            assert body["node"] == scope


@pytest.mark.parametrize("path", ROUTES)
async def test_a_node_outside_the_scope_is_refused_and_one_inside_counts_its_subtree(
    database_url: str, path: str
) -> None:
    async with stats_api(database_url, clock) as (api, roll_up):
        await one_case_per_device()
        await roll_up()

        for scope in SCOPES:
            secret = await api.token(Role.OPERATOR, scope)
            for node, _, _ in NODES:
                status, body = await api.get(f"{path}?by=item&node={node}&{QUARTER}", secret)
                if not within(node, scope):
                    assert (status, body["error"]["code"]) == (403, "out_of_scope"), (scope, node)
                    continue
                assert status == 200, body
                expected = {ITEM_OF[d] for d in DEVICES_AT if within(DEVICES_AT[d], node)}
                assert {item["item"] for item in body["items"]} == expected, (scope, node)


async def test_to_a_scoped_token_a_node_that_does_not_exist_is_out_of_its_scope(
    database_url: str,
) -> None:
    async with stats_api(database_url, clock) as (api, _):
        await import_inventory(read_json(document(), "scoped.json"))
        town_a = await api.token(Role.OPERATOR, TOWN_A)

        missing = await api.get(f"/api/v1/stats/cases?node=440117009&{QUARTER}", town_a)
        elsewhere = await api.get(f"/api/v1/stats/cases?node=440117002&{QUARTER}", town_a)

    assert missing[0] == elsewhere[0] == 403
    assert missing[1]["error"] == elsewhere[1]["error"]


async def test_a_town_whose_code_starts_like_another_is_not_in_its_subtree(
    database_url: str,
) -> None:
    async with stats_api(database_url, clock) as (api, roll_up):
        await one_case_per_device()
        await roll_up()
        town_a = await api.token(Role.OPERATOR, TOWN_A)

        body = await api.ok(f"/api/v1/stats/cases?by=site&{QUARTER}", town_a)
        status, _ = await api.get(f"/api/v1/stats/cases?node={TOWN_X}&{QUARTER}", town_a)

    assert f"s{TOWN_X}" not in {item["site"] for item in body["items"]}
    assert status == 403


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("role", list(Role))
async def test_stats_need_the_stats_permission(sqlite_url: str, path: str, role: Role) -> None:
    allowed = role in {Role.ADMIN, Role.OPERATOR, Role.AUDITOR}  # as docs/statistics.md says
    async with stats_api(sqlite_url, clock) as (api, _):
        status, body = await api.get(path, await api.token(role))

    assert status == (200 if allowed else 403), body
    if not allowed:
        assert body["error"]["code"] == "forbidden"
        assert "stats.read" in body["error"]["message"]


@pytest.mark.parametrize("path", ROUTES)
async def test_without_a_token_the_stats_say_401(sqlite_url: str, path: str) -> None:
    async with stats_api(sqlite_url, clock) as (api, _):
        response = await api.client.get(path)

    assert response.status == 401


# --- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("by=colour", "by"),
        ("by=level,level", "by"),
        ("by=day,month", "by"),
        ("by=", "by"),
        ("from=2026-03-01&to=2026-02-01", "from"),
        ("from=2020-01-01&to=2026-03-31", "from"),
        ("from=2026-02-30", "from"),
        ("from=20260101", "from"),
        ("to=yesterday", "to"),
        ("to=2026-01-01&to=2026-01-02", "to"),
        ("node=not-a-code", "node"),
        ("node=440199", "node"),
        ("level=county", "level"),
        ("department=" + "d" * 65, "department"),
        ("item=", "item"),
        ("site=s440117", "site"),
        ("limit=10", "limit"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(
    sqlite_url: str, path: str, query: str, parameter: str
) -> None:
    async with stats_api(sqlite_url, clock) as (api, _):
        await import_inventory(read_json(document(), "scoped.json"))
        status, body = await api.get(f"{path}?{query}", await api.token())

    assert status == 400, body
    assert body["error"]["code"] == "invalid_parameter"
    assert parameter in body["error"]["message"]
    assert body["error"]["details"] == {"parameter": parameter}


@pytest.mark.parametrize(
    ("query", "parameter"), [("node=440199", "node"), ("from=2026-03-01&to=2026-02-01", "from")]
)
async def test_bad_parameters_are_400s_on_both_databases(
    database_url: str, query: str, parameter: str
) -> None:
    async with stats_api(database_url, clock) as (api, _):
        status, body = await api.get(f"/api/v1/stats/cases?{query}", await api.token())

    assert (status, body["error"]["code"]) == (400, "invalid_parameter")
    assert body["error"]["message"].startswith(parameter)
    assert body["error"]["details"] == {"parameter": parameter}


async def test_too_many_groups_is_a_400_naming_by(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stats, "MAX_GROUPS", 2)
    async with stats_api(database_url, clock) as (api, roll_up):
        await one_case_per_device()
        await roll_up()
        admin = await api.token()

        status, body = await api.get(f"/api/v1/stats/cases?by=item&{QUARTER}", admin)
        fits = await api.ok(f"/api/v1/stats/cases?by=item&node={TOWN_A}&{QUARTER}", admin)

    assert status == 400, body
    assert body["error"]["message"].startswith("by: more than 2 groups")
    assert len(fits["items"]) == 2


def test_the_longest_period_is_three_years() -> None:
    assert date(2026, 1, 1) + timedelta(days=MAX_PERIOD_DAYS - 1) == date(2028, 12, 31)
