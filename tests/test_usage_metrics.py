"""Usage counters and the publish→commit histogram, counted by the real ingest on a real database.

No broker: messages go to ``Ingest.handle`` and are committed with ``flush``, as the ingest's
loop does. Kiosks stand at the seed district's hall (district level) and a village hall; the
fleet state learns where, as the server's does, from the database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from control_plane import registry
from control_plane.db import database
from control_plane.db.models import Department
from control_plane.fleet import FleetState
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.latency_histogram import LatencyHistogram
from control_plane.metrics import ControlPlaneMetrics
from control_plane.records import RecordRow, record_type
from control_plane.server import refresh_placements
from control_plane.site_cache import SiteCache
from control_plane.usage_metrics import EVENTS, LEVELS, UsageTally, load_department_codes, tally
from edge.mqtt import Incoming
from edge.protocol import (
    CallForHelp,
    Channel,
    DeviceEvent,
    EventType,
    IdCardRead,
    PrintJob,
    Rating,
    Record,
    SessionStarted,
    Transaction,
    TransactionOutcome,
    UnknownUsage,
    encode_records,
)
from edge.protocol import topics as wire
from monitoring.metrics import MAX_DEPARTMENTS
from tests.support.review_stand import NOW, Stand, rating
from tests.support.stats_fixture import seed_inventory

KIOSKS = {"kiosk-hall": "s440117", "kiosk-v1": "s440117101001"}
DEPARTMENTS = ("GA", "RS", "SW")
"""公安 police, 人社 human resources and social security, 税务 tax."""


def inventory() -> str:
    seed = json.loads(seed_inventory())
    seed["departments"] = [{"code": code, "name": f"dept {code}"} for code in DEPARTMENTS]
    seed["devices"] += [
        {"device_id": kiosk, "kind": "kiosk", "site": site} for kiosk, site in KIOSKS.items()
    ]
    return json.dumps(seed)


@asynccontextmanager
async def usage_stand(database_url: str) -> AsyncIterator[Stand]:
    """The seed district with kiosks and departments, and an ingest placed as the server's."""
    async with database(database_url):
        await import_inventory(read_json(inventory(), "seed.json"))
        fleet = FleetState(await registry.load_states())
        await refresh_placements(fleet, SiteCache(fleet))
        metrics = ControlPlaneMetrics(fleet)
        result = Stand(Ingest(fleet, metrics, clock=lambda: result.now), metrics)
        await result.ingest.usage.departments.reload()
        yield result


@pytest.fixture
async def stand(database_url: str) -> AsyncIterator[Stand]:
    async with usage_stand(database_url) as result:
        yield result


def usage(device_id: str, *records: Record) -> Incoming:
    return Incoming(wire.uplink(device_id, Channel.USAGE), encode_records(records), retain=False)


async def one_batch(stand: Stand, *messages: Incoming) -> None:
    """Handle every message, then commit them all in one batch."""
    for message in messages:
        assert await stand.ingest.handle(message) is False  # waits for the commit
    await stand.ingest.flush(None)


def visit(first_seq: int) -> list[Record]:
    """A citizen's visit at a kiosk: two transactions, prints, an ID-card read."""
    at = NOW - timedelta(seconds=2)
    return [
        SessionStarted(seq=first_seq, at=at, session_id="s1"),
        IdCardRead(seq=first_seq + 1, at=at),
        Transaction(seq=first_seq + 2, at=at, department="GA", item_code="440117-GA-001"),
        Transaction(
            seq=first_seq + 3,
            at=at,
            department="RS",
            item_code="440117-RS-004",
            outcome=TransactionOutcome.FAILED,
        ),
        PrintJob(seq=first_seq + 4, at=at, pages=3),
        PrintJob(seq=first_seq + 5, at=at, pages=2, ok=False),  # a jam: nothing printed
    ]


