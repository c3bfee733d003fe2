"""Recording a case (办件) the window's business system says has ended, for its pad to prompt.

The business system names the pad by ``device_id``, or by site code and window number: then the
one review pad (评价器) placed at that window is meant. A case is stored once with the end of its
rating period, ``rate_by`` (``ended_at`` plus the site's ``rate_within_days``, Guangdong: 7
natural days); ``case_notices`` tells the pad, ``review_defaults`` records 基本满意 for a case
still unrated then.

Business systems retry: the same case sent again with the same details is the same case (no
error, nothing changes), with other details a 409 ``case_exists``. Refusals name the field and
carry a code of their own (docs/cases.md lists them). Cases are business data arriving all day,
not administration, so they are not audited; the case row itself is the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from edge.protocol.common import ID_PATTERN
from edge.protocol.presence import DeviceKind

from .admin_errors import ConflictError, InvalidFieldError, NotFoundError
from .auth import PermissionDeniedError, Principal, Refusal
from .db.models import Device, ServiceWindow, Site
from .db.review_models import ReviewCase, ReviewRow
from .inventory import NUMBER as WINDOW_NUMBER
from .lifecycle import Lifecycle
from .review_policy import policy_for_site
from .scope_lookup import could_be, placement_site

MAX_CASE_NUMBER = 64
CASE_NUMBER = re.compile(r"[^\s/\\?#%\x00-\x1f\x7f]{1,64}")
"""No space, control character, slash, ``?``, ``#`` or ``%``: a case number is shown on a pad
and named in a URL path as it is."""
DEVICE_ID = re.compile(ID_PATTERN)
MAX_TEXT = {"item_code": 64, "item_name": 255, "staff_id": 64, "department": 64}
"""The lengths of ``ReviewCase``'s columns, each a field of the request."""
FUTURE_SKEW = timedelta(minutes=5)
"""How far in the future ``ended_at`` may lie: the business system's clock may run ahead."""
REVIEW_PAD = DeviceKind.REVIEW_PAD.value

# Codes of the refusals, stable for business systems' scripts (docs/cases.md).
UNKNOWN_SITE = "unknown_site"
UNKNOWN_WINDOW = "unknown_window"
UNKNOWN_DEVICE = "unknown_device"
NO_REVIEW_PAD = "no_review_pad"
SEVERAL_REVIEW_PADS = "several_review_pads"
NOT_A_REVIEW_PAD = "not_a_review_pad"
DEVICE_RETIRED = "device_retired"
PAD_NOT_PLACED = "pad_not_placed"
CASE_EXISTS = "case_exists"
ENDED_IN_FUTURE = "ended_in_future"
RATING_PERIOD_OVER = "rating_period_over"


@dataclass(frozen=True, slots=True)
class CaseRequest:
    """What the business system says: the case, its pad (a device, or a site's window), details.

    ``ended_at`` None: the case ends now.
    """

    case_number: str
    item_code: str
    device_id: str | None = None
    site: str | None = None
    window: str | None = None
    item_name: str = ""
    staff_id: str = ""
    department: str = ""
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    case: ReviewCase
    site_code: str | None
    created: bool
    """False for a repeat of a case recorded before with the same details."""


@dataclass(frozen=True, slots=True)
class CaseState:
    """A case with where it was handled and its review (a terminal's, or the default), if any."""

    case: ReviewCase
    site_code: str | None
    review: ReviewRow | None


@dataclass(frozen=True, slots=True)
class _Pad:
    device_id: str
    site: Site
    window: ServiceWindow


def refused(*, field: str, problem: str, code: str) -> InvalidFieldError:
    """A 400 naming ``field`` with a code of its own (the API answers with ``code``)."""
    error = InvalidFieldError(field, problem)
    error.code = code
    return error


# --- pure checks ---------------------------------------------------------------------------------


