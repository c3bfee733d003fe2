"""好差评 read from the database: reviews, refused ratings, chain problems, counts for scores.

Scope: a review lies where its pad stood when it arrived (``site_id``), so a token sees the
reviews of the sites in its subtree, and only a token for the whole tree sees those of pads
placed nowhere (site None). Refused ratings and chain problems name a device, not a site: they
lie where the device stands now.

Listings are keyset pages: reviews newest first by ``(rated_at, id)``, which the
``(site_id, rated_at)`` and ``rated_at`` indexes serve; refusals and chain problems newest
first by id. Scores count in the database (GROUP BY), never by loading reviews.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from .db.models import ServiceWindow, Site
from .db.review_models import ReviewChainProblem, ReviewRefusal, ReviewRow, WorkOrderRow
from .review_period import Period
from .reviews.intake import BAD_RATINGS
from .reviews.score_rule import LEVELS
from .sites import devices_under, sites_under

SCORED_RATINGS = tuple(level.value for level in LEVELS)
"""What a score counts: the five levels; ``unknown`` never scores."""
KEY_SEPARATOR = "~"
MAX_ID = 2**63 - 1
"""Review ids are BIGINT: a tampered cursor's larger one must not reach the database."""
MAX_CASE_NUMBER = 64
"""``review.case_number``'s column: a longer one names no review and never reaches a query."""
MAX_DEPARTMENT = 64
"""``review.department``'s column, as ``MAX_CASE_NUMBER``."""


class Grouping(StrEnum):
    """What a league table ranks."""

    WINDOW = "window"
    SITE = "site"
    DEPARTMENT = "department"
    LEVEL = "level"
    """The hall level of the site (district, town, village)."""


@dataclass(frozen=True, slots=True)
class ReviewFilters:
    """What a review listing asks for; None (or empty) leaves a filter out."""

    site_id: int | None = None
    node_path: str | None = None
    department: str | None = None
    ratings: frozenset[str] = frozenset()
    bad: bool | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None


BAD = tuple(sorted(rating.value for rating in BAD_RATINGS))
"""差评 as stored: 不满意 and 非常不满意."""


def in_scope(query: QuerySet[ReviewRow], scope_path: str | None) -> QuerySet[ReviewRow]:
    """``query`` cut to the reviews at sites of the subtree (None: every review)."""
    if scope_path is None:
        return query
    return query.filter(site_id__in=Subquery(sites_under(scope_path).values("id")))


def filtered(filters: ReviewFilters, scope_path: str | None) -> QuerySet[ReviewRow]:
    query = in_scope(ReviewRow.all(), scope_path)
    if filters.node_path is not None:
        query = in_scope(query, filters.node_path)
    if filters.site_id is not None:
        query = query.filter(site_id=filters.site_id)
    if filters.department is not None:
        query = query.filter(department=filters.department)
    if filters.ratings:
        query = query.filter(rating__in=sorted(filters.ratings))
    if filters.bad is not None:
        query = query.filter(rating__in=BAD) if filters.bad else query.exclude(rating__in=BAD)
    if filters.source is not None:
        query = query.filter(source=filters.source)
    if filters.since is not None:
        query = query.filter(rated_at__gte=filters.since.astimezone(UTC))
    if filters.until is not None:
        query = query.filter(rated_at__lt=filters.until.astimezone(UTC))
    return query


# --- review listing ---------------------------------------------------------------------------


def review_key(row: ReviewRow) -> str:
    """Where the next page starts after ``row``: its rating time and id."""
    return f"{row.rated_at.astimezone(UTC).isoformat()}{KEY_SEPARATOR}{row.id}"


def parse_review_key(text: str) -> tuple[datetime, int] | None:
    """The ``(rated_at, id)`` of a ``review_key``; None for anything else."""
    moment, separator, number = text.rpartition(KEY_SEPARATOR)
    if not separator or not number.isascii() or not number.isdigit():
        return None
    try:
        rated_at = datetime.fromisoformat(moment)
        if rated_at.tzinfo is None or int(number) > MAX_ID:
            return None
        return rated_at.astimezone(UTC), int(number)
    except (ValueError, OverflowError):  # not a time, or one beyond the calendar in UTC
        return None


