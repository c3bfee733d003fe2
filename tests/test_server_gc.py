"""The control plane leaves what its startup made out of later garbage collections.

A full collection walked every module, ORM class and loaded device, stopping the event loop for
~74 ms with 200 devices while the ingest took 10,000 records/s: the p99 of publish→commit was
that pause (bench/ingest.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from control_plane.services.broker import BrokerSettings
from tests.support.control_plane import running_control_plane

FROZEN_AT_LEAST = 50_000
"""Objects of a started control plane (modules, tortoise's models, aiohttp's app): far more."""


@pytest.fixture
def unfrozen_after() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run collects as before


@pytest.mark.usefixtures("unfrozen_after")
async def test_startup_objects_are_frozen_and_a_full_collection_skips_them(
    broker: BrokerSettings, database_url: str
) -> None:
    assert gc.get_freeze_count() == 0
    async with running_control_plane(broker, database_url, freeze_after_start=True):
        frozen = gc.get_freeze_count()
        assert frozen >= FROZEN_AT_LEAST
        # What a full collection walks now: what was made since, a small share of it.
        left = len(gc.get_objects(generation=2))
        assert left < frozen / 10, (left, frozen)


async def test_in_process_control_planes_do_not_freeze_the_test_process(
    broker: BrokerSettings, database_url: str
) -> None:
    before = gc.get_freeze_count()
    async with running_control_plane(broker, database_url):
        assert gc.get_freeze_count() == before
