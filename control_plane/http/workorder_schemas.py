"""The shapes of the work-orders API, for its OpenAPI document (``workorder_views`` makes them).

The handlers check every value themselves and name the parameter or field in their 400s; these
structs only describe, with the state machine's own enums and limits.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec

from control_plane import workorder_store
from control_plane.reviews.workorders import MAX_NOTE_CHARS, Action, ActorRole, CallOutcome, State

from .request_schemas import Paged, Parameters, SiteCode, text
from .schemas import Cursor, Schema

MAX_DEPARTMENT_LENGTH = 64
"""As the work order's department column."""

WorkOrderId = Annotated[
    int, msgspec.Meta(ge=1, le=workorder_store.MAX_ORDER_ID, description="a work order's id")
]
Department = Annotated[
    str, text(MAX_DEPARTMENT_LENGTH, "the department (institution) code of the rated case")
]
Day = Annotated[date, msgspec.Meta(description="a local day (Asia/Shanghai), YYYY-MM-DD")]


# --- what the routes take -----------------------------------------------------------------------


class WorkOrderParameters(Paged):
    state: Annotated[
        list[State], msgspec.Meta(description="only orders in these states; repeat or join by ,")
    ] = msgspec.field(default_factory=list)
    site: SiteCode | None = None
    department: Department | None = None
    open: Annotated[
        bool | None, msgspec.Meta(description="true: not yet final; false: closed or upheld")
    ] = None
    overdue: Annotated[
        bool | None, msgspec.Meta(description="past the due date, or fixing past the fix-by date")
    ] = None


class SummaryParameters(Parameters):
    site: SiteCode | None = None
    department: Department | None = None
    since: Annotated[Day | None, msgspec.Meta(description="opened on or after this day")] = None
    until: Annotated[Day | None, msgspec.Meta(description="opened on or before this day")] = None


class TransitionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One action on the order; the token is the actor and the server's clock the time."""

    action: Annotated[
        Action,
        msgspec.Meta(
            description="the unit's (call_back, verify, fix_now, set_deadline, mark_fixed,"
            " explain, give_feedback, appeal) need workorders.handle; the supervisor's (approve,"
            " send_back, uphold_appeal, reject_appeal) workorders.review"
        ),
    ]
    note: Annotated[
        str, msgspec.Meta(max_length=MAX_NOTE_CHARS, description="what was done; not blank")
    ]
    outcome: Annotated[
        CallOutcome | None, msgspec.Meta(description="call_back only, and required there")
    ] = None
    fix_by: Annotated[
        Day | None, msgspec.Meta(description="set_deadline only, and required there")
    ] = None


# --- what they answer ---------------------------------------------------------------------------


class WorkOrderItem(Schema):
    """A bad review's work order, as listings show it."""

    id: int
    case_number: Annotated[str, msgspec.Meta(description="办件编号 of the rated case")]
    site: Annotated[str | None, msgspec.Meta(description="the site's code; null: none known")]
    department: str
    window: str
    staff: str
    rating: Annotated[str, msgspec.Meta(description="dissatisfied or very_dissatisfied")]
    state: State
    open: Annotated[bool, msgspec.Meta(description="not yet final (办结 or 申诉成立)")]
    overdue: Annotated[bool, msgspec.Meta(description="as of the server's local today")]
    opened_at: datetime
    due: Annotated[date, msgspec.Meta(description="the local day it must be closed by")]
    due_provisional: Annotated[
        bool, msgspec.Meta(description="counted without the year's holiday calendar")
    ]
    deadline_working_days: int
    fix_by: Annotated[date | None, msgspec.Meta(description="the 限期整改 date, once set")]
    appealed_from: Annotated[State | None, msgspec.Meta(description="while appealed")]
    voided: Annotated[bool, msgspec.Meta(description="the rating is voided (申诉成立)")]
    closed_at: Annotated[datetime | None, msgspec.Meta(description="when it became final")]
    updated_at: datetime


class WorkOrderPage(Schema):
    items: list[WorkOrderItem]
    next_cursor: Cursor


class ReviewOfOrder(Schema):
    """The rating the order follows up."""

    case_number: str
    rating: str
    indicators: Annotated[dict[str, str], msgspec.Meta(description="overall, efficiency, …")]
    comment: str
    item_code: str
    item_name: Annotated[str, msgspec.Meta(description="from the case notice; empty if unknown")]
    channel: str
    department: str
    window: str
    staff: str
    source: Annotated[str, msgspec.Meta(description="terminal, or default (not rated in time)")]
    rated_at: datetime
    voided_at: Annotated[datetime | None, msgspec.Meta(description="set by an upheld appeal")]


class TransitionView(Schema):
    """One accepted action: who, in what role, when, from which state to which, and why."""

    action: Action
    from_state: State
    to_state: State
    actor: str
    role: ActorRole
    at: datetime
    note: str
    outcome: CallOutcome | None
    fix_by: date | None


class WorkOrderDetail(WorkOrderItem):
    """An order with its review, its whole history and what the token may do with it now."""

    review: ReviewOfOrder
    history: list[TransitionView]
    allowed_actions: Annotated[
        list[Action],
        msgspec.Meta(description="the actions this token's permissions allow in this state"),
    ]
    called_back: Annotated[bool, msgspec.Meta(description="counts as called back for 回访率")]
    unreached_calls: int
    remedy: Annotated[
        Action | None, msgspec.Meta(description="fix_now, set_deadline or explain, last chosen")
    ]


class WorkOrderSummary(Schema):
    """Figures of the orders in scope opened in the period (all of them without one)."""

    today: Annotated[date, msgspec.Meta(description="the local day overdue is judged on")]
    site: str | None
    department: str | None
    since: date | None
    until: date | None
    total: int
    by_state: Annotated[dict[str, int], msgspec.Meta(description="every state, zeros included")]
    open: int
    overdue: int
    callback_counted: Annotated[
        int, msgspec.Meta(description="orders the call-back rate counts: all but voided ones")
    ]
    called_back: int
    callback_rate: Annotated[
        float | None,
        msgspec.Meta(description="回访率: called_back / callback_counted; null when none counted"),
    ]
    closed: Annotated[int, msgspec.Meta(description="final: closed (办结) or appeal upheld")]
    closed_within_deadline: Annotated[
        int, msgspec.Meta(description="final on or before the due day")
    ]
