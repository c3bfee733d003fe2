"""The server's chores are started again when they fail; none stops the server.

``supervised`` alone with short pauses, then a real control plane whose roll-ups chore raises
every time: the ingest and the API go on, and the failures are counted for the alert.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter

from control_plane import rollups
from control_plane.chores import Pauses, supervised
from control_plane.services.broker import BrokerSettings
from tests.support.control_plane import running_control_plane

SHORT = Pauses(first_s=0.001, max_s=0.004, steady_s=60.0)


def counter() -> Counter:
    return Counter("chore_failures", "test", ("chore",), registry=CollectorRegistry())


async def test_a_failing_chore_is_counted_and_started_again_until_it_returns() -> None:
    failures, runs = counter(), list[int]()

    async def chore() -> None:
        runs.append(len(runs))
        if len(runs) < 4:
            raise KeyError("a row nothing foresaw")

    await asyncio.wait_for(supervised("rollups", chore, failures, pauses=SHORT), 5)
    assert len(runs) == 4
    assert failures.labels("rollups")._value.get() == 3  # noqa: SLF001 - the counter's value


async def test_the_pause_doubles_and_a_steady_run_starts_it_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    now = [0.0]
    ran_for = iter([1.0, 1.0, 1.0, 1.0, 120.0, 1.0])

    async def chore() -> None:
        now[0] += next(ran_for, 0.0)
        if len(slept) < 6:
            raise RuntimeError("a defect")

    pauses = Pauses(first_s=1.0, max_s=4.0, steady_s=60.0)
    await supervised("twin", chore, counter(), pauses=pauses, clock=lambda: now[0])
    # Doubling up to the cap; after a run of two minutes, from the first pause again.
    assert slept == [1.0, 2.0, 4.0, 4.0, 1.0, 2.0]


async def test_a_chore_failing_for_ever_stops_neither_the_ingest_nor_the_api(
    broker: BrokerSettings, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*_args: object, **_kwargs: object) -> None:
        raise ValueError("data nothing foresaw")

    monkeypatch.setattr(rollups, "keep_rolled_up", failing)
    async with running_control_plane(broker, sqlite_url) as cp:

        async def failed_twice() -> str | None:
            text = await cp.metrics()
            for line in text.splitlines():
                if line.startswith('termfleet_chore_failures_total{chore="rollups"}'):
                    return text if float(line.split()[-1]) >= 2 else None
            return None

        metrics = await cp.wait_for(failed_twice)
        assert 'termfleet_chore_failures_total{chore="rollups"}' in metrics
        # The server is up, its ingest connected, its API answering.
        assert (await cp.get_json("/healthz"))["mqtt_connected"]
        # (Other tests' retained presence on the shared broker may have made devices here.)
        assert isinstance((await cp.get_json("/api/v1/devices"))["items"], list)
