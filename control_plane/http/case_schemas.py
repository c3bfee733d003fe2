"""The shapes of the cases API (``http/cases.py``), for its OpenAPI document.

The limits are ``review_cases``' own constants; the handler checks every value itself and names
the field in its refusals, these structs only describe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from control_plane import review_cases

from .request_schemas import DeviceId, SiteCode, WindowNumber, exactly
from .schemas import Schema

CaseNumber = Annotated[
    str,
    msgspec.Meta(
        pattern=exactly(review_cases.CASE_NUMBER),
        description="办件编号, the case number of the window's business system",
    ),
]
CaseStatus = Literal["awaiting_rating", "rated", "defaulted", "overdue"]


def _text(field: str, description: str, *, required: bool = False) -> msgspec.Meta:
    limit = review_cases.MAX_TEXT[field]
    minimum = 1 if required else None
    return msgspec.Meta(min_length=minimum, max_length=limit, description=description)


class NewCase(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A case that ended at a window; its pad named by ``device_id``, or ``site`` and ``window``."""

    case_number: CaseNumber
    item_code: Annotated[str, _text("item_code", "the service item's code", required=True)]
    device_id: Annotated[DeviceId | None, msgspec.Meta(description="the review pad")] = None
    site: Annotated[SiteCode | None, msgspec.Meta(description="with `window`: its pad")] = None
    window: Annotated[WindowNumber | None, msgspec.Meta(description="a window of `site`")] = None
    item_name: Annotated[str, _text("item_name", "the item's name, shown on the pad")] = ""
    staff_id: Annotated[str, _text("staff_id", "the member of staff who handled it")] = ""
    department: Annotated[str, _text("department", "the unit that handled it")] = ""
    ended_at: Annotated[
        Annotated[datetime, msgspec.Meta(tz=True)] | None,
        msgspec.Meta(
            description="when the case ended, RFC 3339 with an offset [now]; at most the rating"
            " period ago, at most five minutes ahead"
        ),
    ] = None


class CaseRecorded(Schema):
    """The case as recorded; ``notified``: its notice has gone to the broker already."""

    case_number: str
    device_id: str
    site: str | None
    window: str
    ended_at: datetime
    rate_by: Annotated[
        datetime, msgspec.Meta(description="unrated by then, it counts as 基本满意 (basic)")
    ]
    notified: bool


class CaseReview(Schema):
    """The case's rating: a terminal's (``source`` terminal) or the default one."""

    rating: str
    source: Annotated[str, msgspec.Meta(description="`terminal`, or `default` (基本满意)")]
    rated_at: datetime
    voided: Annotated[bool, msgspec.Meta(description="an appeal against it was upheld")]


class CaseView(Schema):
    """A case with its pad, rating period, notice and rating."""

    case_number: str
    device_id: str
    site: str | None
    window: str
    item_code: str
    item_name: str
    department: str
    staff_id: str
    ended_at: datetime
    rate_by: datetime
    notified_at: Annotated[
        datetime | None, msgspec.Meta(description="when the notice went to the broker")
    ]
    defaulted_at: Annotated[
        datetime | None, msgspec.Meta(description="when the default review was recorded")
    ]
    status: Annotated[
        CaseStatus,
        msgspec.Meta(
            description="awaiting_rating; rated (by the pad); defaulted (基本满意, not rated in"
            " time); overdue (the period is over, the default is recorded within a minute)"
        ),
    ]
    review: CaseReview | None
