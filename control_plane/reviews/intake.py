"""Which arrived ratings become a case's review and which are refused. Pure.

One rating per case (办件): the first to be stored is the case's review. A later rating of the
same case is refused as a ``duplicate``; one given after the case's rating period ended (its
``rate_by``: the default 基本满意 is, or will be, recorded instead) is refused as ``late``. A
record the broker or the agent delivers again (the same device and seq) is neither: it was
decided the first time, so it is skipped. See docs/reviews.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from edge.protocol.reviews import Rating, Review

BAD_RATINGS = frozenset({Rating.DISSATISFIED, Rating.VERY_DISSATISFIED})
"""差评: the ratings that open a work order."""


class RefusalReason(StrEnum):
    DUPLICATE = "duplicate"
    """The case already has a rating from a terminal."""
    LATE = "late"
    """Rated after the case's rating period: it counts as 基本满意 by default instead."""


@dataclass(frozen=True, slots=True)
class Arrived:
    """A review record as the ingest decoded it, with when it arrived."""

    device_id: str
    review: Review
    payload: str
    received_at: datetime

    @property
    def key(self) -> tuple[str, int]:
        return (self.device_id, self.review.seq)


@dataclass(frozen=True, slots=True)
class Stored:
    """A case's review already stored: from which record (None for a default) and its source."""

    record: tuple[str, int] | None
    source: str


@dataclass(frozen=True, slots=True)
class Refused:
    arrived: Arrived
    reason: RefusalReason


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: tuple[Arrived, ...]
    refused: tuple[Refused, ...]


def decide(
    arrived: Iterable[Arrived],
    stored: Mapping[str, Stored],
    already_refused: frozenset[tuple[str, int]],
    rate_by: Mapping[str, datetime],
) -> Decision:
    """Decide a batch: ``stored`` by case number, ``already_refused`` records, cases' ``rate_by``.

    Within a batch the rating given first (device time, then device and seq) wins a case;
    across batches the one stored first does, since it was acknowledged already.
    """
    taken = dict(stored)
    accepted: list[Arrived] = []
    refused: list[Refused] = []
    seen: set[tuple[str, int]] = set()
    for item in sorted(arrived, key=_order):
        if item.key in seen or item.key in already_refused:
            continue
        seen.add(item.key)
        case = item.review.case_number
        holder = taken.get(case)
        if holder is not None:
            if holder.record != item.key:
                refused.append(Refused(item, _refusal(holder)))
            continue
        deadline = rate_by.get(case)
        if deadline is not None and _rated_at(item) > deadline:
            refused.append(Refused(item, RefusalReason.LATE))
            continue
        taken[case] = Stored(item.key, "terminal")
        accepted.append(item)
    return Decision(tuple(accepted), tuple(refused))


def _refusal(holder: Stored) -> RefusalReason:
    return RefusalReason.LATE if holder.source == "default" else RefusalReason.DUPLICATE


def _rated_at(item: Arrived) -> datetime:
    """When the citizen rated: the device's time, else when it arrived (a pad without a clock)."""
    return item.review.at if item.review.at is not None else item.received_at


def _order(item: Arrived) -> tuple[datetime, str, int]:
    return (_rated_at(item), item.device_id, item.review.seq)
