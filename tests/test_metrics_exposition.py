"""``/metrics`` counts the fleet's gauges in a thread, from a snapshot of the fleet.

The same figures as counting on the spot; the event loop keeps its turns during the count; a
device that joins meanwhile waits for the next scrape instead of breaking this one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.fleet import DeviceState, FleetState
from control_plane.metrics import ControlPlaneMetrics
from edge.protocol import DeviceKind, PresenceState

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
DEVICES = 40_000


def fleet_of(count: int, prefix: str = "kiosk") -> FleetState:
    return FleetState(
        DeviceState(
            f"{prefix}-{n}",
            kind=DeviceKind.KIOSK,
            presence=PresenceState.ONLINE if n % 5 else PresenceState.OFFLINE,
            session=1,
            last_seen=NOW,
        )
        for n in range(count)
    )


def termfleet_samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name.startswith("termfleet_")
    }


def online(text: bytes) -> float:
    samples = termfleet_samples(text)
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "termfleet_devices" and ("presence", "online") in labels
    )


async def test_the_exposition_equals_counting_on_the_spot() -> None:
    fleet = fleet_of(1_000)
    metrics = ControlPlaneMetrics(fleet, lambda: NOW)
    exposed = await metrics.exposition()
    assert termfleet_samples(exposed) == termfleet_samples(generate_latest(metrics.registry))
    assert online(exposed) == 800


async def test_the_event_loop_keeps_turning_while_the_fleet_is_counted() -> None:
    fleet = fleet_of(DEVICES)
    metrics = ControlPlaneMetrics(fleet, lambda: NOW)
    ticks = 0
    scraping = True

    async def ticker() -> None:
        nonlocal ticks
        while scraping:
            ticks += 1
            # A device joins mid-scrape: a new key in the live table the thread must not see.
            fleet.put(
                DeviceState(
                    f"late-{ticks}",
                    kind=DeviceKind.KIOSK,
                    presence=PresenceState.ONLINE,
                    session=1,
                    last_seen=NOW,
                )
            )
            await asyncio.sleep(0)

    running = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    exposed = await metrics.exposition()
    scraping = False
    await running
    # Counted on the loop, the ticker would not run at all until the count was over.
    assert ticks > 1, ticks
    assert online(exposed) == DEVICES * 4 // 5 + 1  # the snapshot: one late device at most
    assert online(await metrics.exposition()) == DEVICES * 4 // 5 + ticks


async def test_scrapes_take_turns() -> None:
    metrics = ControlPlaneMetrics(fleet_of(5_000), lambda: NOW)
    first, second = await asyncio.gather(metrics.exposition(), metrics.exposition())
    assert termfleet_samples(first) == termfleet_samples(second)
    assert online(first) == 4_000
