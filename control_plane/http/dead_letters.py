"""/api/v1/dead-letters: what the ingest kept raw instead of storing, and storing it again.

The API's side of ``termfleet db dead-letters`` and ``termfleet db resubmit``, for operators
without the database's URL. A dead letter is the only copy of its record (its device was told to
drop it), so resubmitting goes through ``control_plane.dead_letters``: the wire contract and the
ingest's transaction again, audited as the token's. Dead letters belong to no subtree (a message
may name no device the registry knows), so only a token for the whole tree reads or resubmits
them. docs/dead-letters.md.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from control_plane.admin_bodies import Body
from control_plane.auth import Permission
from control_plane.dead_letters import Outcome, Selection, newest, resubmit, select
from control_plane.inventory import DEVICE_ID
from control_plane.reviews.working_days import WorkingCalendar
from control_plane.scope_lookup import require_whole_tree
from edge.protocol.errors import RejectReason

from .admin import Handler, by_method, json_object, only_parameters, refusals
from .auth import PRINCIPAL, ApiRoute
from .errors import invalid_field, invalid_parameter, unknown_names
from .params import MAX_LIMIT, choice, integer, limit_param
from .request_schemas import DeviceId, Limit, Parameters, one_of
from .schemas import Cursor, Schema

DEAD_LETTERS = "/api/v1/dead-letters"
RESUBMIT = "/api/v1/dead-letters/resubmit"
MAX_ID = 2**63 - 1
"""Dead letter ids are BIGINT columns: a larger number must not reach the database."""
REASONS = frozenset(reason.value for reason in RejectReason)
RESUBMIT_FIELDS = frozenset({"ids", "reason", "device_id", "limit", "dry_run"})
WHAT = "dead letters"
RESUBMIT_LIMIT = 100
"""Dead letters resubmitted by one request that names no ids, unless it says otherwise."""

LetterId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="a dead letter's id")]
Reason = Annotated[
    str, msgspec.Meta(pattern=one_of(REASONS), description="why it could not be stored")
]


class DeadLetterParameters(Parameters):
    reason: Reason | None = None
    device_id: DeviceId | None = None
    limit: Limit = 100
    cursor: Annotated[
        LetterId | None, msgspec.Meta(description="the previous page's next_cursor")
    ] = None


class DeadLetter(Schema):
    """One uplink message (or one record of it) kept as it came."""

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    seq: int | None
    reason: str
    detail: Annotated[str, msgspec.Meta(description="the wire contract's or database's refusal")]
    payload: Annotated[str, msgspec.Meta(description="as sent (U+FFFD for bytes no text holds)")]


class DeadLetterPage(Schema):
    items: list[DeadLetter]
    next_cursor: Cursor


class ResubmitRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which dead letters, oldest first: these ids, or every one (of a reason, of a device)."""

    ids: Annotated[list[LetterId], msgspec.Meta(max_length=MAX_LIMIT)] = msgspec.field(
        default_factory=list
    )
    reason: Reason | None = None
    device_id: DeviceId | None = None
    limit: Annotated[
        int,
        msgspec.Meta(ge=1, le=MAX_LIMIT, description=f"without ids: at most [{RESUBMIT_LIMIT}]"),
    ] = RESUBMIT_LIMIT
    dry_run: Annotated[
        bool, msgspec.Meta(description="each in a transaction rolled back: nothing changes")
    ] = False


class ResubmitOutcome(Schema):
    id: int
    device_id: str | None
    seq: int | None
    reason: str
    outcome: Annotated[
        str,
        msgspec.Meta(
            pattern=one_of(o.value for o in Outcome),
            description="stored, already_stored, gone (another resubmitted it meanwhile);"
            " refused (the contract) or unstorable (the database): kept",
        ),
    ]
    stored: Annotated[int, msgspec.Meta(description="records stored now")]
    detail: str


class ResubmitAnswer(Schema):
    dry_run: bool
    resubmitted: list[ResubmitOutcome]
    not_found: Annotated[list[int], msgspec.Meta(description="ids asked for that are not kept")]