def check_request(request: CaseRequest) -> None:
    """Refuse a request whose fields could not make a case, before any lookup. Pure."""
    if not CASE_NUMBER.fullmatch(request.case_number):
        problem = (
            f"1 to {MAX_CASE_NUMBER} characters without spaces, control characters, / \\ ? # or"
            f" %, not {request.case_number[:80]!r}"
        )
        raise InvalidFieldError(field="case_number", problem=problem)
    if not request.item_code:
        raise InvalidFieldError(field="item_code", problem="required: the service item's code")
    for field, limit in MAX_TEXT.items():
        if len(getattr(request, field)) > limit:
            raise InvalidFieldError(field, f"at most {limit} characters")
    by_place = request.site is not None or request.window is not None
    if request.device_id is not None and by_place:
        problem = "name the pad by device_id or by site and window, not both"
        raise InvalidFieldError(field="device_id", problem=problem)
    if request.device_id is None and (request.site is None or request.window is None):
        missing = "window" if request.site is not None else "site"
        problem = "name the pad by device_id, or by site and window"
        raise InvalidFieldError(field=missing if by_place else "device_id", problem=problem)
    if request.ended_at is not None and request.ended_at.utcoffset() is None:
        problem = "needs a time zone offset (RFC 3339), such as +08:00"
        raise InvalidFieldError(field="ended_at", problem=problem)


def rate_by(ended_at: datetime, now: datetime, rate_within_days: int) -> datetime:
    """The end of the case's rating period, or the refusal of an ``ended_at`` out of bounds. Pure.

    Natural days: the period ends at the same time of day ``rate_within_days`` days later.
    """
    if ended_at > now + FUTURE_SKEW:
        problem = f"{ended_at.isoformat()} lies in the future (now: {now.isoformat()})"
        raise refused(field="ended_at", problem=problem, code=ENDED_IN_FUTURE)
    end = ended_at + timedelta(days=rate_within_days)
    if end <= now:
        problem = (
            f"the case ended more than {rate_within_days} days ago, its rating period is over:"
            " it counts as 基本满意 (basic) without a notice"
        )
        raise refused(field="ended_at", problem=problem, code=RATING_PERIOD_OVER)
    return end


def repeats(case: ReviewCase, request: CaseRequest, site_code: str | None) -> bool:
    """Whether ``request`` says again what recorded ``case``: a retry, not another case. Pure.

    A retry that leaves ``ended_at`` out repeats whatever time the first call was given.
    """
    if request.device_id is not None and request.device_id != case.device_id:
        return False
    if request.site is not None and (request.site, request.window) != (
        site_code,
        case.window_number,
    ):
        return False
    if request.ended_at is not None and request.ended_at != case.ended_at:
        return False
    asked = (request.item_code, request.item_name, request.staff_id, request.department)
    return asked == (case.item_code, case.item_name, case.staff_id, case.department)


# --- recording -----------------------------------------------------------------------------------


async def record_case(principal: Principal, request: CaseRequest, now: datetime) -> Recorded:
    """Store the case for its pad, or find the same case stored before; refuse anything else."""
    check_request(request)
    existing = await _repeat_of(principal, request)
    if existing is not None:
        return existing
    pad = await _pad(principal, request)
    policy = await policy_for_site(pad.site.id)
    ended_at = (request.ended_at or now).astimezone(UTC)
    case = ReviewCase(
        case_number=request.case_number,
        device_id=pad.device_id,
        site_id=pad.site.id,
        window_id=pad.window.id,
        window_number=pad.window.number,
        item_code=request.item_code,
        item_name=request.item_name,
        department=request.department,
        staff_id=request.staff_id,
        ended_at=ended_at,
        rate_by=rate_by(ended_at, now.astimezone(UTC), policy.rate_within_days),
    )
    try:
        await case.save(force_create=True)
    except IntegrityError:  # the same case number, recorded meanwhile by another request
        again = await _repeat_of(principal, request)
        if again is None:  # only if that case was deleted meanwhile
            raise
        return again
    return Recorded(case, pad.site.code, created=True)


async def _repeat_of(principal: Principal, request: CaseRequest) -> Recorded | None:
    """The case already stored under the number, if ``request`` repeats it; else a 409."""
    case = await ReviewCase.get_or_none(case_number=request.case_number)
    if case is None:
        return None
    site = await _site_of(case)
    # Outside the token's scope, the details are nobody's business: the number is taken.
    visible = principal.sees(site.node.path) if site is not None else principal.scope_path is None
    code = site.code if site is not None else None
    if visible and repeats(case, request, code):
        return Recorded(case, code, created=False)
    msg = f"case {request.case_number} was recorded before with other details"
    raise ConflictError(msg, CASE_EXISTS)


