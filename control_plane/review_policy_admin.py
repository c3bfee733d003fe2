"""Setting a jurisdiction's 好差评 policy: its work orders' deadline and its cases' rating period.

A policy holds for its node's subtree unless a deeper node has its own
(``review_policy.policy_for_site``). A token sets and removes policies of nodes in its scope;
it reads those and the policies of the nodes above its scope, which hold in it too. Each change
is audited in the same transaction. A new policy applies to what happens from then on: work
orders already open keep their due day, cases already told to a pad keep their ``rate_by``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from . import audit, jurisdiction
from .admin_errors import ALREADY_EXISTS, ConflictError, InvalidFieldError, NotFoundError
from .auth import Principal
from .db.models import JurisdictionNode
from .db.review_models import ReviewPolicy
from .paging import Page, page_of
from .review_policy import MAX_DEADLINE_WORKING_DAYS, MAX_RATE_WITHIN_DAYS
from .review_views import policy_view
from .scope_lookup import could_be, visible_node
from .sites import nodes_under

LIMITS = {
    "deadline_working_days": MAX_DEADLINE_WORKING_DAYS,
    "rate_within_days": MAX_RATE_WITHIN_DAYS,
}
"""Each field of a policy and its largest value; the smallest is 1."""


class PolicyValueError(ValueError):
    """A whole number out of its field's range (the API's 422, naming ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def policy_values(body: Mapping[str, object]) -> tuple[int, int]:
    """``(deadline_working_days, rate_within_days)`` of a body that sets both. Pure.

    A missing, unknown or non-integer field is an ``InvalidFieldError``; a whole number out of
    its range a ``PolicyValueError``.
    """
    if unknown := sorted(str(name) for name in body if name not in LIMITS):
        msg = f"unknown field; a policy has {', '.join(LIMITS)}"
        raise InvalidFieldError(unknown[0], msg)
    values = []
    for field, largest in LIMITS.items():
        if field not in body:
            raise InvalidFieldError(field, "missing: a policy sets both of its values")
        value = body[field]
        if type(value) is not int:  # bool is an int, and no number of days
            raise InvalidFieldError(field, f"must be a whole number, not {value!r}")
        if not 1 <= value <= largest:
            msg = f"{field} must be from 1 to {largest}, not {value}"
            raise PolicyValueError(field, msg)
        values.append(value)
    return values[0], values[1]


async def list_policies(principal: Principal, *, after: str | None, limit: int) -> Page[str]:
    """The policies of the scope's nodes and of the nodes above it, by node code."""
    query = ReviewPolicy.all()
    above: list[str] = []
    if principal.scope_path is not None:
        above = jurisdiction.codes(principal.scope_path)[:-1]
        within = Q(node_code__in=Subquery(nodes_under(principal.scope_path).values("code")))
        query = query.filter(within | Q(node_code__in=above) if above else within)
    if after is not None:
        query = query.filter(node_code__gt=after)
    rows = await query.order_by("node_code").limit(limit + 1)
    names = dict(
        await JurisdictionNode.filter(code__in=[row.node_code for row in rows]).values_list(
            "code", "name"
        )
    )
    return page_of(
        rows,
        limit,
        lambda row: row.node_code,
        lambda row: policy_view(
            row, names.get(row.node_code), within_scope=row.node_code not in above
        ),
    )


async def set_policy(
    principal: Principal, node_code: str, body: Mapping[str, object], *, now: datetime
) -> dict[str, Any]:
    """Set the node's policy whole (created or replaced); its view."""
    deadline, rate_within = policy_values(body)
    node = await visible_node(principal, node_code)
    async with in_transaction() as connection:
        row = (
            await ReviewPolicy.filter(node_code=node.code)
            .select_for_update()
            .using_db(connection)
            .first()
        )
        before = None if row is None else policy_view(row, node.name, within_scope=True)
        if row is None:
            row = ReviewPolicy(node_code=node.code)
        row.deadline_working_days, row.rate_within_days = deadline, rate_within
        row.updated_at, row.updated_by = now, principal.name
        try:
            await row.save(using_db=connection)
        except IntegrityError:  # another request created it meanwhile
            msg = f"the policy of node {node.code} was set meanwhile; try again"
            raise ConflictError(msg, ALREADY_EXISTS) from None
        after = policy_view(row, node.name, within_scope=True)
        await audit.record(
            "review_policy.set",
            principal.actor,
            "review_policy",
            node.code,
            before=before,
            after=after,
            scope_path=node.path,
            at=now,
            using_db=connection,
        )
    return after


async def delete_policy(principal: Principal, node_code: str, *, now: datetime) -> None:
    """Remove the node's policy: its subtree follows the nearest node above with one.

    A token for the whole tree may also remove the policy of a node deleted since.
    """
    path: str | None = None
    name: str | None = None
    try:
        node = await visible_node(principal, node_code)
        path, name = node.path, node.name
    except NotFoundError:
        if principal.scope_path is not None or not could_be(jurisdiction.CODE, node_code):
            raise
    async with in_transaction() as connection:
        row = await ReviewPolicy.filter(node_code=node_code).using_db(connection).first()
        if row is None:
            msg = f"node {node_code} has no review policy of its own"
            raise NotFoundError(msg)
        before = policy_view(row, name, within_scope=True)
        await row.delete(using_db=connection)
        await audit.record(
            "review_policy.delete",
            principal.actor,
            "review_policy",
            node_code,
            before=before,
            scope_path=path,
            at=now,
            using_db=connection,
        )
