"""Storing the reviews of a committed batch: one per case, refusals kept, work orders opened.

Runs inside the ingest's batch transaction (``records.store_batch``), so a review, its refusal
or its work order is stored exactly when its record is: a crash before the commit leaves
nothing, and the broker delivers the batch again. What is accepted and refused is decided by
``control_plane.reviews.intake`` (pure); this module reads what it needs and writes.

Each bad review (差评) opens a work order due a number of working days after the local day it
arrived, by the review policy of the site's jurisdiction and the working-day calendar.
Two replicas storing the same case at once: the second's insert breaks the unique case number,
its batch fails and comes again, and then finds the case taken (a refusal).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient

from .db.models import Device, Site
from .db.review_models import (
    ReviewCase,
    ReviewPolicy,
    ReviewRefusal,
    ReviewRow,
    WorkOrderRow,
)
from .metrics import ControlPlaneMetrics
from .review_policy import PolicyValues, nearest
from .reviews.intake import BAD_RATINGS, Arrived, Decision, Stored, decide
from .reviews.working_days import WorkingCalendar
from .reviews.workorders import DEFAULT_ZONE, State

NO_LEVEL = "none"
"""The hall level of a review whose pad stands at no site (a bounded metric label)."""


@dataclass(frozen=True, slots=True)
class Placement:
    site_id: int | None
    window_id: int | None
    path: str
    level: str


@dataclass
class ReviewOutcome:
    """What a batch's reviews came to, for the metrics once the batch is committed."""

    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    """By (rating, hall level)."""
    refused: Counter[str] = field(default_factory=Counter)
    """By refusal reason."""
    work_orders: Counter[str] = field(default_factory=Counter)
    """Opened, by hall level."""

    def count_into(self, metrics: ControlPlaneMetrics) -> None:
        for (rating, level), count in self.accepted.items():
            metrics.reviews.labels(rating, level).inc(count)
        for reason, count in self.refused.items():
            metrics.review_refusals.labels(reason).inc(count)
        for level, count in self.work_orders.items():
            metrics.work_orders_opened.labels(level).inc(count)


async def store_reviews(
    conn: BaseDBAsyncClient, arrived: Sequence[Arrived], calendar: WorkingCalendar
) -> ReviewOutcome:
    """Decide and store ``arrived`` within ``conn``'s transaction."""
    outcome = ReviewOutcome()
    if not arrived:
        return outcome
    cases = sorted({item.review.case_number for item in arrived})
    decision = decide(arrived, *await _known(conn, cases))
    placements = await _placements(conn, {item.device_id for item in decision.accepted})
    await _store_refusals(conn, decision, outcome)
    await _store_accepted(conn, decision, placements, outcome)
    await _open_work_orders(conn, decision, placements, calendar, outcome)
    return outcome


async def _known(
    conn: BaseDBAsyncClient, cases: list[str]
) -> tuple[dict[str, Stored], frozenset[tuple[str, int]], dict[str, datetime]]:
    """The cases' stored reviews, their refused records, and their rating periods' ends."""
    stored = {
        row["case_number"]: Stored(
            (row["device_id"], row["seq"]) if row["seq"] is not None else None, row["source"]
        )
        for row in await ReviewRow.filter(case_number__in=cases)
        .using_db(conn)
        .values("case_number", "device_id", "seq", "source")
    }
    refused = frozenset(
        (row["device_id"], row["seq"])
        for row in await ReviewRefusal.filter(case_number__in=cases)
        .using_db(conn)
        .values("device_id", "seq")
    )
    rate_by = {
        row["case_number"]: row["rate_by"]
        for row in await ReviewCase.filter(case_number__in=cases)
        .using_db(conn)
        .values("case_number", "rate_by")
    }
    return stored, refused, rate_by