async def test_a_batch_is_counted_by_department_outcome_event_and_hall_level(stand: Stand) -> None:
    await one_batch(
        stand,
        usage("kiosk-hall", *visit(1)),
        usage("kiosk-v1", *visit(1)),
        usage("kiosk-v1", CallForHelp(seq=7, at=NOW)),
    )
    for level in ("district", "village"):
        assert stand.metric("termfleet_transactions_total", department="GA", level=level) == 1
        assert stand.metric("termfleet_transactions_total", department="RS", level=level) == 1
        outcomes = "termfleet_transaction_outcomes_total"
        assert stand.metric(outcomes, outcome="completed", level=level) == 1
        assert stand.metric(outcomes, outcome="failed", level=level) == 1
        events = "termfleet_usage_events_total"
        assert stand.metric(events, event="session_started", level=level) == 1
        assert stand.metric(events, event="id_card_read", level=level) == 1
        assert stand.metric(events, event="print", level=level) == 2  # the jammed one too
        assert stand.metric("termfleet_printed_pages_total", level=level) == 3
    events = "termfleet_usage_events_total"
    assert stand.metric(events, event="call_for_help", level="village") == 1
    assert stand.metric(events, event="call_for_help", level="district") == 0
    assert stand.metric("termfleet_transactions_total", department="GA", level="town") == 0


async def test_a_redelivered_batch_counts_nothing_and_a_record_twice_counts_once(
    stand: Stand,
) -> None:
    await one_batch(stand, usage("kiosk-hall", *visit(1)))
    again = usage("kiosk-hall", *visit(1))
    await one_batch(stand, again, again)  # the broker redelivers, twice in one batch
    assert stand.metric("termfleet_transactions_total", department="GA", level="district") == 1
    assert stand.metric("termfleet_printed_pages_total", level="district") == 3
    assert stand.metric("termfleet_ingest_publish_to_commit_seconds_count") == 6
    # A message of old and new records: only the new ones count.
    await one_batch(stand, usage("kiosk-hall", *visit(1), *visit(7)[2:3]))
    assert stand.metric("termfleet_transactions_total", department="GA", level="district") == 2
    assert stand.metric("termfleet_ingest_publish_to_commit_seconds_count") == 7
    # Two copies of a new record in one batch, in two messages: stored once, counted once.
    fresh = usage("kiosk-hall", *visit(20)[2:3])
    await one_batch(stand, fresh, fresh)
    assert stand.metric("termfleet_transactions_total", department="GA", level="district") == 3
    assert stand.metric("termfleet_ingest_publish_to_commit_seconds_count") == 8


async def test_unknown_department_type_and_device_get_bounded_labels(stand: Stand) -> None:
    unknown_type = b'[{"v":1,"type":"queue_ticket","seq":3,"at":"2026-11-23T01:59:00Z"}]'
    await one_batch(
        stand,
        usage("kiosk-v1", Transaction(seq=1, department="ZZ-NOT-REGISTERED", item_code="x")),
        usage("kiosk-v1", Transaction(seq=2, department="", item_code="x")),
        Incoming(wire.uplink("kiosk-v1", Channel.USAGE), unknown_type, retain=False),
        usage("kiosk-nowhere", PrintJob(seq=1, pages=1)),  # not enrolled: no site known
    )
    transactions = "termfleet_transactions_total"
    assert stand.metric(transactions, department="other", level="village") == 2
    assert stand.metric("termfleet_usage_events_total", event="unknown", level="village") == 1
    assert stand.metric("termfleet_usage_events_total", event="print", level="none") == 1
    assert stand.metric("termfleet_printed_pages_total", level="none") == 1
    names = {
        sample.labels.get("department")
        for metric in stand.registry.collect()
        if metric.name == "termfleet_transactions"
        for sample in metric.samples
    }
    assert names == {"other"}


async def test_departments_named_are_the_first_max_departments_by_code(stand: Stand) -> None:
    await Department.bulk_create(
        [Department(code=f"D{n:03d}", name=f"d{n}") for n in range(MAX_DEPARTMENTS + 5)]
    )
    codes = await load_department_codes()
    assert len(codes) == MAX_DEPARTMENTS
    assert codes == sorted(codes)
    assert codes[0] == "D000"  # digits sort before the seed's letters
    departments = stand.ingest.usage.departments
    assert departments.label("GA") == "GA"  # until reloaded
    await departments.reload()
    assert departments.label("D000") == "D000"
    assert departments.label(codes[-1]) == codes[-1]
    assert departments.label(f"D{MAX_DEPARTMENTS:03d}") == "other"
    assert departments.label("GA") == "other"  # beyond the first MAX_DEPARTMENTS now