async def reviews_page(
    filters: ReviewFilters,
    scope_path: str | None,
    *,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[ReviewRow]:
    """Up to ``limit + 1`` reviews newest first after ``after``: the extra says more follow."""
    query = filtered(filters, scope_path)
    if after is not None:
        rated_at, review_id = after
        query = query.filter(Q(rated_at__lt=rated_at) | Q(rated_at=rated_at, id__lt=review_id))
    return await query.order_by("-rated_at", "-id").limit(limit + 1)


async def review_by_case(case_number: str, scope_path: str | None) -> ReviewRow | None:
    """The case's review, if it lies in the scope (None: none there, or none at all)."""
    if not 1 <= len(case_number) <= MAX_CASE_NUMBER:
        return None
    return await in_scope(ReviewRow.filter(case_number=case_number), scope_path).first()


async def work_order_of(review_id: int) -> dict[str, Any] | None:
    """The work order a bad review opened: id, state, due day, closed; None for none.

    Read from the row itself: the work-order store owns the rules, this only shows them.
    """
    rows = await WorkOrderRow.filter(review_id=review_id).values(
        "id", "state", "due", "due_provisional", "closed_at"
    )
    return rows[0] if rows else None


@dataclass(frozen=True, slots=True)
class Places:
    """Site id → (code, name); window id → number: what a page of reviews names."""

    sites: dict[int, tuple[str, str]]
    windows: dict[int, str]


async def places_of(rows: Sequence[ReviewRow]) -> Places:
    site_ids = {row.site_id for row in rows if row.site_id is not None}
    window_ids = {row.window_id for row in rows if row.window_id is not None}
    sites = await Site.filter(id__in=site_ids).values_list("id", "code", "name") if site_ids else []
    windows = (
        await ServiceWindow.filter(id__in=window_ids).values_list("id", "number")
        if window_ids
        else []
    )
    return Places(
        {int(site_id): (str(code), str(name)) for site_id, code, name in sites},
        {int(window_id): str(number) for window_id, number in windows},
    )


# --- refused ratings and chain problems -------------------------------------------------------


def _devices_in(scope_path: str | None) -> Subquery | None:
    return None if scope_path is None else Subquery(devices_under(scope_path).values("device_id"))


async def refusals_page(
    scope_path: str | None, *, reason: str | None, after: int | None, limit: int
) -> list[ReviewRefusal]:
    """Up to ``limit + 1`` refused ratings of the scope's devices, newest first."""
    query = ReviewRefusal.all()
    if (devices := _devices_in(scope_path)) is not None:
        query = query.filter(device_id__in=devices)
    if reason is not None:
        query = query.filter(reason=reason)
    if after is not None:
        query = query.filter(id__lt=after)
    return await query.order_by("-id").limit(limit + 1)


async def chain_problems_page(
    scope_path: str | None, *, kind: str | None, after: int | None, limit: int
) -> list[ReviewChainProblem]:
    """Up to ``limit + 1`` breaks in the scope's pads' hash chains, newest first."""
    query = ReviewChainProblem.all()
    if (devices := _devices_in(scope_path)) is not None:
        query = query.filter(device_id__in=devices)
    if kind is not None:
        query = query.filter(kind=kind)
    if after is not None:
        query = query.filter(id__lt=after)
    return await query.order_by("-id").limit(limit + 1)


# --- counts for scores ------------------------------------------------------------------------

GROUP_COLUMNS = {
    Grouping.WINDOW: "window_id",
    Grouping.SITE: "site_id",
    Grouping.DEPARTMENT: "department",
    # Levels are the sites': counted per site here, the sites' counts summed per level after.
    Grouping.LEVEL: "site_id",
}

Counted = dict[Any, dict[str, int]]
"""Group value (a window or site id, a department code; None or "" for none) → rating → n."""


def scored(period: Period, scope_path: str | None) -> QuerySet[ReviewRow]:
    """The reviews that count for a score: rated in the period, not voided, a level known."""
    query = ReviewRow.filter(
        rated_at__gte=period.start.astimezone(UTC),
        rated_at__lt=period.end.astimezone(UTC),
        voided_at__isnull=True,
        rating__in=SCORED_RATINGS,
    )
    return in_scope(query, scope_path)


async def rating_counts(by: Grouping, period: Period, scope_path: str | None) -> Counted:
    """How many scoring reviews each group has per rating, counted by the database."""
    column = GROUP_COLUMNS[by]
    rows = (
        await scored(period, scope_path)
        .annotate(n=Count("id"))
        .group_by(column, "rating")
        .values(column, "rating", "n")
    )
    counted: Counted = {}
    for row in rows:
        counted.setdefault(row[column], {})[str(row["rating"])] = int(row["n"])
    return counted
