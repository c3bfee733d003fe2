"""/api/v1/reviews, /api/v1/scores and /api/v1/review-policies: 好差评 read, ranked and ruled.

A token reads the reviews of the sites in its scope (those of pads placed nowhere only with a
token for the whole tree); refused ratings and chain problems by the device's site. A case
outside the scope is a 404 worded like a missing one. Filters that name a node or a site take
only those in the scope (``scope_lookup``: a 404 otherwise, as the sites listing does). The
league table ranks the scope (or ``?node=``'s subtree) over a local month by the rule the server
was given. Policies: a node in the scope, set whole with PUT; a value out of range is a 422
naming the field. docs/reviews.md describes the routes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, tzinfo
from functools import partial

from aiohttp import web

from control_plane import review_policy_admin, review_queries, review_scores
from control_plane.admin_errors import NotFoundError
from control_plane.auth import Permission, Principal
from control_plane.paging import page_of
from control_plane.review_period import Period, PeriodError, between, current_month, instant
from control_plane.review_period import month_period as parse_month
from control_plane.review_views import (
    chain_problem_view,
    refusal_view,
    review_view,
    work_order_view,
)
from control_plane.reviews.chain_check import ProblemKind
from control_plane.reviews.intake import RefusalReason
from control_plane.reviews.scores import DEFAULT_RULE, ScoreRule
from control_plane.rollup_settings import RollupSettings
from control_plane.scope_lookup import visible_node, visible_site
from edge.protocol.reviews import Rating

from . import review_schemas as shapes
from .admin import (
    Handler,
    by_method,
    cursor_after,
    flag,
    json_object,
    no_content,
    only_parameters,
    page_response,
    refusals,
    text_parameter,
)
from .auth import PRINCIPAL, ApiRoute
from .errors import ApiError, invalid_parameter, unknown_names
from .openapi import CheckedBody
from .params import choice, limit_param

REVIEWS = "/api/v1/reviews"
REFUSALS = "/api/v1/reviews/refusals"
CHAIN_PROBLEMS = "/api/v1/reviews/chain-problems"
REVIEW = "/api/v1/reviews/{case_number}"
SCORES = "/api/v1/scores"
POLICIES = "/api/v1/review-policies"
POLICY = "/api/v1/review-policies/{node_code}"

REVIEW_FILTERS = frozenset(
    {"site", "node", "department", "rating", "bad", "source", "since", "until"}
)
SCORE_PARAMETERS = frozenset({"by", "month", "since", "until", "node"})
SOURCES = frozenset({"terminal", "default"})
RATINGS = frozenset(rating.value for rating in Rating)
OUT_OF_RANGE = "out_of_range"

# Fixed paths before /reviews/{case_number}: aiohttp tries a path's literal resource first
# anyway, but the order states that "refusals" is never read as a case number.
ROUTES = (
    ApiRoute(
        "GET",
        REVIEWS,
        Permission.REVIEWS_READ,
        "好差评 reviews in the token's scope, newest first: `?site=`, `?node=`, `?department=`,"
        " `?rating=` (repeatable), `?bad=`, `?source=`, `?since=`, `?until=`",
        answer=shapes.ReviewPage,
        query=shapes.ReviewListParameters,
    ),
    ApiRoute(
        "GET",
        REFUSALS,
        Permission.REVIEWS_READ,
        "refused ratings (a case rated twice, or after its default) of the scope's devices,"
        " newest first: `?reason=`",
        answer=shapes.ReviewRefusalPage,
        query=shapes.ReviewRefusalParameters,
    ),
    ApiRoute(
        "GET",
        CHAIN_PROBLEMS,
        Permission.REVIEWS_READ,
        "breaks in the scope's review pads' hash chains, newest first: `?kind=`",
        answer=shapes.ReviewChainProblemPage,
        query=shapes.ReviewChainProblemParameters,
    ),
    ApiRoute(
        "GET",
        REVIEW,
        Permission.REVIEWS_READ,
        "the review of one case, with the work order a 差评 opened",
        answer=shapes.ReviewDetail,
    ),
    ApiRoute(
        "GET",
        SCORES,
        Permission.REVIEWS_READ,
        "the league table (排名) of windows, sites, departments or hall levels over a month, with"
        " 10-point scores, 满意率 and 差评率, and the whole scope's score",
        answer=shapes.ScoreTable,
        query=shapes.ScoreParameters,
    ),
    ApiRoute(
        "GET",
        POLICIES,
        Permission.REVIEWS_READ,
        "the review policies of the scope's nodes and of the nodes above it, by node code",
        answer=shapes.ReviewPolicyPage,
        query=shapes.ReviewPolicyParameters,
    ),
    ApiRoute(
        "PUT",
        POLICY,
        Permission.REVIEWS_WRITE,
        "set a node's review policy: work-order deadline in working days, days to rate a case",
        answer=shapes.ReviewPolicyView,
        body=CheckedBody(
            shapes.ReviewPolicyBody,
            refused="`out_of_range`: a value outside its range; `details.field` names it",
        ),
        conflict="the policy was set by another request at the same moment; try again",
    ),
    ApiRoute(
        "DELETE",
        POLICY,
        Permission.REVIEWS_WRITE,
        "remove a node's review policy: its subtree follows the nearest node above with one",
        status=204,
    ),
)


def handlers(
    clock: Callable[[], datetime], rule: ScoreRule = DEFAULT_RULE, zone: tzinfo | None = None
) -> dict[str, Handler]:
    """The handlers of ``ROUTES`` by path; ``rule`` scores, months and days are in ``zone``.

    ``zone`` defaults to the statistics' (``TERMFLEET_STATS_TIMEZONE``, Asia/Shanghai).
    """
    local = zone or RollupSettings.from_env().zone
    return {
        REVIEWS: refusals(partial(list_reviews, local)),
        REFUSALS: refusals(list_refusals),
        CHAIN_PROBLEMS: refusals(list_chain_problems),
        REVIEW: refusals(show_review),
        SCORES: refusals(partial(scores, clock, rule, local)),
        POLICIES: refusals(list_policies),
        POLICY: refusals(
            by_method({"PUT": partial(set_policy, clock), "DELETE": partial(unset_policy, clock)})
        ),
    }


# --- reviews ------------------------------------------------------------------------------------


async def list_reviews(zone: tzinfo, request: web.Request) -> web.Response:
    only_parameters(request, REVIEW_FILTERS)
    limit = limit_param(request)
    principal = request[PRINCIPAL]
    filters = await _filters(request, principal, zone)
    after = _review_cursor(request)
    rows = await review_queries.reviews_page(
        filters, principal.scope_path, after=after, limit=limit
    )
    places = await review_queries.places_of(rows[:limit])
    page = page_of(rows, limit, review_queries.review_key, lambda row: review_view(row, places))
    return page_response(page)


async def _filters(
    request: web.Request, principal: Principal, zone: tzinfo
) -> review_queries.ReviewFilters:
    query = request.query
    site = (await visible_site(principal, query["site"]))[0] if "site" in query else None
    node = await visible_node(principal, query["node"]) if "node" in query else None
    ratings = frozenset(query.getall("rating", ()))
    if strange := sorted(ratings - RATINGS):
        msg = f"rating must be one of {sorted(RATINGS)}, not {strange[0]!r}"
        raise invalid_parameter(msg, parameter="rating", allowed=sorted(RATINGS))
    return review_queries.ReviewFilters(
        site_id=None if site is None else site.id,
        node_path=None if node is None else node.path,
        department=text_parameter(request, "department", review_queries.MAX_DEPARTMENT),
        ratings=ratings,
        bad=flag(request, "bad"),
        source=choice(request, "source", SOURCES),
        since=_instant(request, "since", zone),
        until=_instant(request, "until", zone),
    )


def _instant(request: web.Request, name: str, zone: tzinfo) -> datetime | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return instant(text, name, zone)
    except PeriodError as exc:
        raise invalid_parameter(exc.message, parameter=exc.parameter) from None


def _review_cursor(request: web.Request) -> tuple[datetime, int] | None:
    text = cursor_after(request, str)
    if text is None:
        return None
    after = review_queries.parse_review_key(text)
    if after is None:
        msg = "cursor: not a cursor of this listing (pass the next_cursor of the previous page)"
        raise invalid_parameter(msg, parameter="cursor")
    return after


async def show_review(request: web.Request) -> web.Response:
    _takes(request, ())
    case_number = request.match_info["case_number"]
    row = await review_queries.review_by_case(case_number, request[PRINCIPAL].scope_path)
    if row is None:
        msg = f"no review of case {case_number!r}"
        raise NotFoundError(msg)
    places = await review_queries.places_of([row])
    order = await review_queries.work_order_of(row.id)
    return web.json_response({**review_view(row, places), "work_order": work_order_view(order)})


async def list_refusals(request: web.Request) -> web.Response:
    only_parameters(request, {"reason"})
    limit = limit_param(request)
    reason = choice(request, "reason", {reason.value for reason in RefusalReason})
    rows = await review_queries.refusals_page(
        request[PRINCIPAL].scope_path, reason=reason, after=cursor_after(request, int), limit=limit
    )
    return page_response(page_of(rows, limit, lambda row: row.id, refusal_view))


async def list_chain_problems(request: web.Request) -> web.Response:
    only_parameters(request, {"kind"})
    limit = limit_param(request)
    kind = choice(request, "kind", {kind.value for kind in ProblemKind})
    rows = await review_queries.chain_problems_page(
        request[PRINCIPAL].scope_path, kind=kind, after=cursor_after(request, int), limit=limit
    )
    return page_response(page_of(rows, limit, lambda row: row.id, chain_problem_view))


# --- scores -------------------------------------------------------------------------------------


async def scores(
    clock: Callable[[], datetime], rule: ScoreRule, zone: tzinfo, request: web.Request
) -> web.Response:
    _takes(request, SCORE_PARAMETERS)
    by = choice(request, "by", {grouping.value for grouping in review_queries.Grouping})
    period = _period(request, clock(), zone)
    principal = request[PRINCIPAL]
    code = request.query.get("node")
    if code is None:
        path, code = principal.scope_path, principal.scope_code
    else:
        path = (await visible_node(principal, code)).path
    grouping = review_queries.Grouping(by or review_queries.Grouping.SITE)
    body = await review_scores.scores(grouping, period, path, rule)
    return web.json_response({**body, "node": code})


def _period(request: web.Request, now: datetime, zone: tzinfo) -> Period:
    """``month``, or ``since`` (with ``until``, else up to now); the current month without."""
    query = request.query
    since, until = _instant(request, "since", zone), _instant(request, "until", zone)
    try:
        if "month" in query:
            if since is not None or until is not None:
                msg = "month: give a month, or since and until, not both"
                raise invalid_parameter(msg, parameter="month")
            return parse_month(query["month"], zone)
        if since is not None:
            return between(since, until or now)
        if until is not None:
            msg = "until: give since too (or a month)"
            raise invalid_parameter(msg, parameter="since")
        return current_month(now, zone)
    except PeriodError as exc:
        raise invalid_parameter(exc.message, parameter=exc.parameter) from None


# --- policies -----------------------------------------------------------------------------------


async def list_policies(request: web.Request) -> web.Response:
    only_parameters(request, ())
    page = await review_policy_admin.list_policies(
        request[PRINCIPAL], after=cursor_after(request, str), limit=limit_param(request)
    )
    return page_response(page)


async def set_policy(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _takes(request, ())
    body = await json_object(request)
    try:
        view = await review_policy_admin.set_policy(
            request[PRINCIPAL], request.match_info["node_code"], body, now=clock()
        )
    except review_policy_admin.PolicyValueError as exc:
        raise ApiError(422, OUT_OF_RANGE, exc.message, details={"field": exc.field}) from None
    return web.json_response(view)


async def unset_policy(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _takes(request, ())
    await review_policy_admin.delete_policy(
        request[PRINCIPAL], request.match_info["node_code"], now=clock()
    )
    return no_content()


def _takes(request: web.Request, names: Collection[str]) -> None:
    """Refuse a query parameter the route does not take (it is no listing: no limit, cursor)."""
    if unknown := sorted(set(request.query) - set(names)):
        msg = f"unknown parameter(s) {', '.join(unknown)}; this route takes {sorted(names)}"
        raise invalid_parameter(msg, parameter=unknown[0], **unknown_names(unknown, names))
