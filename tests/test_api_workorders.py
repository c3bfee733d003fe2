"""/api/v1/workorders over a real aiohttp server on the scoped tree, on both databases.

Orders are seeded as the ingest opens them (``tests/support/workorder_seed.py``) and walked on
through the API: every action at least once, to 办结 and to 申诉成立, refusals with their codes,
the permission each side of the work needs, scopes, listings, overdue and the summary's figures
worked out by hand. The API's clock is 10:00 on 10 March 2026 in Asia/Shanghai.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import msgspec
import pytest

from control_plane.auth import Role
from control_plane.db.models import AuditEntry
from control_plane.db.review_models import ReviewRow, WorkOrderEvent, WorkOrderRow
from control_plane.http import workorder_schemas as shapes
from control_plane.reviews.workorders import Action, CallOutcome
from tests.support.admin_api import Api
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_B, TOWN_X, VILLAGE_A1
from tests.support.workorder_seed import (
    DUE_LATER,
    DUE_PAST,
    NOW,
    OPENED,
    Clock,
    seed_order,
    step,
    workorder_api,
)

A = Action
ORDERS = "/api/v1/workorders"
HOUR = timedelta(hours=1)
UNIT_ACTIONS = [
    "call_back", "verify", "fix_now", "set_deadline", "mark_fixed", "explain", "give_feedback",
    "appeal",
]  # fmt: skip
SUPERVISOR_ACTIONS = ["approve", "send_back", "uphold_appeal", "reject_appeal"]


async def act(
    api: Api, order_id: int, secret: str, action: str, **fields: object
) -> tuple[int, Any]:
    body = {"action": action, "note": f"{action} noted", **fields}
    return await api.call("POST", f"{ORDERS}/{order_id}/transitions", secret, body)


async def walk(
    api: Api, clock: Clock, order_id: int, moves: list[tuple[str, str, Mapping[str, object], str]]
) -> None:
    """Each move as (token, action, fields, the state it must lead to), a minute apart."""
    for secret, action, fields, state in moves:
        clock.now += timedelta(minutes=1)
        status, view = await act(api, order_id, secret, action, **fields)
        assert status == 200, (action, view)
        assert view["state"] == state, (action, view)


# --- every action, to 办结 and to 申诉成立 -----------------------------------------------------


async def test_every_action_walks_orders_to_closed_and_an_appeal_to_upheld(
    database_url: str,
) -> None:
    clock = Clock()
    async with workorder_api(database_url, clock) as api:
        unit = await api.token(Role.OPERATOR, TOWN_A)  # workorders.handle only
        supervisor = await api.token(Role.ADMIN, DISTRICT)  # both; it takes the review's part
        first = await seed_order("c-first", site=f"s{TOWN_A}")
        second = await seed_order("c-second", site=f"s{VILLAGE_A1}")
        third = await seed_order("c-third", site=f"s{TOWN_A}")
        fix_by = (NOW + timedelta(days=3)).date().isoformat()
        not_reached = {"outcome": "not_reached"}
        await walk(api, clock, first, [
            (unit, "call_back", not_reached, "to_call_back"),
            (unit, "call_back", not_reached, "to_call_back"),
            (unit, "call_back", not_reached, "to_call_back"),
            (unit, "verify", {}, "verified"),  # after three calls that did not reach
            (unit, "explain", {}, "explained"),
            (unit, "give_feedback", {}, "fed_back"),
            (supervisor, "send_back", {}, "verified"),
            (unit, "set_deadline", {"fix_by": fix_by}, "fixing"),
            (unit, "mark_fixed", {}, "fixed"),
            (unit, "give_feedback", {}, "fed_back"),
            (supervisor, "approve", {}, "closed"),
        ])  # fmt: skip
        await walk(api, clock, second, [
            (unit, "call_back", {"outcome": "reached"}, "called_back"),
            (unit, "appeal", {}, "appealed"),
            (supervisor, "reject_appeal", {}, "called_back"),
            (unit, "verify", {}, "verified"),
            (unit, "fix_now", {}, "fixed"),
            (unit, "give_feedback", {}, "fed_back"),
            (supervisor, "approve", {}, "closed"),
        ])  # fmt: skip
        await walk(api, clock, third, [
            (unit, "appeal", {}, "appealed"),
            (supervisor, "uphold_appeal", {}, "appeal_upheld"),
        ])  # fmt: skip
        closed = await api.ok("GET", f"{ORDERS}/{first}", unit)
        closed_too = await api.ok("GET", f"{ORDERS}/{second}", unit)
        upheld = await api.ok("GET", f"{ORDERS}/{third}", supervisor)
        events = await WorkOrderEvent.all().count()
        audited = [entry.action for entry in await AuditEntry.filter(target_type="workorder")]
        reviews = {r.case_number: r.voided_at for r in await ReviewRow.all()}
        rows = {r.id: r for r in await WorkOrderRow.all()}

    taken = {s["action"] for view in (closed, closed_too, upheld) for s in view["history"]}
    assert taken == set(UNIT_ACTIONS + SUPERVISOR_ACTIONS)
    assert {s["outcome"] for s in closed["history"] + closed_too["history"]} >= {
        "reached", "not_reached"
    }  # fmt: skip
    assert closed_too["state"] == "closed"
    assert closed_too["remedy"] == "fix_now"
    assert closed["state"] == "closed"
    assert closed["open"] is False
    assert closed["closed_at"] is not None
    assert closed["allowed_actions"] == []
    assert [s["to_state"] for s in closed["history"]][-3:] == ["fixed", "fed_back", "closed"]
    history = closed["history"]
    assert (history[0]["actor"], history[0]["role"], history[0]["outcome"]) == (
        f"operator-{TOWN_A}-0", "unit", "not_reached"
    )  # fmt: skip
    assert (history[6]["action"], history[6]["actor"], history[6]["role"]) == (
        "send_back", f"admin-{DISTRICT}-1", "supervisor"
    )  # fmt: skip
    assert history[7]["fix_by"] == fix_by
    assert closed["fix_by"] == fix_by
    assert closed["remedy"] == "set_deadline"
    assert closed["called_back"] is True
    assert closed["unreached_calls"] == 3
    assert [s["at"] for s in history] == sorted(s["at"] for s in history)
    assert upheld["voided"] is True
    assert upheld["review"]["voided_at"] is not None
    assert reviews["c-third"] is not None
    assert reviews["c-first"] is None
    assert reviews["c-second"] is None
    assert rows[third].voided
    assert rows[third].closed_at is not None
    assert events == 11 + 7 + 2
    assert len(audited) == events
    assert set(audited) == {f"workorder.{a}" for a in UNIT_ACTIONS + SUPERVISOR_ACTIONS}


# --- refusals ---------------------------------------------------------------------------------


async def test_a_refused_transition_is_a_409_with_its_code_and_nothing_is_written(
    database_url: str,
) -> None:
    async with workorder_api(database_url) as api:
        admin = await api.token()
        fresh = await seed_order("c-fresh", site=f"s{TOWN_A}")
        done = [
            step(A.CALL_BACK, OPENED + HOUR, outcome=CallOutcome.REACHED),
            step(A.VERIFY, OPENED + HOUR),
            step(A.FIX_NOW, OPENED + HOUR),
            step(A.GIVE_FEEDBACK, OPENED + HOUR),
            step(A.APPROVE, OPENED + HOUR),
        ]
        closed = await seed_order("c-closed", site=f"s{TOWN_A}", steps=done)
        refusals = {
            "illegal": await act(api, fresh, admin, "approve"),
            "call_back_first": await act(api, fresh, admin, "verify"),
            "note": await act(api, fresh, admin, "appeal", note="   "),
            "outcome": await act(api, fresh, admin, "call_back"),
            "field": await act(api, fresh, admin, "appeal", outcome="reached"),
            "fix_by": await act(
                api, fresh, admin, "call_back", outcome="reached", fix_by="2026-04-01"
            ),
            "closed": await act(api, closed, admin, "send_back"),
        }  # fmt: skip
        events = await WorkOrderEvent.all().count()
        audited = await AuditEntry.filter(target_type="workorder").count()
        state = (await WorkOrderRow.get(id=fresh)).state

    codes = {name: (status, body["error"]["code"]) for name, (status, body) in refusals.items()}
    assert codes == {
        "illegal": (409, "illegal_transition"),
        "call_back_first": (409, "call_back_first"),
        "note": (409, "note_required"),
        "outcome": (409, "outcome_required"),
        "field": (409, "field_not_allowed"),
        "fix_by": (409, "field_not_allowed"),
        "closed": (409, "order_closed"),
    }
    message = refusals["illegal"][1]["error"]["message"]
    assert (
        message == "a to_call_back order cannot take approve (allowed: call_back, verify, appeal)"
    )
    assert (events, audited, state) == (5, 0, "to_call_back")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"note": "x"}, "action"),
        ({"action": "call_back"}, "note"),
        ({"action": "close", "note": "x"}, "action"),
        ({"action": 3, "note": "x"}, "action"),
        ({"action": "call_back", "note": 5}, "note"),
        ({"action": "call_back", "note": "x", "outcome": "maybe"}, "outcome"),
        ({"action": "set_deadline", "note": "x", "fix_by": "20260401"}, "fix_by"),
        ({"action": "set_deadline", "note": "x", "fix_by": "2026-02-30"}, "fix_by"),
        ({"action": "appeal", "note": "x", "actor": "someone else"}, "actor"),
    ],
)
async def test_a_body_that_does_not_decode_is_a_400_naming_the_field(
    sqlite_url: str, body: dict[str, object], field: str
) -> None:
    async with workorder_api(sqlite_url) as api:
        admin = await api.token()
        order_id = await seed_order("c-body", site=f"s{TOWN_A}")
        status, answer = await api.call("POST", f"{ORDERS}/{order_id}/transitions", admin, body)
        not_json = await api.call("POST", f"{ORDERS}/{order_id}/transitions", admin, raw=b"[1, 2")
        events = await WorkOrderEvent.all().count()

    assert (status, answer["error"]["code"]) == (400, "invalid_field"), answer
    assert answer["error"]["details"]["field"] == field
    assert (not_json[0], not_json[1]["error"]["code"]) == (400, "invalid_body")
    assert events == 0


async def test_each_side_needs_its_own_permission(database_url: str) -> None:
    async with workorder_api(database_url) as api:
        operator = await api.token(Role.OPERATOR)
        auditor = await api.token(Role.AUDITOR)
        technician = await api.token(Role.TECHNICIAN)
        appealed = [step(A.APPEAL, OPENED + HOUR)]
        order_id = await seed_order("c-perm", site=f"s{TOWN_A}", steps=appealed)
        supervisor_by_operator = await act(api, order_id, operator, "uphold_appeal")
        unit_by_auditor = await act(api, order_id, auditor, "call_back", outcome="reached")
        read_by_technician = await api.call("GET", f"{ORDERS}/{order_id}", technician)
        shown_to = {
            "operator": await api.ok("GET", f"{ORDERS}/{order_id}", operator),
            "auditor": await api.ok("GET", f"{ORDERS}/{order_id}", auditor),
            "admin": await api.ok("GET", f"{ORDERS}/{order_id}", await api.token()),
        }
        state = (await WorkOrderRow.get(id=order_id)).state

    status, body = supervisor_by_operator
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert body["error"]["details"] == {"permission": "workorders.review", "role": "operator"}
    status, body = unit_by_auditor
    assert (status, body["error"]["details"]["permission"]) == (403, "workorders.handle")
    status, body = read_by_technician
    assert (status, body["error"]["details"]["permission"]) == (403, "reviews.read")
    assert {who: view["allowed_actions"] for who, view in shown_to.items()} == {
        "operator": [],  # appealed: only the supervisor acts
        "auditor": [],
        "admin": ["uphold_appeal", "reject_appeal"],
    }
    assert state == "appealed"


async def test_an_order_beyond_the_scope_is_a_404_like_a_missing_one(database_url: str) -> None:
    async with workorder_api(database_url) as api:
        in_a = await seed_order("c-in-a", site=f"s{TOWN_A}")
        nowhere = await seed_order("c-nowhere", site=None)
        town_b = await api.token(Role.ADMIN, TOWN_B)
        district = await api.token(Role.ADMIN, DISTRICT)
        whole_tree = await api.token()
        answers = {
            "other town": await api.call("GET", f"{ORDERS}/{in_a}", town_b),
            "other town acts": await act(api, in_a, town_b, "appeal"),
            "no site, scoped": await api.call("GET", f"{ORDERS}/{nowhere}", district),
            "missing": await api.call("GET", f"{ORDERS}/999999", whole_tree),
            "not an id": await api.call("GET", f"{ORDERS}/abc", whole_tree),
            "too large": await api.call("GET", f"{ORDERS}/{2**64}", whole_tree),
        }
        seen_by_district = await api.ok("GET", f"{ORDERS}/{in_a}", district)
        nowhere_by_whole_tree = await api.ok("GET", f"{ORDERS}/{nowhere}", whole_tree)
        state = (await WorkOrderRow.get(id=in_a)).state

    assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(answers, 404)
    assert answers["other town"][1]["error"]["message"] == f"no work order has the id '{in_a}'"
    assert seen_by_district["site"] == f"s{TOWN_A}"
    assert nowhere_by_whole_tree["site"] is None
    assert state == "to_call_back"


# --- reading ----------------------------------------------------------------------------------


async def test_an_order_shows_its_review_and_history(database_url: str) -> None:
    async with workorder_api(database_url) as api:
        operator = await api.token(Role.OPERATOR, TOWN_A)
        reached = [step(A.CALL_BACK, OPENED + HOUR, outcome=CallOutcome.REACHED, actor="s7")]
        order_id = await seed_order(
            "c-show", site=f"s{TOWN_A}", steps=reached, rating="very_dissatisfied",
            item_name="居民身份证换领", comment="waited two hours",
        )  # fmt: skip
        view = await api.ok("GET", f"{ORDERS}/{order_id}", operator)

    assert view["review"] == {
        "case_number": "c-show", "rating": "very_dissatisfied",
        "indicators": {"attitude": "very_dissatisfied"}, "comment": "waited two hours",
        "item_code": "item-110", "item_name": "居民身份证换领", "channel": "window_pad",
        "department": "gongan", "window": "03", "staff": "staff-7", "source": "terminal",
        "rated_at": (OPENED - timedelta(minutes=5)).isoformat(), "voided_at": None,
    }  # fmt: skip
    assert view["history"] == [
        {
            "action": "call_back", "from_state": "to_call_back", "to_state": "called_back",
            "actor": "s7", "role": "unit", "at": (OPENED + HOUR).isoformat(), "note": "done",
            "outcome": "reached", "fix_by": None,
        }
    ]  # fmt: skip
    assert (view["state"], view["due"], view["overdue"], view["site"]) == (
        "called_back", DUE_PAST.isoformat(), True, f"s{TOWN_A}"
    )  # fmt: skip
    assert view["allowed_actions"] == ["verify", "appeal"]
    assert (view["window"], view["staff"], view["rating"]) == ("03", "staff-7", "very_dissatisfied")


async def seed_listing() -> dict[str, int]:
    """Orders in town A, its village, town B, town X (whose code starts like A's) and nowhere."""
    reach = [step(A.CALL_BACK, OPENED + HOUR, outcome=CallOutcome.REACHED)]
    upheld = [step(A.APPEAL, OPENED + HOUR), step(A.UPHOLD_APPEAL, OPENED + 2 * HOUR)]
    return {
        "a-new": await seed_order("a-new", site=f"s{TOWN_A}"),
        "a-reached": await seed_order("a-reached", site=f"s{TOWN_A}", steps=reach, due=DUE_LATER),
        "a-upheld": await seed_order("a-upheld", site=f"s{TOWN_A}", steps=upheld),
        "village": await seed_order("village", site=f"s{VILLAGE_A1}", department="minzheng"),
        "b": await seed_order("b", site=f"s{TOWN_B}", steps=reach),
        "x": await seed_order("x", site=f"s{TOWN_X}", due=DUE_LATER),
        "nowhere": await seed_order("nowhere", site=None),
    }


async def test_the_listing_filters_pages_and_keeps_to_the_scope(database_url: str) -> None:
    async with workorder_api(database_url) as api:
        ids = await seed_listing()
        case_of = {order_id: case for case, order_id in ids.items()}
        whole, town_a = await api.token(), await api.token(Role.AUDITOR, TOWN_A)

        async def cases(query: str, secret: str = whole) -> list[str]:
            return [case_of[item["id"]] for item in await api.listing(ORDERS + query, secret)]

        listed = {
            "all": await cases(""),
            "town A's token": await cases("", town_a),
            "repeated states": await cases("?state=called_back&state=appeal_upheld"),
            "joined states": await cases("?state=called_back,appeal_upheld"),
            "site": await cases(f"?site=s{TOWN_A}"),
            "department": await cases("?department=minzheng"),
            "open": await cases("?open=true", town_a),
            "final": await cases("?open=false"),
            "overdue": await cases("?overdue=true"),
            "not overdue": await cases("?overdue=false&site=s" + TOWN_A),
            "together": await cases(f"?open=true&overdue=true&site=s{TOWN_A}"),
        }
        first_page = await api.ok("GET", f"{ORDERS}?limit=3", whole)
        refused = {
            "state": await api.call("GET", f"{ORDERS}?state=done", whole),
            "flag": await api.call("GET", f"{ORDERS}?overdue=yes", whole),
            "unknown": await api.call("GET", f"{ORDERS}?colour=red", whole),
            "cursor": await api.call("GET", f"{ORDERS}?cursor=abc", whole),
            "limit": await api.call("GET", f"{ORDERS}?limit=0", whole),
        }
        other_site = await api.call("GET", f"{ORDERS}?site=s{TOWN_B}", town_a)

    assert listed == {
        "all": ["a-new", "a-reached", "a-upheld", "village", "b", "x", "nowhere"],
        "town A's token": ["a-new", "a-reached", "a-upheld", "village"],
        "repeated states": ["a-reached", "a-upheld", "b"],
        "joined states": ["a-reached", "a-upheld", "b"],
        "site": ["a-new", "a-reached", "a-upheld"],
        "department": ["village"],
        "open": ["a-new", "a-reached", "village"],
        "final": ["a-upheld"],
        "overdue": ["a-new", "village", "b", "nowhere"],
        "not overdue": ["a-reached", "a-upheld"],
        "together": ["a-new"],
    }
    assert len(first_page["items"]) == 3
    assert first_page["next_cursor"]
    assert {name: (s, b["error"]["details"]["parameter"]) for name, (s, b) in refused.items()} == {
        "state": (400, "state"), "flag": (400, "overdue"), "unknown": (400, "colour"),
        "cursor": (400, "cursor"), "limit": (400, "limit"),
    }  # fmt: skip
    assert other_site[0] == 404


async def test_overdue_follows_the_clock_and_the_fix_by_date(database_url: str) -> None:
    clock = Clock()
    async with workorder_api(database_url, clock) as api:
        admin = await api.token()
        fixing = [
            step(A.CALL_BACK, OPENED, outcome=CallOutcome.REACHED),
            step(A.VERIFY, OPENED),
            step(A.SET_DEADLINE, OPENED, fix_by=date(2026, 3, 12)),
        ]
        due_later = await seed_order("later", site=f"s{TOWN_A}", due=DUE_LATER)
        late_fix = await seed_order("fix", site=f"s{TOWN_A}", due=DUE_LATER, steps=fixing)

        async def overdue() -> list[int]:
            return [item["id"] for item in await api.listing(f"{ORDERS}?overdue=true", admin)]

        on_the_10th = await overdue()
        clock.now = NOW + timedelta(days=3)  # the 13th: past the fix-by date, not the due date
        on_the_13th = await overdue()
        clock.now = NOW + timedelta(days=6, hours=14)  # 00:00 on the 17th in Shanghai
        on_the_17th = await overdue()
        shown = await api.ok("GET", f"{ORDERS}/{late_fix}", admin)

    assert on_the_10th == []
    assert on_the_13th == [late_fix]
    assert on_the_17th == [due_later, late_fix]
    assert shown["overdue"] is True


# --- the summary ------------------------------------------------------------------------------


async def test_the_summary_is_the_figures_worked_out_by_hand(database_url: str) -> None:
    """Six orders in town A and its village, one in town B (out of town A's scope).

    | case | state | called back | overdue on the 10th | final, in time |
    |---|---|---|---|---|
    | new | to_call_back (due the 9th) | no | yes | - |
    | tried | to_call_back, one call not reached (due the 16th) | no | no | - |
    | reached | called_back (due the 9th) | yes | yes | - |
    | closed-early | closed on the 5th (due the 9th) | yes | no | yes |
    | closed-late | closed on the 10th (due the 9th) | yes | no | no |
    | upheld | appeal_upheld on the 3rd: voided | (left out) | no | yes |

    回访率 = 3 called back of 5 counted (the voided one left out) = 0.6.
    """
    reach = step(A.CALL_BACK, OPENED + HOUR, outcome=CallOutcome.REACHED)

    def closed_on(day: int) -> list[Any]:
        at = OPENED + timedelta(days=day - 2)
        return [reach, step(A.VERIFY, at), step(A.EXPLAIN, at), step(A.GIVE_FEEDBACK, at),
                step(A.APPROVE, at)]  # fmt: skip

    tried = [step(A.CALL_BACK, OPENED + HOUR, outcome=CallOutcome.NOT_REACHED)]
    upheld = [step(A.APPEAL, OPENED + HOUR), step(A.UPHOLD_APPEAL, OPENED + timedelta(days=1))]
    async with workorder_api(database_url) as api:
        await seed_order("new", site=f"s{TOWN_A}")
        await seed_order("tried", site=f"s{TOWN_A}", steps=tried, due=DUE_LATER)
        await seed_order("reached", site=f"s{VILLAGE_A1}", steps=[reach], department="minzheng")
        await seed_order("closed-early", site=f"s{TOWN_A}", steps=closed_on(5))
        await seed_order("closed-late", site=f"s{TOWN_A}", steps=closed_on(10))
        await seed_order("upheld", site=f"s{TOWN_A}", steps=upheld)
        await seed_order("elsewhere", site=f"s{TOWN_B}", opened_at=OPENED + 10 * HOUR)
        town_a = await api.token(Role.AUDITOR, TOWN_A)
        figures = await api.ok("GET", f"{ORDERS}/summary", town_a)
        minzheng = await api.ok("GET", f"{ORDERS}/summary?department=minzheng", town_a)
        whole = await api.ok("GET", f"{ORDERS}/summary?since=2026-03-02", await api.token())
        nothing = await api.ok("GET", f"{ORDERS}/summary?until=2026-03-01", town_a)
        refused = {
            "order": await api.call("GET", f"{ORDERS}/summary?since=2026-03-05&until=2026-03-04",
                                    town_a),
            "day": await api.call("GET", f"{ORDERS}/summary?since=March", town_a),
            "paged": await api.call("GET", f"{ORDERS}/summary?limit=2", town_a),
        }  # fmt: skip

    assert figures == {
        "today": "2026-03-10", "site": None, "department": None, "since": None, "until": None,
        "total": 6,
        "by_state": {
            "to_call_back": 2, "called_back": 1, "verified": 0, "fixing": 0, "fixed": 0,
            "explained": 0, "fed_back": 0, "appealed": 0, "closed": 2, "appeal_upheld": 1,
        },
        "open": 3, "overdue": 2, "callback_counted": 5, "called_back": 3, "callback_rate": 0.6,
        "closed": 3, "closed_within_deadline": 2,
    }  # fmt: skip
    assert (minzheng["total"], minzheng["callback_rate"], minzheng["overdue"]) == (1, 1.0, 1)
    assert (whole["total"], whole["since"], whole["overdue"]) == (7, "2026-03-02", 3)
    assert (nothing["total"], nothing["callback_rate"], nothing["until"]) == (0, None, "2026-03-01")
    assert {name: (s, b["error"]["details"]["parameter"]) for name, (s, b) in refused.items()} == {
        "order": (400, "since"), "day": (400, "since"), "paged": (400, "limit"),
    }  # fmt: skip


# --- the answers against their documented shapes ----------------------------------------------


def assert_shaped(answer: object, shape: type[msgspec.Struct]) -> None:
    """``answer`` decodes as ``shape`` (types, enums, required keys) and has no key it lacks."""
    msgspec.json.decode(json.dumps(answer), type=shape)
    assert isinstance(answer, dict)
    assert set(answer) == {field.encode_name for field in msgspec.structs.fields(shape)}


async def test_the_answers_are_the_shapes_the_openapi_document_declares(
    database_url: str,
) -> None:
    """The OpenAPI test (schemathesis) meets no orders: these answers are about real ones."""
    async with workorder_api(database_url) as api:
        admin = await api.token()
        done = [step(A.APPEAL, OPENED + HOUR), step(A.UPHOLD_APPEAL, OPENED + 2 * HOUR)]
        voided = await seed_order("c-voided", site=f"s{TOWN_A}", steps=done, item_name="x")
        fresh = await seed_order("c-fresh", site=None)
        page = await api.ok("GET", ORDERS, admin)
        detail = await api.ok("GET", f"{ORDERS}/{voided}", admin)
        status, moved = await act(api, fresh, admin, "call_back", outcome="not_reached")
        summary = await api.ok("GET", f"{ORDERS}/summary?site=s{TOWN_A}", admin)

    assert status == 200
    assert_shaped(page, shapes.WorkOrderPage)
    for item in page["items"]:
        assert_shaped(item, shapes.WorkOrderItem)
    for view in (detail, moved):
        assert_shaped(view, shapes.WorkOrderDetail)
        assert_shaped(view["review"], shapes.ReviewOfOrder)
        for transition in view["history"]:
            assert_shaped(transition, shapes.TransitionView)
    assert len(detail["history"]) == 2
    assert_shaped(summary, shapes.WorkOrderSummary)
