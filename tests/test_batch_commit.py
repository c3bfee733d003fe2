"""The ingest's commit of a record batch, against a stand-in store: what counts as an error.

No broker, no database: the store refuses what a test says, and the database answers or not
as the test says (tests/test_ingest_records.py runs the same paths on both real databases).
A batch tried again in parts while the database answers leaves no ingest error behind; with
the database gone, the messages not acknowledged by then are the errors, each once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient

from control_plane import batch_commit
from control_plane.batch import RecordBatch
from control_plane.batch_commit import BatchCommitter
from control_plane.fleet import FleetState
from control_plane.metrics import ControlPlaneMetrics
from control_plane.records import Committed, RecordRow, RejectedRow
from control_plane.review_ingest import ReviewOutcome
from control_plane.reviews.working_days import load_calendar
from control_plane.usage_metrics import UsageCounter
from edge.mqtt import Incoming
from edge.protocol import Channel
from edge.protocol import topics as wire

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
REFUSED_SEQ = 7
UNCONVERTIBLE_SEQ = 11
"""A record whose value the driver cannot convert (OverflowError), as a year-1 time once was."""


class Store:
    """Commits what it is given, refuses a batch holding ``REFUSED_SEQ``, fails once gone."""

    def __init__(self) -> None:
        self.committed: list[int] = []
        self.dead: list[int | None] = []
        self.gone_after: int | None = None
        """Commits to succeed before the database goes away (None: never)."""
        self.unconvertible = False

    async def __call__(
        self,
        records: Sequence[RecordRow],
        rejected: Sequence[RejectedRow],
        then: Callable[[BaseDBAsyncClient], Awaitable[ReviewOutcome | None]],
    ) -> Committed[ReviewOutcome | None]:
        del then  # no reviews in these batches
        if self.gone_after is not None and self.gone_after <= 0:
            raise sqlite3.OperationalError("unable to open database file")
        if any(record.seq == REFUSED_SEQ for record in records):
            raise sqlite3.IntegrityError("refused")
        if self.unconvertible and any(record.seq == UNCONVERTIBLE_SEQ for record in records):
            raise OverflowError("date value out of range")
        if self.gone_after is not None:
            self.gone_after -= 1
        self.committed += [record.seq for record in records]
        self.dead += [dead.seq for dead in rejected]
        return Committed(records)

    async def answers(self) -> bool:
        return self.gone_after is None or self.gone_after > 0


def batch_of(messages: int) -> RecordBatch:
    """One record per message, seqs 1 to ``messages``, all from one kiosk."""
    batch = RecordBatch()
    topic = wire.uplink("kiosk-1", Channel.USAGE)
    for seq in range(1, messages + 1):
        incoming = Incoming(topic, b"{}", retain=False, qos=1, mid=seq)
        batch.add(incoming, [RecordRow("kiosk-1", seq, "usage", "print", NOW, NOW, "{}")])
    return batch


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    store = Store()
    monkeypatch.setattr(batch_commit, "database_answers", store.answers)
    return store


def committer(store: Store) -> tuple[BatchCommitter, ControlPlaneMetrics]:
    metrics = ControlPlaneMetrics(FleetState())
    usage = UsageCounter(metrics, FleetState())
    return BatchCommitter(metrics, usage, lambda: NOW, load_calendar(), store), metrics


def counted(metrics: ControlPlaneMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


async def test_a_refused_record_isolated_while_the_database_answers_is_no_error(
    store: Store,
) -> None:
    commit, metrics = committer(store)
    acks = await commit.commit(batch_of(16), None)  # one per part committed
    acked = sorted(seq for ack in acks for seq in ack.seqs)
    assert acked == [s for s in range(1, 17) if s != REFUSED_SEQ]
    assert [seq for ack in acks for seq in ack.rejected] == [REFUSED_SEQ]
    assert sorted(store.committed) == acked
    assert store.dead == [REFUSED_SEQ]
    # Before, every failed try counted its messages: 16 + 8 + 4 + 2 + 1 + 1 for one record.
    assert counted(metrics, "termfleet_ingest_errors_total") == 0
    assert counted(metrics, "termfleet_ingest_rejected_total", reason="unstorable") == 1


async def test_the_database_gone_midway_counts_what_stays_unacknowledged(store: Store) -> None:
    commit, metrics = committer(store)
    store.gone_after = 1  # the first half (seqs 1-8, holding the refused 7) is cut again ...
    with pytest.raises(sqlite3.OperationalError):
        await commit.commit(batch_of(16), None)
    # ... its first quarter (1-4) commits, then the database is gone: 12 messages unstored.
    assert store.committed == [1, 2, 3, 4]
    assert counted(metrics, "termfleet_ingest_errors_total") == 12


async def test_a_value_the_driver_cannot_convert_is_isolated_like_a_refusal(store: Store) -> None:
    """Not a database error, yet the record's own: the batch is cut down to it, the rest stored."""
    store.unconvertible = True
    commit, metrics = committer(store)
    acks = await commit.commit(batch_of(16), None)
    assert sorted(seq for ack in acks for seq in ack.rejected) == [REFUSED_SEQ, UNCONVERTIBLE_SEQ]
    assert sorted(store.committed) == [s for s in range(1, 17) if s not in {7, 11}]
    assert counted(metrics, "termfleet_ingest_rejected_total", reason="unstorable") == 2
    assert counted(metrics, "termfleet_ingest_errors_total") == 0
