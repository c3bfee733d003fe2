"""Bad-review work orders (差评工单) in the database, moved only by the pure ``workorders.apply``.

A transition runs in one transaction with the order's row locked (SELECT … FOR UPDATE on
PostgreSQL; SQLite serialises writers anyway): the order is loaded with its history, ``apply``
checks the command, and the new state, one ``WorkOrderEvent`` and the audit entry are written
together, or nothing is when ``apply`` refuses. An upheld appeal (申诉成立) also voids the review
for scoring (``ReviewRow.voided_at``); a final state sets ``closed_at``.

What a token sees: an order lies where its site does; one at no site only a token for the whole
tree sees. Beyond its scope an order does not exist (404), as sites and staff do not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from . import audit
from .admin_errors import NotFoundError
from .auth import Permission, Principal
from .db.models import Site
from .db.review_models import ReviewCase, ReviewRow, WorkOrderEvent, WorkOrderRow
from .reviews.workorders import (
    ACTION_ROLES,
    Action,
    ActorRole,
    CallOutcome,
    Command,
    State,
    Transition,
    WorkOrder,
    apply,
    is_open,
)
from .workorder_views import audit_view, detail_view, order_of

ACTING_PERMISSION: Mapping[ActorRole, Permission] = {
    ActorRole.UNIT: Permission.WORKORDERS_HANDLE,
    ActorRole.SUPERVISOR: Permission.WORKORDERS_REVIEW,
}
"""Which permission makes a token the unit (承办单位) or the supervising level (督办/复核)."""
ORDER_ID = re.compile(r"[1-9][0-9]{0,18}")
MAX_ORDER_ID = 2**63 - 1
"""Ids are BIGINT: a larger number names no order, and must not reach the database."""


def acting_roles(principal: Principal) -> list[ActorRole]:
    """The roles a token may act in on orders it sees: unit, supervisor, both or none."""
    return [role for role, needed in ACTING_PERMISSION.items() if principal.allows(needed)]


def required_permission(action: Action) -> Permission:
    """What a token needs to take ``action``: handle for the unit's, review for the supervisor's."""
    return ACTING_PERMISSION[ACTION_ROLES[action]]


@dataclass(frozen=True, slots=True)
class Asked:
    """A transition as a request asks for it; who acts and when are the server's to say."""

    action: Action
    note: str
    outcome: CallOutcome | None = None
    fix_by: date | None = None

    def command(self, actor: str, at: datetime) -> Command:
        role = ACTION_ROLES[self.action]
        return Command(self.action, actor, role, at, self.note, self.outcome, self.fix_by)


@dataclass(frozen=True)
class StoredOrder:
    """An order's row, the pure order it stands for (with its history), and its site."""

    row: WorkOrderRow
    order: WorkOrder
    site: Site | None
    """With its node; None for an order at no site, or at a site since deleted."""

    @property
    def site_code(self) -> str | None:
        return self.site.code if self.site else None

    @property
    def path(self) -> str | None:
        """Where the order lies in the tree (None: nowhere, for whole-tree tokens only)."""
        return self.site.node.path if self.site else None


async def visible_order(principal: Principal, order_id: str) -> StoredOrder:
    """The order with the id, if the token's scope holds it; else a 404 worded as missing."""
    key = order_key(order_id)
    row = await WorkOrderRow.get_or_none(id=key) if key is not None else None
    return await _visible(principal, order_id, row, None)


async def order_detail(principal: Principal, order_id: str, today: date) -> dict[str, Any]:
    """The order with its review, history and the actions the token may take now."""
    return await detail_of(principal, await visible_order(principal, order_id), today)


async def detail_of(principal: Principal, stored: StoredOrder, today: date) -> dict[str, Any]:
    review = await ReviewRow.get(id=stored.row.review_id)
    case = await ReviewCase.get_or_none(case_number=stored.row.case_number)
    return detail_view(
        stored.row,
        stored.order,
        site=stored.site_code,
        review=review,
        item_name=case.item_name if case else "",
        roles=acting_roles(principal),
        today=today,
    )


async def transition(
    principal: Principal, order_id: str, asked: Asked, *, at: datetime
) -> StoredOrder:
    """Apply ``asked`` as the token (its name is the actor) at ``at``, and store the result.

    Raises ``NotFoundError`` for an order the token does not see and ``TransitionRefusedError``
    (nothing written) for one that refuses the action.
    """
    key = order_key(order_id)
    async with in_transaction() as conn:
        row = None
        if key is not None:
            row = await WorkOrderRow.select_for_update().using_db(conn).get_or_none(id=key)
        stored = await _visible(principal, order_id, row, conn)
        before = audit_view(stored.row)
        order = apply(stored.order, asked.command(principal.name, at))
        step = order.history[-1]
        await _save(stored.row, order, step, conn)
        await audit.record(
            f"workorder.{step.action}",
            principal.actor,
            "workorder",
            stored.row.id,
            before=before,
            after=audit_view(stored.row),
            note=step.note,
            scope_path=stored.path,
            at=step.at,
            using_db=conn,
        )
    return StoredOrder(stored.row, order, stored.site)


def order_key(order_id: str) -> int | None:
    """The id a path names, or None when no order could have it."""
    if not ORDER_ID.fullmatch(order_id):
        return None
    key = int(order_id)
    return key if key <= MAX_ORDER_ID else None


async def _visible(
    principal: Principal, order_id: str, row: WorkOrderRow | None, conn: BaseDBAsyncClient | None
) -> StoredOrder:
    site = await _site_of(row, conn) if row is not None else None
    if row is None or not principal.sees(site.node.path if site else None):
        msg = f"no work order has the id {order_id!r}"
        raise NotFoundError(msg)
    events = await WorkOrderEvent.filter(work_order_id=row.id).using_db(conn).order_by("id")
    return StoredOrder(row, order_of(row, events), site)


async def _site_of(row: WorkOrderRow, conn: BaseDBAsyncClient | None) -> Site | None:
    if row.site_id is None:
        return None
    found: Site | None = (
        await Site.filter(id=row.site_id).using_db(conn).select_related("node").first()
    )
    return found


async def _save(
    row: WorkOrderRow, order: WorkOrder, step: Transition, conn: BaseDBAsyncClient
) -> None:
    """Mirror ``order`` on its row and write its new transition as an event."""
    row.state = order.state.value
    row.fix_by = order.fix_by
    row.appealed_from = order.appealed_from.value if order.appealed_from else None
    row.voided = order.voided
    row.updated_at = step.at
    if not is_open(order):
        row.closed_at = step.at
    await row.save(using_db=conn)
    await WorkOrderEvent.create(
        work_order_id=row.id,
        at=step.at,
        actor=step.actor,
        role=step.role.value,
        action=step.action.value,
        from_state=step.from_state.value,
        to_state=step.to_state.value,
        note=step.note,
        outcome=step.outcome.value if step.outcome else None,
        fix_by=step.fix_by,
        using_db=conn,
    )
    if order.state is State.APPEAL_UPHELD:
        # 申诉成立: the rating was a mis-rating; scores leave it out from now on.
        await ReviewRow.filter(id=row.review_id).using_db(conn).update(voided_at=step.at)