ROUTES = (
    ApiRoute(
        "GET",
        DEAD_LETTERS,
        Permission.DEAD_LETTERS_READ,
        "the uplink messages the ingest kept raw instead of storing, newest first, payloads"
        " as sent; a token for the whole tree only",
        answer=DeadLetterPage,
        query=DeadLetterParameters,
    ),
    ApiRoute(
        "POST",
        RESUBMIT,
        Permission.DEAD_LETTERS_RESUBMIT,
        "store dead letters again once what refused them is fixed, each in its own transaction;"
        " one still refused is kept; a token for the whole tree only",
        answer=ResubmitAnswer,
        body=ResubmitRequest,
    ),
)


@refusals
async def list_dead_letters(request: web.Request) -> web.Response:
    require_whole_tree(request[PRINCIPAL], WHAT)
    only_parameters(request, {"reason", "device_id"})
    limit = limit_param(request)
    before = integer(request, "cursor")
    if before is not None and not 1 <= before <= MAX_ID:
        msg = "cursor must be a dead letter's id (the next_cursor of the previous page)"
        raise invalid_parameter(msg, parameter="cursor")
    reason = choice(request, "reason", REASONS)
    device_id = request.query.get("device_id")
    if device_id is not None and not DEVICE_ID.fullmatch(device_id):
        msg = f"{device_id!r} is not a device id"
        raise invalid_parameter(msg, parameter="device_id")
    rows = await newest(reason=reason, device_id=device_id, limit=limit + 1, before_id=before)
    page = rows[:limit]
    next_cursor = str(page[-1]["id"]) if len(rows) > limit else None
    return web.json_response({"items": page, "next_cursor": next_cursor})


def resubmit_handler(calendar: WorkingCalendar) -> Handler:
    @refusals
    async def resubmit_dead_letters(request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        require_whole_tree(principal, WHAT)
        if request.query:
            msg = "this route takes no query parameters: its selection is the body"
            raise invalid_parameter(msg, parameter=min(request.query))
        wanted, dry_run = resubmit_request(await json_object(request))
        letters = await select(wanted)
        missing = sorted(set(wanted.ids) - {letter.id for letter in letters})
        done = [
            {**asdict(one), "outcome": one.outcome.value}
            async for one in resubmit(letters, calendar, principal.actor, dry_run=dry_run)
        ]
        return web.json_response({"dry_run": dry_run, "resubmitted": done, "not_found": missing})

    return resubmit_dead_letters


def resubmit_request(body: Body) -> tuple[Selection, bool]:
    """The body's selection and whether it is a dry run; a 400 naming the field otherwise."""
    unknown = sorted(set(body) - RESUBMIT_FIELDS)
    if unknown:
        msg = f"unknown field(s) {', '.join(unknown)}"
        raise invalid_field(msg, field=unknown[0], **unknown_names(unknown, RESUBMIT_FIELDS))
    ids = body.get("ids", [])
    if not isinstance(ids, list) or len(ids) > MAX_LIMIT or not all(map(_is_id, ids)):
        msg = f"must be a list of up to {MAX_LIMIT} dead letters' ids"
        raise invalid_field(msg, field="ids")
    reason = body.get("reason")
    if reason is not None and not (isinstance(reason, str) and reason in REASONS):
        msg = f"must be one of {sorted(REASONS)}, or null"
        raise invalid_field(msg, field="reason", allowed=sorted(REASONS))
    device_id = body.get("device_id")
    if device_id is not None and not (
        isinstance(device_id, str) and DEVICE_ID.fullmatch(device_id)
    ):
        msg = "must be a device id, or null"
        raise invalid_field(msg, field="device_id")
    limit = body.get("limit", RESUBMIT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        msg = f"must be a whole number from 1 to {MAX_LIMIT}"
        raise invalid_field(msg, field="limit")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        msg = "must be true or false"
        raise invalid_field(msg, field="dry_run")
    selection = Selection(tuple(ids), reason, device_id, limit)
    return selection, dry_run


def handlers(calendar: WorkingCalendar) -> dict[str, Handler]:
    return {
        DEAD_LETTERS: by_method({"GET": list_dead_letters}),
        RESUBMIT: by_method({"POST": resubmit_handler(calendar)}),
    }


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
