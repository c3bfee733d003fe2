"""好差评 reviews, refused ratings, chain problems and policies as the API shows them. Pure.

A review shows where it was taken (site and window of the pad when it arrived) and what the
business system said (``window_number``, ``department``, ``staff_id``); never ``citizen_ref``
(a keyed hash of the citizen's identity, which linked across cases would profile a citizen) nor
the raw record, which the hash chain keeps for the control plane itself.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from .db.review_models import ReviewChainProblem, ReviewPolicy, ReviewRefusal, ReviewRow
from .review_queries import BAD, Places


def _iso(moment: datetime | date | None) -> str | None:
    return None if moment is None else moment.isoformat()


def review_view(row: ReviewRow, places: Places) -> dict[str, Any]:
    site = places.sites.get(row.site_id) if row.site_id is not None else None
    return {
        "case_number": row.case_number,
        "rating": row.rating,
        "bad": row.rating in BAD,
        "source": row.source,
        "channel": row.channel,
        "indicators": dict(row.indicators),
        "comment": row.comment,
        "item_code": row.item_code,
        "department": row.department,
        "staff_id": row.staff_id,
        "window_number": row.window_number,
        "site": site[0] if site else None,
        "site_name": site[1] if site else None,
        "window": places.windows.get(row.window_id) if row.window_id is not None else None,
        "device_id": row.device_id or None,
        "seq": row.seq,
        "rated_at": _iso(row.rated_at),
        "received_at": _iso(row.received_at),
        "voided_at": _iso(row.voided_at),
        "chain_checked": row.chain_checked,
    }


def work_order_view(order: dict[str, Any] | None) -> dict[str, Any] | None:
    if order is None:
        return None
    return {
        "id": order["id"],
        "state": order["state"],
        "due": _iso(order["due"]),
        "due_provisional": order["due_provisional"],
        "closed_at": _iso(order["closed_at"]),
    }


def refusal_view(row: ReviewRefusal) -> dict[str, Any]:
    return {
        "id": row.id,
        "device_id": row.device_id,
        "seq": row.seq,
        "case_number": row.case_number,
        "reason": row.reason,
        "rating": row.rating,
        "received_at": _iso(row.received_at),
    }


def chain_problem_view(row: ReviewChainProblem) -> dict[str, Any]:
    return {
        "id": row.id,
        "device_id": row.device_id,
        "seq": row.seq,
        "kind": row.kind,
        "expected": row.expected,
        "found": row.found,
        "found_at": _iso(row.found_at),
        "detail": dict(row.detail),
    }


def policy_view(row: ReviewPolicy, node_name: str | None, *, within_scope: bool) -> dict[str, Any]:
    """A node's policy; ``within_scope`` False: an ancestor's, which holds but is not ours."""
    return {
        "node": row.node_code,
        "node_name": node_name,
        "deadline_working_days": row.deadline_working_days,
        "rate_within_days": row.rate_within_days,
        "within_scope": within_scope,
        "updated_at": _iso(row.updated_at),
        "updated_by": row.updated_by,
    }
