"""Work orders in the database (``workorder_store``, ``workorder_queries``), on both databases.

No HTTP here: the rows against the pure ``WorkOrder`` they stand for, transitions written whole
or not at all, two at once on one order, the overdue filter in SQL against ``is_overdue``, and
periods counted in local days. The API's own tests: ``test_api_workorders.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from control_plane.admin_errors import NotFoundError
from control_plane.auth import Principal, Role
from control_plane.db import database
from control_plane.db.models import AuditEntry, JurisdictionNode
from control_plane.db.review_models import ReviewRow, WorkOrderEvent, WorkOrderRow
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.reviews.workorder_stats import is_overdue
from control_plane.reviews.workorders import (
    Action,
    CallOutcome,
    Command,
    RefusalCode,
    State,
    TransitionRefusedError,
    WorkOrder,
    apply,
)
from control_plane.workorder_queries import OrderFilters, list_orders, summary
from control_plane.workorder_store import Asked, transition, visible_order
from tests.support.scoped_fleet import TOWN_A, TOWN_B, document
from tests.support.workorder_seed import DUE_LATER, DUE_PAST, NOW, OPENED, TODAY, seed_order, step

A = Action
ADMIN = Principal(1, "admin-all", Role.ADMIN)
HOUR = timedelta(hours=1)


@contextlib.asynccontextmanager
async def scoped_tree(database_url: str) -> AsyncIterator[None]:
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        yield


async def principal_for(code: str, role: Role = Role.OPERATOR) -> Principal:
    node = await JurisdictionNode.get(code=code)
    return Principal(2, f"{role}-{code}", role, scope_path=node.path, scope_code=code)


async def test_a_stored_order_loads_as_the_pure_order_it_was_walked_to(database_url: str) -> None:
    steps = [
        step(A.CALL_BACK, OPENED + HOUR, outcome=CallOutcome.NOT_REACHED, note="no answer"),
        step(A.CALL_BACK, OPENED + 2 * HOUR, outcome=CallOutcome.REACHED, note="reached"),
        step(A.VERIFY, OPENED + 3 * HOUR),
        step(A.SET_DEADLINE, OPENED + 4 * HOUR, fix_by=date(2026, 3, 20)),
    ]
    expected = WorkOrder(due=DUE_PAST, opened_at=OPENED)
    for command in steps:
        expected = apply(expected, command)
    async with scoped_tree(database_url):
        order_id = await seed_order("c-load", site=f"s{TOWN_A}", steps=steps)
        stored = await visible_order(ADMIN, str(order_id))

    assert stored.order == expected
    assert stored.order.state is State.FIXING
    assert stored.site_code == f"s{TOWN_A}"


async def test_a_transition_writes_its_state_one_event_and_an_audit_entry(
    database_url: str,
) -> None:
    operator = Principal(7, "hall-ops", Role.OPERATOR)
    async with scoped_tree(database_url):
        order_id = await seed_order("c-move", site=f"s{TOWN_A}")
        asked = Asked(A.CALL_BACK, "  reached; the ticket was lost  ", CallOutcome.REACHED)
        stored = await transition(operator, str(order_id), asked, at=NOW)
        row = await WorkOrderRow.get(id=order_id)
        events = await WorkOrderEvent.filter(work_order_id=order_id)
        entry = await AuditEntry.get(target_type="workorder", target_id=str(order_id))
        town_a = await JurisdictionNode.get(code=TOWN_A)

    assert stored.order.state is State.CALLED_BACK
    assert (row.state, row.updated_at, row.closed_at) == ("called_back", NOW, None)
    assert [(e.action, e.from_state, e.to_state, e.actor, e.role) for e in events] == [
        ("call_back", "to_call_back", "called_back", "hall-ops", "unit")
    ]
    assert (events[0].note, events[0].outcome, events[0].at) == (
        "reached; the ticket was lost", "reached", NOW
    )  # fmt: skip
    assert (entry.action, entry.actor_name, entry.actor_token_id) == (
        "workorder.call_back", "hall-ops", 7
    )  # fmt: skip
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["state"], entry.after["state"]) == ("to_call_back", "called_back")
    assert entry.scope_path == town_a.path
    assert entry.note == "reached; the ticket was lost"


async def test_a_refused_transition_writes_nothing(database_url: str) -> None:
    async with scoped_tree(database_url):
        order_id = await seed_order("c-refused", site=f"s{TOWN_A}")
        with pytest.raises(TransitionRefusedError) as refused:
            await transition(ADMIN, str(order_id), Asked(A.VERIFY, "checked"), at=NOW)
        row = await WorkOrderRow.get(id=order_id)
        events = await WorkOrderEvent.filter(work_order_id=order_id).count()
        audited = await AuditEntry.filter(target_type="workorder").count()

    assert refused.value.code is RefusalCode.CALL_BACK_FIRST
    assert (row.state, row.updated_at, events, audited) == ("to_call_back", OPENED, 0, 0)


async def test_an_upheld_appeal_voids_the_review_and_closes_the_order(database_url: str) -> None:
    appealed = [step(A.APPEAL, OPENED + HOUR, note="the citizen rated the wrong window")]
    async with scoped_tree(database_url):
        order_id = await seed_order("c-appeal", site=f"s{TOWN_A}", steps=appealed)
        asked = Asked(A.UPHOLD_APPEAL, "camera shows window 5")
        stored = await transition(ADMIN, str(order_id), asked, at=NOW)
        row = await WorkOrderRow.get(id=order_id)
        review = await ReviewRow.get(case_number="c-appeal")

    assert stored.order.state is State.APPEAL_UPHELD
    assert (row.state, row.voided, row.closed_at, row.appealed_from) == (
        "appeal_upheld", True, NOW, None
    )  # fmt: skip
    assert review.voided_at == NOW


async def test_of_two_transitions_at_once_one_is_taken_and_the_other_refused(
    database_url: str,
) -> None:
    """The row is locked for the whole transition: the second sees the first's new state."""
    async with scoped_tree(database_url):
        order_id = await seed_order("c-race", site=f"s{TOWN_A}")
        reached = Asked(A.CALL_BACK, "reached", CallOutcome.REACHED)
        results = await asyncio.gather(
            transition(ADMIN, str(order_id), reached, at=NOW),
            transition(ADMIN, str(order_id), reached, at=NOW),
            return_exceptions=True,
        )
        events = await WorkOrderEvent.filter(work_order_id=order_id).count()
        row = await WorkOrderRow.get(id=order_id)

    refusals = [r for r in results if isinstance(r, TransitionRefusedError)]
    assert len(refusals) == 1, results
    assert refusals[0].code is RefusalCode.ILLEGAL_TRANSITION
    assert (events, row.state) == (1, "called_back")


