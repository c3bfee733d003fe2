"""What the statistics need of work orders: overdue flags, 回访率 call-back rate, deadlines kept.

Pure functions over ``control_plane.reviews.workorders.WorkOrder``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, tzinfo

from .workorders import DEFAULT_ZONE, REMEDIES, Action, State, WorkOrder, is_open


def is_overdue(order: WorkOrder, today: date) -> bool:
    """Open and past its due date, or still 限期整改 and past its fix-by date."""
    if not is_open(order):
        return False
    late_fix = order.state is State.FIXING and order.fix_by is not None and today > order.fix_by
    return today > order.due or late_fix


def called_back(order: WorkOrder) -> bool:
    """Whether the order has left to_call_back by reaching the citizen or verifying anyway.

    An appeal lodged from to_call_back does not count: nobody was called.
    """
    return any(
        step.from_state is State.TO_CALL_BACK
        and step.to_state in {State.CALLED_BACK, State.VERIFIED}
        for step in order.history
    )


def callback_rate(orders: Iterable[WorkOrder]) -> float | None:
    """回访率: the share of ``orders`` called back, voided ones left out; None for none.

    Pass the orders the period is judged on (for example those due by its end): an order opened
    an hour ago and not yet called back counts against the rate like any other.
    """
    counted = [order for order in orders if not order.voided]
    if not counted:
        return None
    return sum(1 for order in counted if called_back(order)) / len(counted)


def remedy(order: WorkOrder) -> Action | None:
    """The remedy last chosen: fix_now (立行立改), set_deadline (限期整改) or explain (解释说明)."""
    chosen = [step.action for step in order.history if step.action in REMEDIES]
    return chosen[-1] if chosen else None


def closed_at(order: WorkOrder) -> datetime | None:
    """When the order reached a final state (办结 or 申诉成立), in UTC; None while open."""
    return None if is_open(order) else order.history[-1].at


def closed_within_deadline(order: WorkOrder, zone: tzinfo = DEFAULT_ZONE) -> bool:
    """Closed (either final state) on or before its due date, counted in ``zone``'s days."""
    finished = closed_at(order)
    return finished is not None and finished.astimezone(zone).date() <= order.due