async def _placements(conn: BaseDBAsyncClient, devices: set[str]) -> dict[str, Placement]:
    """Where each device stands now: its site and window, the site's node path and level."""
    if not devices:
        return {}
    rows = (
        await Device.filter(device_id__in=devices)
        .using_db(conn)
        .values("device_id", "site_id", "window_id")
    )
    site_ids = {row["site_id"] for row in rows if row["site_id"] is not None}
    sites = {
        row["id"]: (row["node__path"], row["level"])
        for row in await Site.filter(id__in=site_ids)
        .using_db(conn)
        .values("id", "level", "node__path")
    }
    placements = {}
    for row in rows:
        path, level = sites.get(row["site_id"], ("", NO_LEVEL))
        placements[row["device_id"]] = Placement(row["site_id"], row["window_id"], path, level)
    return placements


async def _store_refusals(
    conn: BaseDBAsyncClient, decision: Decision, outcome: ReviewOutcome
) -> None:
    if not decision.refused:
        return
    await ReviewRefusal.bulk_create(
        [
            ReviewRefusal(
                device_id=refused.arrived.device_id,
                seq=refused.arrived.review.seq,
                case_number=refused.arrived.review.case_number,
                reason=refused.reason.value,
                rating=refused.arrived.review.rating.value,
                received_at=refused.arrived.received_at,
                payload=refused.arrived.payload,
            )
            for refused in decision.refused
        ],
        using_db=conn,
    )
    outcome.refused.update(refused.reason.value for refused in decision.refused)


async def _store_accepted(
    conn: BaseDBAsyncClient,
    decision: Decision,
    placements: dict[str, Placement],
    outcome: ReviewOutcome,
) -> None:
    if not decision.accepted:
        return
    rows = []
    for item in decision.accepted:
        review = item.review
        where = placements.get(item.device_id, Placement(None, None, "", NO_LEVEL))
        rows.append(
            ReviewRow(
                case_number=review.case_number,
                source="terminal",
                device_id=item.device_id,
                seq=review.seq,
                rating=review.rating.value,
                channel=review.channel.value,
                indicators=msgspec.to_builtins(review.indicators) if review.indicators else {},
                comment=review.comment,
                item_code=review.item_code,
                department=review.institution,
                window_number=review.window,
                staff_id=review.staff_id,
                citizen_ref=review.citizen_ref,
                site_id=where.site_id,
                window_id=where.window_id,
                rated_at=review.at if review.at is not None else item.received_at,
                received_at=item.received_at,
                payload=item.payload,
            )
        )
        outcome.accepted[(review.rating.value, where.level)] += 1
    await ReviewRow.bulk_create(rows, using_db=conn)


async def _open_work_orders(
    conn: BaseDBAsyncClient,
    decision: Decision,
    placements: dict[str, Placement],
    calendar: WorkingCalendar,
    outcome: ReviewOutcome,
) -> None:
    bad = [item for item in decision.accepted if item.review.rating in BAD_RATINGS]
    if not bad:
        return
    ids = dict(
        await ReviewRow.filter(case_number__in=[item.review.case_number for item in bad])
        .using_db(conn)
        .values_list("case_number", "id")
    )
    policies = {
        row.node_code: PolicyValues(row.deadline_working_days, row.rate_within_days, row.node_code)
        for row in await ReviewPolicy.all().using_db(conn)
    }
    orders = []
    for item in bad:
        review = item.review
        where = placements.get(item.device_id, Placement(None, None, "", NO_LEVEL))
        days = nearest(where.path, policies).deadline_working_days
        opened = item.received_at
        due = calendar.add_working_days(opened.astimezone(DEFAULT_ZONE).date(), days)
        orders.append(
            WorkOrderRow(
                review_id=ids[review.case_number],
                case_number=review.case_number,
                site_id=where.site_id,
                department=review.institution,
                window_number=review.window,
                staff_id=review.staff_id,
                rating=review.rating.value,
                opened_at=opened,
                due=due.day,
                deadline_working_days=days,
                due_provisional=due.provisional,
                state=State.TO_CALL_BACK.value,
                updated_at=opened,
            )
        )
        outcome.work_orders[where.level] += 1
    await WorkOrderRow.bulk_create(orders, using_db=conn)