async def test_an_order_beyond_the_scope_or_at_no_site_is_not_found(database_url: str) -> None:
    async with scoped_tree(database_url):
        in_a = await seed_order("c-a", site=f"s{TOWN_A}")
        nowhere = await seed_order("c-none", site=None)
        town_b = await principal_for(TOWN_B)
        town_a = await principal_for(TOWN_A)
        assert (await visible_order(town_a, str(in_a))).row.id == in_a
        assert (await visible_order(ADMIN, str(nowhere))).site is None
        for principal, order_id in [(town_b, in_a), (town_a, nowhere)]:
            with pytest.raises(NotFoundError):
                await visible_order(principal, str(order_id))
        with pytest.raises(NotFoundError):
            await transition(town_b, str(in_a), Asked(A.APPEAL, "not ours"), at=NOW)
        for no_id in ["0", "-1", "x", "1e3", str(2**63)]:
            with pytest.raises(NotFoundError):
                await visible_order(ADMIN, no_id)
        untouched = await WorkOrderRow.get(id=in_a)

    assert untouched.state == "to_call_back"


GRID = [
    # (case, steps to its state, due, fix_by of its set_deadline)
    ("open-past-due", [], DUE_PAST, None),
    ("open-due-today", [], TODAY, None),
    ("open-due-later", [], DUE_LATER, None),
    ("fixing-late", ["reach", "verify", "deadline"], DUE_LATER, date(2026, 3, 9)),
    ("fixing-on-time", ["reach", "verify", "deadline"], DUE_LATER, TODAY),
    ("fixing-past-due", ["reach", "verify", "deadline"], DUE_PAST, DUE_LATER),
    ("closed-past-due", ["reach", "verify", "fix", "feedback", "approve"], DUE_PAST, None),
    ("upheld-past-due", ["appeal", "uphold"], DUE_PAST, None),
]