async def _site_of(case: ReviewCase) -> Site | None:
    if case.site_id is None:
        return None
    return await Site.get_or_none(id=case.site_id).select_related("node")


async def _pad(principal: Principal, request: CaseRequest) -> _Pad:
    if request.device_id is not None:
        return await _pad_by_id(principal, request.device_id)
    return await _pad_at_window(principal, request.site or "", request.window or "")


async def _pad_at_window(principal: Principal, site_code: str, number: str) -> _Pad:
    try:
        site, _node = await placement_site(principal, site_code, "site")
    except InvalidFieldError as exc:
        problem = exc.message.removeprefix("site: ")
        raise refused(field="site", problem=problem, code=UNKNOWN_SITE) from None
    window = None
    if could_be(WINDOW_NUMBER, number):
        window = await ServiceWindow.get_or_none(site_id=site.id, number=number)
    if window is None:
        problem = f"site {site.code} has no window {number!r}"
        raise refused(field="window", problem=problem, code=UNKNOWN_WINDOW)
    pads = sorted(
        await Device.filter(window_id=window.id, kind=REVIEW_PAD)
        .exclude(lifecycle=Lifecycle.RETIRED.value)
        .values_list("device_id", flat=True)
    )
    where = f"window {number} of site {site.code}"
    if not pads:
        msg = f"no review pad is placed at {where}: place one there, or name it by device_id"
        raise ConflictError(msg, NO_REVIEW_PAD)
    if len(pads) > 1:
        listed = ", ".join(map(str, pads))
        msg = f"{len(pads)} review pads are placed at {where} ({listed}): name one by device_id"
        raise ConflictError(msg, SEVERAL_REVIEW_PADS)
    return _Pad(str(pads[0]), site, window)


async def _pad_by_id(principal: Principal, device_id: str) -> _Pad:
    device = (
        await Device.get_or_none(device_id=device_id) if could_be(DEVICE_ID, device_id) else None
    )
    site = None
    if device is not None and device.site_id is not None:
        site = await Site.get_or_none(id=device.site_id).select_related("node")
    path = site.node.path if site is not None else None
    if device is None or not principal.sees(path):
        # As placing something at a code (scope_lookup): a scoped token does not learn whether
        # a device outside its scope exists.
        if principal.scope_path is not None:
            msg = f"device_id: {device_id!r} is no device within this token's scope"
            raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, f"{msg} ({principal.scope_code})")
        problem = f"no device has the id {device_id!r}"
        raise refused(field="device_id", problem=problem, code=UNKNOWN_DEVICE)
    if device.kind != REVIEW_PAD:
        problem = f"{device_id} is a {device.kind}, not a review pad (评价器)"
        raise refused(field="device_id", problem=problem, code=NOT_A_REVIEW_PAD)
    if device.lifecycle == Lifecycle.RETIRED.value:
        msg = f"review pad {device_id} is retired"
        raise ConflictError(msg, DEVICE_RETIRED)
    window = None
    if device.window_id is not None:
        window = await ServiceWindow.get_or_none(id=device.window_id)
    if site is None or window is None:
        msg = f"review pad {device_id} is placed at no window: place it at its window first"
        raise ConflictError(msg, PAD_NOT_PLACED)
    return _Pad(device_id, site, window)


# --- reading -------------------------------------------------------------------------------------


async def load_case(principal: Principal, case_number: str) -> CaseState:
    """A case in the token's scope with its review; outside it, as unknown (404)."""
    case = None
    if CASE_NUMBER.fullmatch(case_number):
        case = await ReviewCase.get_or_none(case_number=case_number)
    site = await _site_of(case) if case is not None else None
    path = site.node.path if site is not None else None
    if case is None or not principal.sees(path):
        msg = f"no case has the number {case_number!r}"
        raise NotFoundError(msg)
    review = await ReviewRow.get_or_none(case_number=case_number)
    return CaseState(case, site.code if site is not None else None, review)


async def is_notified(case_number: str) -> bool:
    """Whether the case's notice has gone out (it may have since the case was recorded)."""
    return await ReviewCase.filter(case_number=case_number, notified_at__not_isnull=True).exists()
