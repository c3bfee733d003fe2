"""/api/v1/workorders: bad-review work orders (差评工单), listed, summed up, shown and moved on.

Every route reads only the orders in the token's scope (an order at no site: whole-tree tokens
only); beyond it an order is a 404 like a missing one. A transition is asked for by its action
(``control_plane.reviews.workorders``): the unit's actions need ``workorders.handle``, the
supervising level's ``workorders.review``, so the route itself asks only ``reviews.read`` (seeing
the order) and the action's permission is checked once the body names it (403 ``forbidden``).
The token's name is the actor, the server's clock the time. A body that does not decode is a
400 naming the field; an action the order refuses is a 409 whose code is the state machine's
refusal (``illegal_transition``, ``note_required``, …), nothing written. Each accepted
transition is audited. docs/workorders.md describes the routes and the command line.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from aiohttp import web

from control_plane import workorder_queries, workorder_store
from control_plane.auth import Permission
from control_plane.reviews.workorders import (
    DEFAULT_ZONE,
    Action,
    CallOutcome,
    State,
    TransitionRefusedError,
)
from control_plane.workorder_queries import OrderFilters
from control_plane.workorder_store import Asked

from . import workorder_schemas as shapes
from .admin import (
    Handler,
    cursor_after,
    flag,
    json_object,
    only_parameters,
    page_response,
    refusals,
    text_parameter,
)
from .auth import PRINCIPAL, ApiRoute
from .errors import ApiError, invalid_field, invalid_parameter, unknown_names
from .params import limit_param

WORKORDERS = "/api/v1/workorders"
SUMMARY = "/api/v1/workorders/summary"
ORDER = "/api/v1/workorders/{id}"
TRANSITIONS = "/api/v1/workorders/{id}/transitions"
LIST_FILTERS = frozenset({"state", "site", "department", "open", "overdue"})
SUMMARY_PARAMETERS = frozenset({"site", "department", "since", "until"})
BODY_FIELDS = frozenset({"action", "note", "outcome", "fix_by"})
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
E = TypeVar("E", bound=StrEnum)

ROUTES = (
    ApiRoute(
        "GET",
        WORKORDERS,
        Permission.REVIEWS_READ,
        "the bad reviews' work orders in the token's scope, oldest first: `?state=` (repeat or"
        " join by ,), `?site=`, `?department=`, `?open=`, `?overdue=`",
        answer=shapes.WorkOrderPage,
        query=shapes.WorkOrderParameters,
    ),
    ApiRoute(
        "GET",
        SUMMARY,
        Permission.REVIEWS_READ,
        "work-order figures in the token's scope: counts by state, open, overdue, call-back rate"
        " (回访率), closed within the deadline; `?site=`, `?department=`, opened `?since=`"
        " `?until=`",
        answer=shapes.WorkOrderSummary,
        query=shapes.SummaryParameters,
    ),
    ApiRoute(
        "GET",
        ORDER,
        Permission.REVIEWS_READ,
        "one work order with its review, its whole history and the actions the token may take",
        answer=shapes.WorkOrderDetail,
    ),
    ApiRoute(
        "POST",
        TRANSITIONS,
        Permission.REVIEWS_READ,
        "act on a work order: the unit's actions need `workorders.handle`, the supervisor's"
        " `workorders.review`; the token is the actor",
        answer=shapes.WorkOrderDetail,
        body=shapes.TransitionBody,
        conflict="the order refuses the action: the code is the refusal (`illegal_transition`,"
        " `order_closed`, `note_required`, `call_back_first`, …)",
    ),
)


def handlers(clock: Callable[[], datetime]) -> dict[str, Handler]:
    def today(now: datetime | None = None) -> date:
        """The local day overdue is judged on."""
        return (now or clock()).astimezone(DEFAULT_ZONE).date()

    @refusals
    async def list_orders(request: web.Request) -> web.Response:
        only_parameters(request, LIST_FILTERS)
        filters = OrderFilters(
            site=request.query.get("site"),
            department=_department(request),
            states=_states(request),
            open=flag(request, "open"),
            overdue=flag(request, "overdue"),
        )
        page = await workorder_queries.list_orders(
            request[PRINCIPAL],
            filters,
            today=today(),
            after=cursor_after(request, int),
            limit=limit_param(request),
        )
        return page_response(page)

    @refusals
    async def summary(request: web.Request) -> web.Response:
        _takes(request, SUMMARY_PARAMETERS)
        since, until = _day_parameter(request, "since"), _day_parameter(request, "until")
        if since is not None and until is not None and since > until:
            msg = f"since ({since}) is after until ({until})"
            raise invalid_parameter(msg, parameter="since")
        filters = OrderFilters(
            site=request.query.get("site"),
            department=_department(request),
            since=since,
            until=until,
        )
        body = await workorder_queries.summary(request[PRINCIPAL], filters, today=today())
        return web.json_response(body)

    @refusals
    async def show(request: web.Request) -> web.Response:
        _takes(request, ())
        principal = request[PRINCIPAL]
        view = await workorder_store.order_detail(principal, request.match_info["id"], today())
        return web.json_response(view)

    @refusals
    async def act(request: web.Request) -> web.Response:
        _takes(request, ())
        principal = request[PRINCIPAL]
        asked = transition_body(await json_object(request))
        principal.require(workorder_store.required_permission(asked.action))
        now = clock()
        try:
            stored = await workorder_store.transition(
                principal, request.match_info["id"], asked, at=now
            )
        except TransitionRefusedError as exc:
            raise ApiError(409, exc.code.value, str(exc)) from None
        return web.json_response(await workorder_store.detail_of(principal, stored, today(now)))

    return {WORKORDERS: list_orders, SUMMARY: summary, ORDER: show, TRANSITIONS: act}


# --- the body -----------------------------------------------------------------------------------


def transition_body(body: dict[str, object]) -> Asked:
    """The transition a body asks for; a 400 naming the first field that does not decode."""
    if unknown := set(body) - BODY_FIELDS:
        msg = f"unknown field(s) {', '.join(sorted(unknown))}; a transition takes action, note,"
        msg += " outcome and fix_by"
        raise invalid_field(msg, field=min(unknown), **unknown_names(unknown, BODY_FIELDS))
    for required in ("action", "note"):
        if required not in body:
            msg = f"{required}: required"
            raise invalid_field(msg, field=required)
    note = body["note"]
    if not isinstance(note, str):
        msg = f"note must be text, not {type(note).__name__}"
        raise invalid_field(msg, field="note")
    outcome, fix_by = body.get("outcome"), body.get("fix_by")
    return Asked(
        action=_member(Action, body["action"], "action"),
        note=note,
        outcome=None if outcome is None else _member(CallOutcome, outcome, "outcome"),
        fix_by=None if fix_by is None else _body_day(fix_by),
    )


def _member(enum: type[E], value: object, field: str) -> E:
    allowed = sorted(member.value for member in enum)
    if isinstance(value, str) and value in allowed:
        return enum(value)
    msg = f"{field} must be one of {', '.join(allowed)}, not {value!r}"
    raise invalid_field(msg, field=field, allowed=allowed)


def _body_day(value: object) -> date:
    day = parse_day(value) if isinstance(value, str) else None
    if day is None:
        msg = f"fix_by must be a day as YYYY-MM-DD, not {value!r}"
        raise invalid_field(msg, field="fix_by")
    return day


def parse_day(text: str) -> date | None:
    """A day written YYYY-MM-DD, or None (fromisoformat alone would take 20260101 too)."""
    if _DAY.fullmatch(text):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(text)
    return None


# --- query parameters ---------------------------------------------------------------------------


def _states(request: web.Request) -> tuple[State, ...]:
    """``?state=``, repeated or joined by commas (as the statistics' ``by``), each once."""
    names = [
        part.strip() for value in request.query.getall("state", []) for part in value.split(",")
    ]
    allowed = sorted(state.value for state in State)
    for name in names:
        if name not in allowed:
            msg = f"state must be among {', '.join(allowed)}, not {name!r}"
            raise invalid_parameter(msg, parameter="state", allowed=allowed)
    return tuple(State(name) for name in dict.fromkeys(names))


def _department(request: web.Request) -> str | None:
    return text_parameter(request, "department", shapes.MAX_DEPARTMENT_LENGTH)


def _day_parameter(request: web.Request, name: str) -> date | None:
    text = request.query.get(name)
    if text is None:
        return None
    day = parse_day(text)
    if day is None:
        msg = f"{name} must be a day as YYYY-MM-DD, not {text!r}"
        raise invalid_parameter(msg, parameter=name)
    return day


def _takes(request: web.Request, names: frozenset[str] | tuple[()]) -> None:
    """Refuse a parameter the route does not take (not even limit or cursor)."""
    if unknown := sorted(set(request.query) - set(names)):
        taken = f"it takes {', '.join(sorted(names))}" if names else "it takes none"
        msg = f"{unknown[0]} is not a parameter of this route; {taken}"
        raise invalid_parameter(msg, parameter=unknown[0], **unknown_names(unknown, names))
