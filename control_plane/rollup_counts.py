"""What a record counts for in the statistics, and the counting of records into roll-ups. Pure.

A stored record (``record`` table) is counted once, into the roll-up row of its hour, site,
department and service item, and into the same key's rows of its local day and month:

- a usage ``transaction`` by its outcome; a completed one is a self-service case;
- a ``review`` by its rating level; one rated anywhere but at a kiosk is a window case (a
  case handled at a service window and rated on its pad, as the 好差评 board counts 办件量),
  so a kiosk's rating of its own transaction is not counted twice;
- a ``print`` job's pages (or a failure), an ``id_card_read`` (and whether it failed), a
  ``call_for_help`` press: these name no item, so their rows have an empty department and item;
- session starts and ends, device events and unknown usage types count for nothing.

The hour of a record is its device time (a backlog delivered late still counts when it
happened), unless the device's clock cannot be right: after its receipt, or more than
``MAX_LATENESS`` before it; then its receive time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from edge.protocol import (
    CallForHelp,
    Channel,
    IdCardRead,
    IdCardResult,
    PayloadError,
    PrintJob,
    Rating,
    Review,
    ReviewChannel,
    Transaction,
    TransactionOutcome,
    decode,
)

MAX_LATENESS = timedelta(days=30)
"""A record whose device time is older than this at receipt is counted when it was received:
an agent keeps records through days offline, a clock set to 1970 is a flat RTC battery."""
KEY_LENGTH = 64
"""Department and item codes are cut to the roll-up columns' width."""


@dataclass(slots=True)
class Counts:
    """The counters of one roll-up row, or of a sum of rows."""

    window_cases: int = 0
    transactions_completed: int = 0
    transactions_failed: int = 0
    transactions_abandoned: int = 0
    transactions_unknown: int = 0
    pages_printed: int = 0
    print_failures: int = 0
    id_card_reads: int = 0
    id_card_failures: int = 0
    help_calls: int = 0
    reviews_very_satisfied: int = 0
    reviews_satisfied: int = 0
    reviews_basic: int = 0
    reviews_dissatisfied: int = 0
    reviews_very_dissatisfied: int = 0
    reviews_unknown: int = 0

    def add(self, other: Counts) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def values(self) -> tuple[int, ...]:
        """The counters in the order of ``COUNTERS`` (the roll-up tables' columns)."""
        return tuple(getattr(self, name) for name in COUNTERS)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Counts:
        """Counts from a database row that names the counters (missing ones and NULLs: 0)."""
        return cls(**{name: int(row.get(name) or 0) for name in COUNTERS})

    @property
    def self_service_cases(self) -> int:
        return self.transactions_completed

    @property
    def cases(self) -> int:
        """Handled cases (办件量): rated window cases and completed self-service transactions."""
        return self.window_cases + self.transactions_completed

    @property
    def reviews(self) -> int:
        return (
            self.reviews_very_satisfied
            + self.reviews_satisfied
            + self.reviews_basic
            + self.reviews_dissatisfied
            + self.reviews_very_dissatisfied
            + self.reviews_unknown
        )

    @property
    def bad_reviews(self) -> int:
        """差评: 不满意 and 非常不满意."""
        return self.reviews_dissatisfied + self.reviews_very_dissatisfied

    @property
    def satisfaction_rate(self) -> float | None:
        """Share of the rated cases rated 基本满意 or better; None when none was rated."""
        rated = self.reviews - self.reviews_unknown
        if rated == 0:
            return None
        satisfied = self.reviews_very_satisfied + self.reviews_satisfied + self.reviews_basic
        return satisfied / rated


COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(Counts))
RATINGS: tuple[Rating, ...] = (
    Rating.VERY_SATISFIED,
    Rating.SATISFIED,
    Rating.BASIC,
    Rating.DISSATISFIED,
    Rating.VERY_DISSATISFIED,
)
"""The five 好差评 levels, best first."""
_OUTCOMES = {outcome: f"transactions_{outcome.value}" for outcome in TransactionOutcome}
_RATINGS = {rating: f"reviews_{rating.value}" for rating in Rating}


