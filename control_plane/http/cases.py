"""/api/v1/cases: the business system says a case (办件) has ended; its pad prompts for a rating.

``POST`` records the case (``review_cases``) and, when the server is connected to the broker,
publishes its notice before answering (``notified``). A repeat with the same details answers 200
with the case as it stands, so a business system may retry freely. ``GET
/api/v1/cases/{case_number}`` shows the case with its notice and rating. docs/cases.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from control_plane import review_cases
from control_plane.auth import Permission
from control_plane.case_notices import CaseNotices
from control_plane.db import DATABASE_ERRORS
from control_plane.db.review_models import ReviewCase
from control_plane.review_cases import CaseRequest, CaseState
from control_plane.review_defaults import DEFAULT_SOURCE

from . import case_schemas
from .admin import Handler, json_object, refusals
from .auth import PRINCIPAL, ApiRoute
from .errors import invalid_field, invalid_parameter, unknown_names

log = logging.getLogger(__name__)

CASES = "/api/v1/cases"
CASE = "/api/v1/cases/{case_number}"
NOTICES = web.AppKey("case_notices", CaseNotices)
"""The server's notices, which publish a recorded case at once; without them (the API alone)
the case waits for the server's chore."""
FIELDS = frozenset(field.encode_name for field in msgspec.structs.fields(case_schemas.NewCase))
REQUIRED = ("case_number", "item_code")

ROUTES = (
    ApiRoute(
        "POST",
        CASES,
        Permission.REVIEWS_WRITE,
        "tell a window's review pad that a case (办件) has ended, so that it prompts for a"
        " rating; the same case sent again with the same details answers 200",
        answer=case_schemas.CaseRecorded,
        status=201,
        body=case_schemas.NewCase,
        conflict="the case number was recorded with other details (`case_exists`), or the pad"
        " cannot take it: none at the window, several, retired, placed at no window",
    ),
    ApiRoute(
        "GET",
        CASE,
        Permission.REVIEWS_READ,
        "a case: its pad, rating period, notice, and its rating (the pad's or the default)",
        answer=case_schemas.CaseView,
    ),
)


def handlers(clock: Callable[[], datetime]) -> dict[str, Handler]:
    async def post(request: web.Request) -> web.Response:
        return await post_case(clock, request)

    async def get(request: web.Request) -> web.Response:
        return await show_case(clock, request)

    return {CASES: refusals(post), CASE: refusals(get)}


async def post_case(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _no_parameters(request)
    asked = case_request(await json_object(request))
    recorded = await review_cases.record_case(request[PRINCIPAL], asked, clock())
    notices = request.app.get(NOTICES)
    if recorded.created and notices is not None:
        try:
            await notices.publish_now()
        except DATABASE_ERRORS as exc:  # recorded all the same: the chore publishes it later
            log.warning("case %s recorded, its notice waits: %s", asked.case_number, exc)
    notified = await review_cases.is_notified(asked.case_number)
    view = recorded_view(recorded.case, recorded.site_code, notified=notified)
    return web.json_response(view, status=201 if recorded.created else 200)


async def show_case(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _no_parameters(request)
    state = await review_cases.load_case(request[PRINCIPAL], request.match_info["case_number"])
    return web.json_response(case_view(state, clock()))


def _no_parameters(request: web.Request) -> None:
    if request.query:
        unknown = sorted(request.query)
        msg = f"unknown parameter(s) {', '.join(unknown)}; this route takes none"
        raise invalid_parameter(msg, parameter=unknown[0], **unknown_names(unknown, ()))


# --- the body ------------------------------------------------------------------------------------


def case_request(body: Mapping[str, object]) -> CaseRequest:
    """The request a JSON body makes; a 400 naming the field for one of the wrong shape."""
    if unknown := set(body) - FIELDS:
        msg = f"unknown field(s) {', '.join(sorted(unknown))}"
        raise invalid_field(msg, field=min(unknown), **unknown_names(unknown, FIELDS))
    for field in REQUIRED:
        if field not in body:
            msg = f"{field}: required"
            raise invalid_field(msg, field=field)
    return CaseRequest(
        case_number=_text(body, "case_number") or "",
        item_code=_text(body, "item_code") or "",
        device_id=_text(body, "device_id"),
        site=_text(body, "site"),
        window=_text(body, "window"),
        item_name=_text(body, "item_name") or "",
        staff_id=_text(body, "staff_id") or "",
        department=_text(body, "department") or "",
        ended_at=_ended_at(body.get("ended_at")),
    )


def _text(body: Mapping[str, object], field: str) -> str | None:
    """A text field's value; None when absent or null."""
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        msg = f"{field}: must be a string"
        raise invalid_field(msg, field=field)
    return value


def _ended_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        msg = "ended_at: must be an RFC 3339 time"
        raise invalid_field(msg, field="ended_at")
    try:
        moment = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        msg = f"ended_at: {value[:40]!r} is not an RFC 3339 time such as 2026-03-02T09:30:00+08:00"
        raise invalid_field(msg, field="ended_at") from None
    return moment


# --- views ---------------------------------------------------------------------------------------


def recorded_view(case: ReviewCase, site_code: str | None, *, notified: bool) -> dict[str, Any]:
    return {
        "case_number": case.case_number,
        "device_id": case.device_id,
        "site": site_code,
        "window": case.window_number,
        "ended_at": case.ended_at.isoformat(),
        "rate_by": case.rate_by.isoformat(),
        "notified": notified,
    }


def case_view(state: CaseState, now: datetime) -> dict[str, Any]:
    case, review = state.case, state.review
    return {
        "case_number": case.case_number,
        "device_id": case.device_id,
        "site": state.site_code,
        "window": case.window_number,
        "item_code": case.item_code,
        "item_name": case.item_name,
        "department": case.department,
        "staff_id": case.staff_id,
        "ended_at": case.ended_at.isoformat(),
        "rate_by": case.rate_by.isoformat(),
        "notified_at": _iso(case.notified_at),
        "defaulted_at": _iso(case.defaulted_at),
        "status": status(state, now),
        "review": None
        if review is None
        else {
            "rating": review.rating,
            "source": review.source,
            "rated_at": review.rated_at.isoformat(),
            "voided": review.voided_at is not None,
        },
    }


def status(state: CaseState, now: datetime) -> case_schemas.CaseStatus:
    """Where the case stands: rated by the pad, defaulted, awaiting its rating, or overdue."""
    if state.review is not None:
        return "defaulted" if state.review.source == DEFAULT_SOURCE else "rated"
    return "awaiting_rating" if now < state.case.rate_by else "overdue"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
