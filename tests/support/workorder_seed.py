"""Bad reviews and their work orders written straight into the database, and the API over them.

An order is seeded as the ingest opens it (``to_call_back``, its due date given) and, when a
test wants it further along, walked there by the pure ``workorders.apply`` (tested on its own in
``test_workorders.py``): the row then holds the state it reached and one event per step, as the
store would have written them. The API runs on the scoped tree of ``scoped_fleet`` with a clock
the test sets, so that "today" and overdue are the test's to choose.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta

from control_plane.db.models import Site
from control_plane.db.review_models import ReviewCase, ReviewRow, WorkOrderEvent, WorkOrderRow
from control_plane.fleet import FleetState
from control_plane.reviews.workorder_stats import closed_at
from control_plane.reviews.workorders import (
    ACTION_ROLES,
    Action,
    CallOutcome,
    Command,
    WorkOrder,
    apply,
)
from tests.support.admin_api import Api
from tests.support.scoped_fleet import scoped_api

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
"""10:00 on Tuesday 10 March 2026 in Asia/Shanghai: the API's clock unless a test moves it."""
TODAY = date(2026, 3, 10)
OPENED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
"""Monday 2 March, 09:00 local: five working days later is Monday 9 March."""
DUE_PAST = date(2026, 3, 9)
DUE_LATER = date(2026, 3, 16)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def workorder_api(database_url: str, clock: Clock | None = None) -> AsyncIterator[Api]:
    """The REST API on the scoped tree at ``clock`` (NOW by default), the database open."""
    async with scoped_api(database_url, clock or Clock()) as client:
        # Api's fleet is for tests of placements; nothing here reads it.
        yield Api(client, FleetState())


def step(
    action: Action,
    at: datetime,
    *,
    outcome: CallOutcome | None = None,
    fix_by: date | None = None,
    actor: str = "seed",
    note: str = "done",
) -> Command:
    """A command in the role its action belongs to."""
    return Command(action, actor, ACTION_ROLES[action], at, note, outcome, fix_by)


async def seed_order(
    case: str,
    *,
    site: str | None,
    opened_at: datetime = OPENED,
    due: date = DUE_PAST,
    steps: Sequence[Command] = (),
    department: str = "gongan",
    rating: str = "dissatisfied",
    item_name: str | None = None,
    comment: str = "",
) -> int:
    """A bad review of ``case`` at the site with that code (None: at no site) and its order.

    ``item_name``: also a case notice naming the item, as the business system sends one.
    """
    site_id = (await Site.get(code=site)).id if site is not None else None
    review = await ReviewRow.create(
        case_number=case, source="terminal", device_id=f"pad-{case}", seq=1, rating=rating,
        channel="window_pad", indicators={"attitude": rating}, comment=comment,
        item_code="item-110", department=department, window_number="03", staff_id="staff-7",
        site_id=site_id, rated_at=opened_at - timedelta(minutes=5), received_at=opened_at,
    )  # fmt: skip
    if item_name is not None:
        await ReviewCase.create(
            case_number=case, device_id=f"pad-{case}", site_id=site_id, window_number="03",
            item_code="item-110", item_name=item_name, department=department,
            staff_id="staff-7", ended_at=opened_at, rate_by=opened_at + timedelta(days=7),
        )  # fmt: skip
    order = WorkOrder(due=due, opened_at=opened_at)
    for command in steps:
        order = apply(order, command)
    row = await WorkOrderRow.create(
        review=review, case_number=case, site_id=site_id, department=department,
        window_number="03", staff_id="staff-7", rating=rating, opened_at=opened_at, due=due,
        deadline_working_days=5, state=order.state.value, fix_by=order.fix_by,
        appealed_from=order.appealed_from.value if order.appealed_from else None,
        voided=order.voided, closed_at=closed_at(order),
        updated_at=order.history[-1].at if order.history else opened_at,
    )  # fmt: skip
    for done in order.history:
        await WorkOrderEvent.create(
            work_order_id=row.id, at=done.at, actor=done.actor, role=done.role.value,
            action=done.action.value, from_state=done.from_state.value,
            to_state=done.to_state.value, note=done.note,
            outcome=done.outcome.value if done.outcome else None, fix_by=done.fix_by,
        )  # fmt: skip
    if order.voided:
        review.voided_at = order.history[-1].at
        await review.save()
    return int(row.id)