def grid_steps(names: list[str], fix_by: date | None) -> list[Command]:
    at = OPENED
    commands = {
        "reach": lambda: step(A.CALL_BACK, at, outcome=CallOutcome.REACHED),
        "verify": lambda: step(A.VERIFY, at),
        "deadline": lambda: step(A.SET_DEADLINE, at, fix_by=fix_by),
        "fix": lambda: step(A.FIX_NOW, at),
        "feedback": lambda: step(A.GIVE_FEEDBACK, at),
        "approve": lambda: step(A.APPROVE, at),
        "appeal": lambda: step(A.APPEAL, at),
        "uphold": lambda: step(A.UPHOLD_APPEAL, at),
    }
    return [commands[name]() for name in names]


async def test_the_overdue_filter_is_is_overdue_said_in_sql(database_url: str) -> None:
    async with scoped_tree(database_url):
        ids = {}
        for case, names, due, fix_by in GRID:
            steps = grid_steps(names, fix_by)
            ids[await seed_order(case, site=f"s{TOWN_A}", due=due, steps=steps)] = case
        overdue_page = await list_orders(
            ADMIN, OrderFilters(overdue=True), today=TODAY, after=None, limit=100
        )
        on_time_page = await list_orders(
            ADMIN, OrderFilters(overdue=False), today=TODAY, after=None, limit=100
        )
        pure = {
            case: is_overdue((await visible_order(ADMIN, str(order_id))).order, TODAY)
            for order_id, case in ids.items()
        }

    overdue = {ids[item["id"]] for item in overdue_page.items}
    on_time = {ids[item["id"]] for item in on_time_page.items}
    assert overdue == {"open-past-due", "fixing-late", "fixing-past-due"}
    assert overdue == {case for case, late in pure.items() if late}
    assert on_time == set(ids.values()) - overdue
    assert all(item["overdue"] for item in overdue_page.items)
    assert not any(item["overdue"] for item in on_time_page.items)


async def test_a_period_is_counted_in_local_days(database_url: str) -> None:
    """16:30 UTC on 1 March is 00:30 on 2 March in Asia/Shanghai: an order of 2 March."""
    just_after_midnight = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)
    just_before_midnight = datetime(2026, 3, 1, 15, 59, tzinfo=UTC)
    async with scoped_tree(database_url):
        await seed_order("c-0302", site=f"s{TOWN_A}", opened_at=just_after_midnight)
        await seed_order("c-0301", site=f"s{TOWN_A}", opened_at=just_before_midnight)
        march_2 = await summary(
            ADMIN, OrderFilters(since=date(2026, 3, 2), until=date(2026, 3, 2)), today=TODAY
        )
        march_1 = await summary(ADMIN, OrderFilters(until=date(2026, 3, 1)), today=TODAY)
        everything = await summary(ADMIN, OrderFilters(since=date.min, until=date.max), today=TODAY)

    assert (march_2["total"], march_1["total"], everything["total"]) == (1, 1, 2)
