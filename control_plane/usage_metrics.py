"""Usage counters and publish→commit latency of the records a batch stored, counted after commit.

The ingest calls ``UsageCounter.count`` with the records its commit stored for the first time
(``records.Committed.new``): a record delivered again is in no commit's ``new``, so it is counted
once, like the reviews (``ReviewOutcome.count_into``). This runs for every record at up to
30,000 a second, so ``tally`` only sums a batch by device in plain dicts and bins its waits;
labels are looked up once per device and department (``UsageTally.of``), and each labelled
counter is touched once per batch.

Labels stay bounded: the hall ``level`` of the device's site from the fleet state in memory (no
query per record), the department of a transaction only among the first ``MAX_DEPARTMENTS``
registered codes (``other`` for the rest), usage types this build does not know as ``unknown``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from prometheus_client import Counter

from edge.protocol import PrintJob, Transaction, TransactionOutcome, UnknownUsage
from edge.protocol.usage import USAGE_TYPES
from monitoring import metrics as names

from .db.models import Department
from .jurisdiction import Level
from .latency_histogram import PUBLISH_TO_COMMIT_BUCKETS_S
from .site_labels import SiteLabels

if TYPE_CHECKING:
    from .fleet import DeviceState
    from .metrics import ControlPlaneMetrics
    from .records import RecordRow

K = TypeVar("K", bound=Hashable)
OTHER_DEPARTMENT = "other"
UNKNOWN_EVENT = "unknown"
_EVENT_OF: dict[type, str] = {
    cls: str(cls.__struct_config__.tag) for cls in USAGE_TYPES if cls is not Transaction
}
_EVENT_OF[UnknownUsage] = UNKNOWN_EVENT
EVENTS = tuple(event for event in _EVENT_OF.values() if event != UNKNOWN_EVENT)
"""The ``event`` label values, ``unknown`` apart: every usage record type but transactions."""
LEVELS = (*(level.value for level in Level), names.NONE)


class PlacedFleet(Protocol):
    """What of ``fleet.FleetState`` the counter needs: where a device stands, in memory."""

    def get(self, device_id: str) -> DeviceState | None: ...

    def site_labels(self, state: DeviceState) -> SiteLabels: ...


class DepartmentLabels:
    """The department codes ``TRANSACTIONS`` names one by one; every other code is ``other``."""

    def __init__(self, codes: Iterable[str] = ()) -> None:
        self._named = frozenset(codes)

    def label(self, code: str) -> str:
        return code if code in self._named else OTHER_DEPARTMENT

    async def reload(self) -> None:
        """Re-read the first ``MAX_DEPARTMENTS`` registered codes, in code order."""
        self._named = frozenset(await load_department_codes())


async def load_department_codes(limit: int = names.MAX_DEPARTMENTS) -> list[str]:
    """The first ``limit`` department codes of the database, in code order."""
    codes = await Department.all().order_by("code").limit(limit).values_list("code", flat=True)
    return [str(code) for code in codes]


@dataclass
class BatchUse:
    """One batch's stored records summed by device, before any label is looked up. Pure."""

    transactions: dict[tuple[str, str, TransactionOutcome], int] = field(default_factory=dict)
    """By (device, department code, outcome)."""
    events: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (device, event label)."""
    pages: dict[str, int] = field(default_factory=dict)
    """Pages of print jobs that succeeded (as the roll-ups count them), by device."""
    wait_buckets: list[int] = field(default_factory=list)
    """Stored records by publish→commit wait, per histogram bucket (not cumulative)."""
    wait_sum_s: float = 0.0


def tally(
    rows: Iterable[RecordRow],
    committed_at: datetime,
    bounds: Sequence[float] = PUBLISH_TO_COMMIT_BUCKETS_S,
) -> BatchUse:
    """Sum ``rows``, each stored by a commit at ``committed_at``: once per record, so lean."""
    use = BatchUse(wait_buckets=[0] * (len(bounds) + 1))
    transactions, events, pages, buckets = use.transactions, use.events, use.pages, use.wait_buckets
    waited = 0.0
    for row in rows:
        if row.device_time is not None:
            wait = (committed_at - row.device_time).total_seconds()
            # A device clock ahead of ours gives a negative wait: it waited at least 0.
            wait = max(0.0, wait)
            buckets[bisect_left(bounds, wait)] += 1
            waited += wait
        record = row.record
        if isinstance(record, Transaction):
            key = (row.device_id, record.department, record.outcome)
            transactions[key] = transactions.get(key, 0) + 1
            continue
        event = _EVENT_OF.get(record.__class__)
        if event is None:
            continue  # a review or a device event: timed, not usage
        pair = (row.device_id, event)
        events[pair] = events.get(pair, 0) + 1
        if isinstance(record, PrintJob) and record.ok:
            pages[row.device_id] = pages.get(row.device_id, 0) + record.pages
    use.wait_sum_s = waited
    return use


@dataclass
class UsageTally:
    """A batch's usage by the label values of each counter. Pure."""

    transactions: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (department label, level)."""
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (outcome, level)."""
    events: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (event, level)."""
    pages: dict[str, int] = field(default_factory=dict)
    """By level."""

    @classmethod
    def of(
        cls, use: BatchUse, level_of: Callable[[str], str], department_of: Callable[[str], str]
    ) -> UsageTally:
        """Label ``use``: once per device and department, not per record."""
        levels: dict[str, str] = {}

        def level(device_id: str) -> str:
            found = levels.get(device_id)
            if found is None:
                found = levels[device_id] = level_of(device_id)
            return found

        result = cls()
        for (device_id, department, outcome), n in use.transactions.items():
            _add(result.transactions, (department_of(department), level(device_id)), n)
            _add(result.outcomes, (outcome.value, level(device_id)), n)
        for (device_id, event), n in use.events.items():
            _add(result.events, (event, level(device_id)), n)
        for device_id, n in use.pages.items():
            _add(result.pages, level(device_id), n)
        return result


def _add(counts: dict[K, int], key: K, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


class UsageCounter:
    """Counts stored records into the usage counters and the latency histogram."""

    def __init__(self, metrics: ControlPlaneMetrics, fleet: PlacedFleet) -> None:
        self._metrics = metrics
        self._fleet = fleet
        self.departments = DepartmentLabels()
        """Refreshed by the server where it refreshes placements; empty until then."""
        self._transactions = _Children(metrics.transactions)
        self._outcomes = _Children(metrics.transaction_outcomes)
        self._events = _Children(metrics.usage_events)
        self._pages = _Children(metrics.printed_pages)
        # Every bounded combination exists from the start, so rate() works from the first scrape.
        for level in LEVELS:
            self._pages.inc((level,), 0)
            for outcome in TransactionOutcome:
                self._outcomes.inc((outcome.value, level), 0)
            for event in (*EVENTS, UNKNOWN_EVENT):
                self._events.inc((event, level), 0)

    def level_of(self, device_id: str) -> str:
        """The hall level of the device's site, ``none`` when unplaced or unknown."""
        state = self._fleet.get(device_id)
        return names.NONE if state is None else self._fleet.site_labels(state).level

    def count(self, stored: Iterable[RecordRow], committed_at: datetime) -> None:
        """Count records a commit at ``committed_at`` stored for the first time."""
        histogram = self._metrics.publish_to_commit_seconds
        use = tally(stored, committed_at, histogram.bounds)
        histogram.add(use.wait_buckets, use.wait_sum_s)
        labelled = UsageTally.of(use, self.level_of, self.departments.label)
        for key, n in labelled.transactions.items():
            self._transactions.inc(key, n)
        for key, n in labelled.outcomes.items():
            self._outcomes.inc(key, n)
        for key, n in labelled.events.items():
            self._events.inc(key, n)
        for level, n in labelled.pages.items():
            self._pages.inc((level,), n)


class _Children:
    """A counter's children by label values, each looked up once; as bounded as the labels.

    ``labels()`` takes a lock and checks its arguments on every call.
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[tuple[str, ...], Counter] = {}

    def inc(self, labels: tuple[str, ...], n: int) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._counter.labels(*labels)
        child.inc(n)
