"""A control plane's ingest on a real database, fed review records by hand: no broker.

Messages go to ``Ingest.handle`` and are committed with ``flush``, as the ingest's loop does.
The seed district (tests/support/stats_fixture.py) places the review pads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from control_plane.db import database
from control_plane.fleet import FleetState
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from edge.mqtt import Incoming
from edge.protocol import Channel, Indicators, Rating, Record, Review, encode_records
from edge.protocol import topics as wire
from edge.protocol.review_chain import seal
from tests.support.stats_fixture import seed_inventory

# Monday 2026-11-23, 10:00 in Guangzhou: five working days on is Monday 2026-11-30.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


class Stand:
    def __init__(self, ingest: Ingest, metrics: ControlPlaneMetrics) -> None:
        self.ingest = ingest
        self.metrics = metrics
        self.registry: CollectorRegistry = metrics.registry
        self.now = NOW

    async def send(
        self, device_id: str, *records: Record, channel: Channel = Channel.REVIEW
    ) -> None:
        message = Incoming(wire.uplink(device_id, channel), encode_records(records), retain=False)
        await self.ingest.handle(message)
        await self.ingest.flush(None)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@asynccontextmanager
async def review_stand(database_url: str) -> AsyncIterator[Stand]:
    """The seed district's inventory and an ingest whose clock is ``Stand.now``."""
    async with database(database_url):
        await import_inventory(read_json(seed_inventory(), "seed.json"))
        fleet = FleetState()
        metrics = ControlPlaneMetrics(fleet)
        result = Stand(Ingest(fleet, metrics, clock=lambda: result.now), metrics)
        yield result


def rating(seq: int, case: str, level: Rating, *, at: datetime = NOW, prev: str = "") -> Review:
    return seal(
        Review(
            seq=seq,
            at=at,
            case_number=case,
            item_code="440117-GA-001",
            rating=level,
            indicators=Indicators(attitude=level),
            comment="等了很久" if level is Rating.DISSATISFIED else "",
            institution="GA",
            window="03",
            staff_id="S-17",
        ),
        prev,
    )
