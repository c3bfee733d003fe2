"""好差评 reviews from a review pad (评价器) or a kiosk, and the case notice that prompts one."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from .common import OpenEnum, Payload, Record, Timestamp


class Rating(OpenEnum):
    """The five national 好差评 levels. 不满意 and 非常不满意 are bad reviews (差评)."""

    VERY_SATISFIED = "very_satisfied"
    """非常满意."""
    SATISFIED = "satisfied"
    """满意."""
    BASIC = "basic"
    """基本满意; also the default for a case not rated in time (Guangdong: 7 natural days)."""
    DISSATISFIED = "dissatisfied"
    """不满意."""
    VERY_DISSATISFIED = "very_dissatisfied"
    """非常不满意."""
    UNKNOWN = "unknown"


class ReviewChannel(OpenEnum):
    WINDOW_PAD = "window_pad"
    KIOSK = "kiosk"
    STATION = "station"
    ONLINE = "online"
    SMS = "sms"
    UNKNOWN = "unknown"


class Indicators(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Optional offline indicators, each rated on the same five levels."""

    overall: Rating | None = None
    efficiency: Rating | None = None
    service_level: Rating | None = None
    attitude: Rating | None = None


class Review(Record, frozen=True, kw_only=True):
    """One rating of one handled case (办件). The citizen's identity never appears in clear.

    ``prev_hash``/``hash`` chain the pad's local log (``hash`` is the sha256 of this record's
    canonical form, which holds ``prev_hash``; edge.protocol.review_chain) so that the control
    plane can tell a tampered log from a whole one.
    """

    case_number: Annotated[str, msgspec.Meta(max_length=64)] = ""
    """办件编号 from the window's business system."""
    item_code: Annotated[str, msgspec.Meta(max_length=64)] = ""
    channel: ReviewChannel = ReviewChannel.WINDOW_PAD
    rating: Rating = Rating.UNKNOWN
    indicators: Indicators | None = None
    comment: str = ""
    institution: str = ""
    window: Annotated[str, msgspec.Meta(max_length=16)] = ""
    staff_id: Annotated[str, msgspec.Meta(max_length=64)] = ""
    citizen_ref: Annotated[str, msgspec.Meta(max_length=128)] = ""
    """Keyed hash of the citizen's identity, or empty; never the ID number."""
    prev_hash: str = ""
    hash: str = ""

    required: ClassVar[tuple[str, ...]] = ("seq", "case_number", "rating")


class CaseNotice(Payload, frozen=True, kw_only=True):
    """Downlink to a review pad: a case at this window has ended, prompt the citizen to rate it."""

    case_number: str = ""
    item_code: str = ""
    item_name: str = ""
    staff_id: str = ""
    window: str = ""
    institution: str = ""
    """The department (or unit) that handled the case, echoed in the review."""
    ended_at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("case_number",)