class StoredRow(NamedTuple):
    """A row of the ``record`` table, as the roll-up reads it."""

    id: int
    device_id: str
    channel: str
    device_time: datetime | None
    received_at: datetime
    payload: str


class HourKey(NamedTuple):
    hour: datetime
    site_id: int
    department: str
    item_code: str


class DayKey(NamedTuple):
    day: date
    site_id: int
    department: str
    item_code: str


class MonthKey(NamedTuple):
    month: date
    """The month's first day."""
    site_id: int
    department: str
    item_code: str


@dataclass
class Tally:
    """Counts per hourly, daily and monthly key, from a run of records."""

    hours: dict[HourKey, Counts] = field(default_factory=dict)
    days: dict[DayKey, Counts] = field(default_factory=dict)
    months: dict[MonthKey, Counts] = field(default_factory=dict)
    counted: int = 0
    """Records that count for something."""
    unreadable: int = 0
    """Records whose stored payload this build cannot decode any more."""


def record_hour(device_time: datetime | None, received_at: datetime) -> datetime:
    """The UTC hour a record counts in (the module's docstring says which time it takes)."""
    moment = received_at
    if device_time is not None and received_at - MAX_LATENESS <= device_time <= received_at:
        moment = device_time
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def local_day(hour: datetime, zone: ZoneInfo) -> date:
    """The calendar day in ``zone`` an hour falls in."""
    return hour.astimezone(zone).date()


class Counted(NamedTuple):
    """What one record counts for: its department and item, and the counters it adds to."""

    department: str
    item_code: str
    bumps: tuple[tuple[str, int], ...]


def counters_of(channel: str, payload: str) -> Counted | None:
    """What a stored record counts for; None: nothing.

    Raises PayloadError for a payload this build cannot decode.
    """
    if channel not in {Channel.USAGE.value, Channel.REVIEW.value}:
        return None
    record = decode(Channel(channel), payload.encode())
    if isinstance(record, Transaction):
        return _counted(record.department, record.item_code, (_OUTCOMES[record.outcome], 1))
    if isinstance(record, Review):
        rating = (_RATINGS[record.rating], 1)
        if record.channel is ReviewChannel.KIOSK:
            return _counted(record.institution, record.item_code, rating)
        return _counted(record.institution, record.item_code, rating, ("window_cases", 1))
    return _device_use(record)


def _device_use(record: object) -> Counted | None:
    """Prints, ID-card reads and help calls: counted per site and hour, without an item."""
    match record:
        case PrintJob(ok=True):
            return _counted("", "", ("pages_printed", record.pages))
        case PrintJob():
            return _counted("", "", ("print_failures", 1))
        case IdCardRead():
            failed = int(record.result is not IdCardResult.OK)
            return _counted("", "", ("id_card_reads", 1), ("id_card_failures", failed))
        case CallForHelp():
            return _counted("", "", ("help_calls", 1))
    return None


def _counted(department: str, item: str, *bumps: tuple[str, int]) -> Counted:
    return Counted(department[:KEY_LENGTH], item[:KEY_LENGTH], bumps)


def tally(
    rows: Iterable[StoredRow],
    site_of: Mapping[str, int | None],
    zone: ZoneInfo,
    *,
    since: datetime | None = None,
) -> Tally:
    """Count ``rows`` by key; ``site_of`` maps device ids to sites (missing, None: site 0).

    With ``since``, only records whose hour is at or after it count (a re-roll's records).
    """
    result = Tally()
    for row in rows:
        hour = record_hour(row.device_time, row.received_at)
        if since is not None and hour < since:
            continue
        try:
            found = counters_of(row.channel, row.payload)
        except PayloadError:
            result.unreadable += 1
            continue
        if found is None:
            continue
        site_id = site_of.get(row.device_id) or 0
        department, item = found.department, found.item_code
        day = local_day(hour, zone)
        keyed = (
            result.hours.setdefault(HourKey(hour, site_id, department, item), Counts()),
            result.days.setdefault(DayKey(day, site_id, department, item), Counts()),
            result.months.setdefault(
                MonthKey(day.replace(day=1), site_id, department, item), Counts()
            ),
        )
        for name, amount in found.bumps:
            for counts in keyed:
                setattr(counts, name, getattr(counts, name) + amount)
        result.counted += 1
    return result
