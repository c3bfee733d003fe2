"""Bad-review work orders (差评工单) as the API shows them, and the summary's figures. Pure.

Rows become the pure ``WorkOrder`` here (``order_of``), so that every flag and figure the API
answers is computed by ``control_plane.reviews`` and never restated in SQL or in a view. No
queries: a caller passes what a view names (the site's code, the review, the case's item name).
docs/workorders.md describes the routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from .db.review_models import ReviewRow, WorkOrderEvent, WorkOrderRow
from .reviews import workorder_stats as stats
from .reviews.workorders import (
    Action,
    ActorRole,
    CallOutcome,
    State,
    Transition,
    WorkOrder,
    allowed_actions,
    is_open,
    unreached_calls,
)


def order_of(row: WorkOrderRow, events: Iterable[WorkOrderEvent] = ()) -> WorkOrder:
    """The pure order a row and its events (in the order they were written) stand for.

    Without events the history is empty: enough for ``is_overdue`` and ``is_open``, which read
    the state and dates only, and not for anything that reads the history.
    """
    return WorkOrder(
        due=row.due,
        opened_at=row.opened_at,
        state=State(row.state),
        fix_by=row.fix_by,
        history=tuple(transition_of(event) for event in events),
        appealed_from=State(row.appealed_from) if row.appealed_from else None,
        voided=row.voided,
    )


def transition_of(event: WorkOrderEvent) -> Transition:
    return Transition(
        action=Action(event.action),
        from_state=State(event.from_state),
        to_state=State(event.to_state),
        actor=event.actor,
        role=ActorRole(event.role),
        at=event.at,
        note=event.note,
        outcome=CallOutcome(event.outcome) if event.outcome else None,
        fix_by=event.fix_by,
    )


def item_view(row: WorkOrderRow, site: str | None, today: date) -> dict[str, Any]:
    """An order as listings show it; ``today`` is the local date its overdue flag is judged on."""
    order = order_of(row)
    return {
        "id": row.id,
        "case_number": row.case_number,
        "site": site,
        "department": row.department,
        "window": row.window_number,
        "staff": row.staff_id,
        "rating": row.rating,
        "state": row.state,
        "open": is_open(order),
        "overdue": stats.is_overdue(order, today),
        "opened_at": row.opened_at.isoformat(),
        "due": row.due.isoformat(),
        "due_provisional": row.due_provisional,
        "deadline_working_days": row.deadline_working_days,
        "fix_by": _day(row.fix_by),
        "appealed_from": row.appealed_from,
        "voided": row.voided,
        "closed_at": row.closed_at.isoformat() if row.closed_at else None,
        "updated_at": row.updated_at.isoformat(),
    }


def detail_view(  # noqa: PLR0913 - the order's parts, each read by its own query
    row: WorkOrderRow,
    order: WorkOrder,
    *,
    site: str | None,
    review: ReviewRow,
    item_name: str,
    roles: Sequence[ActorRole],
    today: date,
) -> dict[str, Any]:
    """An order with its review, its whole history and what ``roles`` may do with it now."""
    return {
        **item_view(row, site, today),
        "review": review_view(review, item_name),
        "history": [transition_view(step) for step in order.history],
        "allowed_actions": [
            action.value for role in roles for action in allowed_actions(order, role)
        ],
        "called_back": stats.called_back(order),
        "unreached_calls": unreached_calls(order),
        "remedy": _value(stats.remedy(order)),
    }


def review_view(review: ReviewRow, item_name: str) -> dict[str, Any]:
    """The rating the order follows up: what was rated, where, by whom it was served."""
    return {
        "case_number": review.case_number,
        "rating": review.rating,
        "indicators": dict(review.indicators),
        "comment": review.comment,
        "item_code": review.item_code,
        "item_name": item_name,
        "channel": review.channel,
        "department": review.department,
        "window": review.window_number,
        "staff": review.staff_id,
        "source": review.source,
        "rated_at": review.rated_at.isoformat(),
        "voided_at": review.voided_at.isoformat() if review.voided_at else None,
    }


def transition_view(step: Transition) -> dict[str, Any]:
    return {
        "action": step.action.value,
        "from_state": step.from_state.value,
        "to_state": step.to_state.value,
        "actor": step.actor,
        "role": step.role.value,
        "at": step.at.isoformat(),
        "note": step.note,
        "outcome": _value(step.outcome),
        "fix_by": _day(step.fix_by),
    }


def audit_view(row: WorkOrderRow) -> dict[str, Any]:
    """What a transition changes of an order, as the audit log's before and after."""
    return {
        "case_number": row.case_number,
        "state": row.state,
        "fix_by": _day(row.fix_by),
        "appealed_from": row.appealed_from,
        "voided": row.voided,
    }


def summarize(orders: Sequence[WorkOrder], today: date) -> dict[str, Any]:
    """The figures of ``orders``: counts by state, open, overdue, 回访率, closed in time.

    The call-back rate counts orders not voided by an upheld appeal (``callback_counted``), of
    which ``called_back`` reached the citizen or verified after the allowed tries; None (null)
    when none are counted. ``closed_within_deadline`` counts final orders (办结 or 申诉成立)
    that became final on or before their due date.
    """
    by_state = {state.value: 0 for state in State}
    for order in orders:
        by_state[order.state.value] += 1
    counted = [order for order in orders if not order.voided]
    return {
        "total": len(orders),
        "by_state": by_state,
        "open": sum(1 for order in orders if is_open(order)),
        "overdue": sum(1 for order in orders if stats.is_overdue(order, today)),
        "callback_counted": len(counted),
        "called_back": sum(1 for order in counted if stats.called_back(order)),
        "callback_rate": stats.callback_rate(orders),
        "closed": sum(1 for order in orders if not is_open(order)),
        "closed_within_deadline": sum(1 for o in orders if stats.closed_within_deadline(o)),
    }


def _day(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _value(member: Action | CallOutcome | None) -> str | None:
    return member.value if member is not None else None
