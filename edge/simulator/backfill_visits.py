"""A backfilled visit's records, dated in the past, and the tally of what a backfill produced. Pure.

The records are the live simulator's (``VisitGenerator``), stamped with the device time they
would have had: a session's records a few seconds to minutes apart from its start, a pad's
rating when its case ends. A backfilled case number carries its day
(``<device>-<YYYYMMDD>-<n>``), as a business system's would, so that it never collides with a
live run's numbers or another day's.

``Produced`` counts the records as the statistics count them (``docs/statistics.md``): window
cases, transactions by outcome, pages printed, ID-card reads, help calls, by hall level,
department and service item, so a test can hold the control plane's figures against it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import msgspec

from edge.protocol import (
    CallForHelp,
    IdCardRead,
    IdCardResult,
    PrintJob,
    Rating,
    Record,
    Review,
    ReviewChannel,
    SessionEnded,
    SessionStarted,
    Transaction,
    TransactionOutcome,
)

from .activity import Visit

STEP_S: dict[type[Record], float] = {
    SessionStarted: 0.0,
    IdCardRead: 15.0,
    PrintJob: 20.0,
    CallForHelp: 10.0,
    SessionEnded: 10.0,
}
"""Seconds from a session's previous record to this one; a transaction takes its duration."""
RATED_AFTER_S = 30.0
"""A station PC's citizen rates the completed case this long after the last record."""
BAD_RATINGS = frozenset({Rating.DISSATISFIED, Rating.VERY_DISSATISFIED})


def case_number(device_id: str, when: date, n: int) -> str:
    """A backfilled case's 办件编号: the device, the day and its number that day."""
    return f"{device_id}-{when:%Y%m%d}-{n:04d}"


def dated_records(visit: Visit, start: datetime, case: str) -> list[Record]:
    """The visit's records with device times from ``start`` on; its rating as case ``case``."""
    records: list[Record] = []
    moment = start
    for record in visit.records:
        step = record.duration_s if isinstance(record, Transaction) else STEP_S.get(type(record))
        moment += timedelta(seconds=step or 0.0)
        records.append(msgspec.structs.replace(record, at=moment))
    if visit.rated is not None:
        rated_at = moment + timedelta(seconds=RATED_AFTER_S) if records else start
        review = visit.rated.review()
        records.append(msgspec.structs.replace(review, case_number=case, at=rated_at))
    return records


FIGURES = (
    "window_cases",
    "self_service_cases",
    "reviews",
    "bad_reviews",
    "transactions_completed",
    "transactions_failed",
    "transactions_abandoned",
    "pages_printed",
    "print_failures",
    "id_card_reads",
    "id_card_failures",
    "help_calls",
)


def _figures(record: Record) -> tuple[str, str, Counter[str]]:
    """(department, item, figures) of one record, as the statistics count it."""
    bumps: Counter[str] = Counter()
    match record:
        case Transaction():
            bumps[f"transactions_{record.outcome.value}"] += 1
            bumps["self_service_cases"] += record.outcome is TransactionOutcome.COMPLETED
            return record.department, record.item_code, bumps
        case Review():
            bumps["reviews"] += 1
            bumps["bad_reviews"] += record.rating in BAD_RATINGS
            bumps["window_cases"] += record.channel is not ReviewChannel.KIOSK
            return record.institution, record.item_code, bumps
        case PrintJob(ok=True):
            bumps["pages_printed"] += record.pages
        case PrintJob():
            bumps["print_failures"] += 1
        case IdCardRead():
            bumps["id_card_reads"] += 1
            bumps["id_card_failures"] += record.result is not IdCardResult.OK
        case CallForHelp():
            bumps["help_calls"] += 1
    return "", "", bumps


@dataclass
class Produced:
    """What a backfill wrote into the terminals' outboxes, counted as the statistics count it."""

    records: int = 0
    visits: int = 0
    by_level: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_department: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    by_item: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_kind: Counter[str] = field(default_factory=Counter)
    """Records by terminal kind."""

    def add(self, records: list[Record], level: str, kind: str) -> None:
        self.visits += 1
        self.records += len(records)
        self.by_kind[kind] += len(records)
        for record in records:
            department, item, bumps = _figures(record)
            self.by_level[level].update(bumps)
            if item:
                self.by_department[department].update(bumps)
                self.by_item[item].update(bumps)

    def total(self) -> Counter[str]:
        result: Counter[str] = Counter()
        for counts in self.by_level.values():
            result.update(counts)
        return result

    def as_json(self) -> dict[str, Any]:
        """Every figure, zeros included, by level, department and item, and the totals."""

        def full(counts: Counter[str]) -> dict[str, int]:
            return {name: counts[name] for name in FIGURES}

        def table(rows: defaultdict[str, Counter[str]]) -> dict[str, dict[str, int]]:
            return {key: full(rows[key]) for key in sorted(rows)}

        return {
            "records": self.records,
            "visits": self.visits,
            "records_by_kind": dict(sorted(self.by_kind.items())),
            "total": full(self.total()),
            "by_level": table(self.by_level),
            "by_department": table(self.by_department),
            "by_item": table(self.by_item),
        }
