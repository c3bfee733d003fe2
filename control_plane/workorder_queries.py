"""Reading many work orders: the filtered, paged listing and the summary's figures.

Both read the orders in the token's scope only (an order at no site: whole-tree tokens only).
The listing pages by id, oldest first, which is about the order they fall due in; its overdue
filter is ``workorder_stats.is_overdue`` said in SQL, and each item's flag comes from the
function itself. The summary loads the orders it counts with their history and leaves every
figure to the pure ``workorder_views.summarize``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from .auth import Principal
from .db.models import Site
from .db.review_models import WorkOrderEvent, WorkOrderRow
from .paging import Page, page_of
from .reviews.workorders import DEFAULT_ZONE, TERMINAL_STATES, State
from .scope_lookup import visible_site, visible_site_ids
from .workorder_views import item_view, order_of, summarize

FINAL = [state.value for state in TERMINAL_STATES]


@dataclass(frozen=True, slots=True)
class OrderFilters:
    """What a listing or a summary narrows to; None (or empty) leaves a filter out."""

    site: str | None = None
    department: str | None = None
    states: tuple[State, ...] = ()
    open: bool | None = None
    overdue: bool | None = None
    since: date | None = None
    """Opened on or after this local day (summary)."""
    until: date | None = None
    """Opened on or before this local day (summary)."""


async def list_orders(
    principal: Principal, filters: OrderFilters, *, today: date, after: int | None, limit: int
) -> Page[int]:
    """A page of the orders in scope that pass ``filters``, by id; ``today`` judges overdue."""
    query = await _in_scope(principal, filters)
    if filters.states:
        query = query.filter(state__in=[state.value for state in filters.states])
    if filters.open is not None:
        query = query.filter(state__not_in=FINAL) if filters.open else query.filter(state__in=FINAL)
    if filters.overdue is not None:
        query = query.filter(overdue(today) if filters.overdue else not_overdue(today))
    if after is not None:
        query = query.filter(id__gt=after)
    rows = await query.order_by("id").limit(limit + 1)
    codes = await _site_codes(rows)
    return page_of(rows, limit, _id, lambda row: item_view(row, codes.get(row.site_id), today))


async def summary(principal: Principal, filters: OrderFilters, *, today: date) -> dict[str, Any]:
    """The figures of the orders in scope opened in the period, with what they were asked for."""
    query = await _in_scope(principal, filters)
    if filters.since is not None and (start := local_start(filters.since)) is not None:
        query = query.filter(opened_at__gte=start)
    if filters.until is not None and (end := _end_of(filters.until)) is not None:
        query = query.filter(opened_at__lt=end)
    rows = await query.order_by("id")
    history: defaultdict[int, list[WorkOrderEvent]] = defaultdict(list)
    events = WorkOrderEvent.filter(work_order_id__in=Subquery(query.values("id")))
    for event in await events.order_by("id"):
        history[event.work_order_id].append(event)
    figures = summarize([order_of(row, history[row.id]) for row in rows], today)
    asked = {
        "today": today.isoformat(),
        "site": filters.site,
        "department": filters.department,
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
    }
    return {**asked, **figures}


def overdue(today: date) -> Q:
    """``is_overdue`` in SQL: open, and past its due date or still fixing past its fix-by date."""
    late_fix = Q(state=State.FIXING.value, fix_by__lt=today)
    return Q(state__not_in=FINAL) & (Q(due__lt=today) | late_fix)


def not_overdue(today: date) -> Q:
    """The orders ``overdue`` leaves out, written out so that no NULL drops one from both."""
    fix_in_time = Q(state__not=State.FIXING.value) | Q(fix_by__isnull=True) | Q(fix_by__gte=today)
    return Q(state__in=FINAL) | (Q(due__gte=today) & fix_in_time)


def local_start(day: date) -> datetime | None:
    """The UTC instant the local ``day`` begins; None before the first one a datetime holds."""
    try:
        return datetime.combine(day, time(), DEFAULT_ZONE).astimezone(UTC)
    except OverflowError:
        return None


def _end_of(day: date) -> datetime | None:
    """The instant after the local ``day``; None for the last day there is (no bound)."""
    try:
        return local_start(day + timedelta(days=1))
    except OverflowError:
        return None


async def _in_scope(principal: Principal, filters: OrderFilters) -> QuerySet[WorkOrderRow]:
    query = WorkOrderRow.all()
    in_scope = visible_site_ids(principal)
    if in_scope is not None:  # a NULL site_id is in no subquery: placed nowhere, seen by none
        query = query.filter(site_id__in=in_scope)
    if filters.site is not None:
        site, _ = await visible_site(principal, filters.site)
        query = query.filter(site_id=site.id)
    if filters.department is not None:
        query = query.filter(department=filters.department)
    return query


async def _site_codes(rows: list[WorkOrderRow]) -> dict[int | None, str]:
    ids = {row.site_id for row in rows if row.site_id is not None}
    if not ids:
        return {}
    return dict(await Site.filter(id__in=ids).values_list("id", "code"))


def _id(row: WorkOrderRow) -> int:
    key: int = row.id
    return key