async def test_publish_to_commit_is_observed_per_record_clamped_at_zero(stand: Stand) -> None:
    await one_batch(
        stand,
        usage(
            "kiosk-hall",
            SessionStarted(seq=1, at=NOW - timedelta(seconds=2)),
            SessionStarted(seq=2, at=NOW - timedelta(hours=2)),  # replayed after an outage
            SessionStarted(seq=3, at=NOW + timedelta(minutes=5)),  # the device's clock ahead
            SessionStarted(seq=4),  # no device time: nothing to measure
        ),
        Incoming(
            wire.uplink("pad-v1", Channel.REVIEW),
            encode_records([rating(1, "C-1", Rating.SATISFIED, at=NOW - timedelta(seconds=30))]),
            retain=False,
        ),
        Incoming(
            wire.uplink("kiosk-v1", Channel.EVENT),
            encode_records(
                [
                    DeviceEvent(
                        seq=9, at=NOW - timedelta(milliseconds=40), type=EventType.AGENT_STARTED
                    )
                ]
            ),
            retain=False,
        ),
    )

    def bucket(le: str) -> float:
        return stand.metric("termfleet_ingest_publish_to_commit_seconds_bucket", le=le)

    assert stand.metric("termfleet_ingest_publish_to_commit_seconds_count") == 5
    assert stand.metric("termfleet_ingest_publish_to_commit_seconds_sum") == pytest.approx(
        2 + 7200 + 0 + 30 + 0.04
    )
    assert bucket("0.001") == 1  # the clock ahead, as 0
    assert bucket("0.05") == 2  # the event
    assert bucket("2.5") == 3
    assert bucket("30.0") == 4
    assert bucket("3600.0") == 4
    assert bucket("14400.0") == 5
    assert bucket("+Inf") == 5


async def test_every_outcome_event_and_level_exists_before_the_first_record(
    stand: Stand,
) -> None:
    for level in LEVELS:
        assert (
            stand.registry.get_sample_value("termfleet_printed_pages_total", {"level": level}) == 0
        )
        for outcome in TransactionOutcome:
            labels = {"outcome": outcome.value, "level": level}
            value = stand.registry.get_sample_value("termfleet_transaction_outcomes_total", labels)
            assert value == 0
        for event in (*EVENTS, "unknown"):
            labels = {"event": event, "level": level}
            assert stand.registry.get_sample_value("termfleet_usage_events_total", labels) == 0
    assert "transaction" not in EVENTS
    assert (
        stand.registry.get_sample_value(
            "termfleet_ingest_publish_to_commit_seconds_bucket", {"le": "+Inf"}
        )
        == 0
    )


def test_tally_sums_by_device_and_labels_once_per_device() -> None:
    def row(seq: int, record: Record, channel: Channel = Channel.USAGE) -> RecordRow:
        return RecordRow(
            "k1", seq, channel.value, record_type(record), record.at, NOW, "{}", record
        )

    rows = [
        row(1, Transaction(seq=1, at=NOW - timedelta(seconds=1), department="GA")),
        row(2, Transaction(seq=2, department="GA", outcome=TransactionOutcome.ABANDONED)),
        row(3, UnknownUsage(seq=3, original_type="queue_ticket")),
        row(4, PrintJob(seq=4, at=NOW + timedelta(seconds=9), pages=4)),
        row(5, rating(5, "C-9", Rating.BASIC, at=NOW - timedelta(seconds=3)), Channel.REVIEW),
    ]
    use = tally(rows, NOW, bounds=(0.5, 2.0))
    assert use.wait_buckets == [1, 1, 1]  # the print's device clock runs ahead: 0, in le=0.5
    assert use.wait_sum_s == 4.0
    asked: list[str] = []

    def level_of(device_id: str) -> str:
        asked.append(device_id)
        return "town"

    labelled = UsageTally.of(use, level_of, lambda code: f"<{code}>")
    assert labelled.transactions == {("<GA>", "town"): 2}
    assert labelled.outcomes == {("completed", "town"): 1, ("abandoned", "town"): 1}
    assert labelled.events == {("unknown", "town"): 1, ("print", "town"): 1}
    assert labelled.pages == {"town": 4}
    assert asked == ["k1"]  # once per device and batch, not per record


def test_the_histogram_refuses_counts_of_another_shape() -> None:
    histogram = LatencyHistogram(bounds=(1.0, 2.0))
    histogram.observe_all([0.5, 1.0, 1.5, 9.0])
    with pytest.raises(ValueError, match="2 bucket counts for a histogram of 3 buckets"):
        histogram.add([1, 1], 3.0)
    family = next(iter(histogram.collect()))
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets == {"1.0": 2, "2.0": 3, "+Inf": 4}
