"""The shapes of the 好差评 API (reviews, scores, policies), for its OpenAPI document.

The handlers check every value themselves (``http/reviews.py``, ``review_period``,
``review_policy_admin``) and name the parameter or field in their refusals; these structs only
describe. Names are prefixed (``Review…``, ``Score…``): the document has one namespace of
schemas for the whole API.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from control_plane.review_period import INSTANT_FORMS
from control_plane.review_policy import MAX_DEADLINE_WORKING_DAYS, MAX_RATE_WITHIN_DAYS
from control_plane.review_queries import MAX_CASE_NUMBER, Grouping
from control_plane.reviews.chain_check import ProblemKind
from control_plane.reviews.intake import RefusalReason
from edge.protocol.reviews import Rating

from .request_schemas import DepartmentCode, NodeCode, Paged, Parameters, SiteCode, one_of
from .schemas import Cursor, Schema

CaseNumber = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_CASE_NUMBER, description="a case number (办件编号)"),
]
Instant = Annotated[str, msgspec.Meta(description=INSTANT_FORMS)]
Month = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="a local month, YYYY-MM")
]
Source = Annotated[str, msgspec.Meta(pattern=one_of({"terminal", "default"}))]
Share = Annotated[float | None, msgspec.Meta(description="0 to 1; null when nothing was rated")]


# --- what the routes take -----------------------------------------------------------------------


class ReviewListParameters(Paged):
    site: Annotated[SiteCode | None, msgspec.Meta(description="one site's reviews")] = None
    node: Annotated[NodeCode | None, msgspec.Meta(description="the node's subtree")] = None
    department: DepartmentCode | None = None
    rating: Annotated[list[Rating], msgspec.Meta(description="any of these; repeatable")] = (
        msgspec.field(default_factory=list)
    )
    bad: Annotated[bool | None, msgspec.Meta(description="true: 差评 only; false: no 差评")] = None
    source: Annotated[
        Source | None, msgspec.Meta(description="terminal (rated) or default (not rated in time)")
    ] = None
    since: Annotated[
        Instant | None, msgspec.Meta(description=f"rated at or after: {INSTANT_FORMS}")
    ] = None
    until: Annotated[Instant | None, msgspec.Meta(description=f"rated before: {INSTANT_FORMS}")] = (
        None
    )


class ReviewRefusalParameters(Paged):
    reason: RefusalReason | None = None


class ReviewChainProblemParameters(Paged):
    kind: ProblemKind | None = None


class ScoreParameters(Parameters):
    by: Annotated[Grouping, msgspec.Meta(description="what the table ranks [site]")] = Grouping.SITE
    month: Annotated[Month | None, msgspec.Meta(description="[the current month]")] = None
    since: Annotated[
        Instant | None,
        msgspec.Meta(description=f"instead of month, from: {INSTANT_FORMS}"),
    ] = None
    until: Annotated[
        Instant | None,
        msgspec.Meta(description="instead of month, up to (excluded) [now]; needs since"),
    ] = None
    node: Annotated[
        NodeCode | None, msgspec.Meta(description="the node's subtree [the token's scope]")
    ] = None


class ReviewPolicyParameters(Paged):
    pass


class ReviewPolicyBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    deadline_working_days: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_DEADLINE_WORKING_DAYS,
            description="a bad review's work order is due this many working days after it opened",
        ),
    ]
    rate_within_days: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=MAX_RATE_WITHIN_DAYS,
            description="natural days to rate a case before it counts as 基本满意",
        ),
    ]


# --- what they answer ---------------------------------------------------------------------------


class ReviewView(Schema):
    """One review of one case; where the pad stood when it arrived (site, window)."""

    case_number: str
    rating: Rating
    bad: Annotated[bool, msgspec.Meta(description="差评: 不满意 or 非常不满意")]
    source: Annotated[str, msgspec.Meta(description="terminal, or default (基本满意, not rated)")]
    channel: str
    indicators: dict[str, str]
    comment: str
    item_code: str
    department: Annotated[str, msgspec.Meta(description="the institution the review names")]
    staff_id: str
    window_number: Annotated[str, msgspec.Meta(description="the window the review names")]
    site: Annotated[str | None, msgspec.Meta(description="the pad's site's code; null: none")]
    site_name: str | None
    window: Annotated[str | None, msgspec.Meta(description="the pad's window's number")]
    device_id: Annotated[str | None, msgspec.Meta(description="null for a default")]
    seq: int | None
    rated_at: str
    received_at: str
    voided_at: Annotated[
        str | None, msgspec.Meta(description="set when an appeal was upheld: it no longer scores")
    ]
    chain_checked: bool


class ReviewPage(Schema):
    items: list[ReviewView]
    next_cursor: Cursor


class ReviewWorkOrder(Schema):
    id: int
    state: str
    due: Annotated[str, msgspec.Meta(description="the local day it must be closed by")]
    due_provisional: bool
    closed_at: str | None


class ReviewDetail(ReviewView):
    work_order: Annotated[
        ReviewWorkOrder | None, msgspec.Meta(description="the work order a 差评 opened")
    ]


class ReviewRefusalView(Schema):
    id: int
    device_id: str
    seq: int
    case_number: str
    reason: RefusalReason
    rating: str
    received_at: str


class ReviewRefusalPage(Schema):
    items: list[ReviewRefusalView]
    next_cursor: Cursor


class ReviewChainProblemView(Schema):
    id: int
    device_id: str
    seq: int
    kind: str
    expected: str
    found: str
    found_at: str
    detail: dict[str, Any]


class ReviewChainProblemPage(Schema):
    items: list[ReviewChainProblemView]
    next_cursor: Cursor


class ScoreCounts(Schema):
    very_satisfied: int
    satisfied: int
    basic: int
    dissatisfied: int
    very_dissatisfied: int


class ScoreTotals(Schema):
    score: Annotated[
        float | None, msgspec.Meta(description="rounded half up to the rule's decimals")
    ]
    reviews: Annotated[int, msgspec.Meta(description="rated reviews that count")]
    bad: int
    satisfaction_rate: Share
    bad_rate: Share
    counts: ScoreCounts


class ScoreStanding(ScoreTotals):
    rank: Annotated[
        int | None, msgspec.Meta(description="1 is best, ties share; null: too few reviews")
    ]
    key: Annotated[str, msgspec.Meta(description="SITE/NUMBER, a site or department code, a level")]
    name: str


class ScoreRuleView(Schema):
    points: dict[str, float]
    min_reviews: int
    decimals: int


class ScoreTable(Schema):
    """A league table (排名): ranked, then unranked (too few reviews), then unrated."""

    by: Grouping
    node: Annotated[str | None, msgspec.Meta(description="the subtree; null: the whole tree")]
    month: str | None
    since: str
    until: str
    rule: ScoreRuleView
    items: list[ScoreStanding]
    overall: ScoreTotals
    unassigned: Annotated[
        int, msgspec.Meta(description="reviews in overall that belong to no line of the table")
    ]


class ReviewPolicyView(Schema):
    node: str
    node_name: str | None
    deadline_working_days: int
    rate_within_days: int
    within_scope: Annotated[
        bool, msgspec.Meta(description="false: a node above the token's scope, whose policy holds")
    ]
    updated_at: str
    updated_by: str


class ReviewPolicyPage(Schema):
    items: list[ReviewPolicyView]
    next_cursor: Cursor
