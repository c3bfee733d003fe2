"""Device states written in batches (control_plane/state_writes.py) on both databases.

What a batch writes reads back as the state it was given, through the same loader the fleet is
rebuilt from at start; each device's latest state is written once; a failed write waits for
the next round without losing a newer state; a stop writes what is left.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from control_plane import registry, state_writes
from control_plane.db import database
from control_plane.db.inventory_models import AgentInventory, PeripheralInventory
from control_plane.db.models import Device
from control_plane.device_inventory import AGENT_VERSION_MAX
from control_plane.fleet import DeviceState
from control_plane.state_writes import StateWriter
from edge.protocol import (
    DeviceKind,
    Heartbeat,
    Network,
    NetworkType,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    PresenceState,
)

T0 = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
PRINTER = PeripheralStatus(
    name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK
)


def state(device_id: str, **changes: object) -> DeviceState:
    base = DeviceState(
        device_id,
        kind=DeviceKind.KIOSK,
        presence=PresenceState.ONLINE,
        session=4,
        agent_version="1.2.0",
        last_seen=T0,
        health=Heartbeat(
            session=4,
            seq=9,
            at=T0,
            full=True,
            cpu_percent=12.5,
            network=Network(type=NetworkType.CELLULAR_4G, signal_dbm=-71),
            peripherals=(PRINTER,),
        ),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[None]:
    async with database(database_url):
        yield


async def stored() -> dict[str, DeviceState]:
    return {s.device_id: s for s in await registry.load_states()}


def same(a: DeviceState, b: DeviceState) -> bool:
    keys = ("device_id", "kind", "presence", "session", "agent_version", "last_seen", "health")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


@pytest.mark.usefixtures("db")
async def test_a_batch_reads_back_as_the_states_it_was_given() -> None:
    for n in range(3):
        await registry.save_state(state(f"k-{n}", presence=PresenceState.OFFLINE, health=None))
    writer = StateWriter()
    later = T0 + timedelta(seconds=30)
    updates = [state(f"k-{n}", last_seen=later, session=5 + n) for n in range(3)]
    for s in updates:
        writer.put(s, save=False)
    writer.put(state("new-1"), save=True)  # not in the database yet
    assert await writer.flush() == 4
    assert writer.waiting == 0
    rows = await stored()
    for s in [*updates, state("new-1")]:
        assert same(rows[s.device_id], s), (rows[s.device_id], s)


@pytest.mark.usefixtures("db")
async def test_saves_of_many_devices_make_and_update_rows_and_inventory_in_chunks() -> None:
    """More devices than a transaction takes, half stored before, one with a peripheral gone."""
    count = registry.SAVE_CHUNK + 7
    for n in range(0, count, 2):
        await registry.save_state(state(f"k-{n:04}", presence=PresenceState.OFFLINE))
    reader = PeripheralStatus(
        name="idreader0", kind=PeripheralKind.ID_CARD_READER, state=PeripheralState.OK
    )
    later = T0 + timedelta(minutes=5)
    saved = [
        state(f"k-{n:04}", session=6, last_seen=later, agent_version="1.3.0",
              health=Heartbeat(session=6, seq=1, full=True, peripherals=(reader,)))
        for n in range(count)
    ]  # fmt: skip
    writer = StateWriter()
    for s in saved:
        writer.put(s, save=True)
    assert await writer.flush() == count
    rows = await stored()
    assert all(same(rows[s.device_id], s) for s in saved)
    names = await PeripheralInventory.all().values_list("device_id", "name")
    assert sorted(names) == [(s.device_id, "idreader0") for s in saved]  # printer0 gone
    agents = await AgentInventory.filter(agent_version="1.3.0").count()
    assert agents == count


@pytest.mark.usefixtures("db")
async def test_text_longer_than_its_column_is_cut_not_refused() -> None:
    """PostgreSQL refuses a value longer than its column: one such device would fail the batch."""
    long_version = "9." * 60
    writer = StateWriter()
    writer.put(state("k-1", agent_version=long_version), save=True)
    writer.put(state("k-2"), save=True)
    assert await writer.flush() == 2
    writer.put(state("k-2", agent_version=long_version, session=5), save=False)
    assert await writer.flush() == 1
    rows = await stored()
    assert rows["k-1"].agent_version == long_version[:AGENT_VERSION_MAX]
    assert rows["k-2"].agent_version == long_version[:AGENT_VERSION_MAX]
    assert rows["k-2"].session == 5


@pytest.mark.usefixtures("db")
async def test_an_unknown_kind_leaves_the_stored_one_and_a_missing_row_is_not_made() -> None:
    await registry.save_state(state("k-1"))
    writer = StateWriter()
    writer.put(state("k-1", kind=DeviceKind.UNKNOWN, presence=PresenceState.OFFLINE), save=False)
    writer.put(state("ghost"), save=False)
    await writer.flush()
    rows = await stored()
    assert rows["k-1"].kind is DeviceKind.KIOSK
    assert rows["k-1"].presence is PresenceState.OFFLINE
    assert "ghost" not in rows  # an update only: new devices come with save=True


@pytest.mark.usefixtures("db")
async def test_the_latest_state_of_a_device_is_written_once_and_a_save_is_not_lost() -> None:
    await registry.save_state(state("k-1"))
    writes: list[tuple[str, bool]] = []
    real_write = state_writes._write  # noqa: SLF001

    async def counting(batch: list[state_writes._Pending]) -> None:
        writes.extend((p.state.device_id, p.save) for p in batch)
        await real_write(batch)

    writer = StateWriter()
    writer.put(state("k-1", session=6, agent_version="1.3.0"), save=True)
    writer.put(state("k-1", session=7, agent_version="1.3.0"), save=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_writes, "_write", counting)
        await writer.flush()
    assert writes == [("k-1", True)]  # the newer state, still through save_state
    assert (await stored())["k-1"].session == 7
    assert (await Device.get(device_id="k-1")).agent_version == "1.3.0"


@pytest.mark.usefixtures("db")
async def test_a_failed_write_waits_for_the_next_round_and_a_newer_state_wins() -> None:
    await registry.save_state(state("k-1"))
    writer = StateWriter()
    writer.put(state("k-1", session=6), save=False)
    writer.put(state("new-1"), save=True)

    async def failing(_batch: object) -> None:
        writer.put(state("k-1", session=8), save=False)  # arrives while the write fails
        raise OSError("disk full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_writes, "_write", failing)
        with pytest.raises(OSError, match="disk full"):
            await writer.flush()
    assert writer.waiting == 2
    assert await writer.flush() == 2
    rows = await stored()
    assert rows["k-1"].session == 8
    assert same(rows["new-1"], state("new-1"))


@pytest.mark.usefixtures("db")
async def test_the_writer_task_writes_each_interval_keeps_going_after_a_failure_and_at_its_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await registry.save_state(state("k-1"))
    failed_rounds: list[int] = []
    writer = StateWriter(interval_s=0.05, on_failure=lambda: failed_rounds.append(1))
    real_write = state_writes._write  # noqa: SLF001
    failures = [OSError("database away")]

    async def flaky(batch: list[state_writes._Pending]) -> None:
        if failures:
            raise failures.pop()
        await real_write(batch)

    monkeypatch.setattr(state_writes, "_write", flaky)
    task = asyncio.create_task(writer.run())
    writer.put(state("k-1", session=9), save=False)
    for _ in range(100):
        await asyncio.sleep(0.05)
        if writer.waiting == 0:
            break
    assert not failures, "the first write must have failed"
    assert failed_rounds == [1]
    assert (await stored())["k-1"].session == 9
    # Stopped with a state still waiting: it is written on the way out.
    monkeypatch.setattr(writer, "_interval_s", 3600)
    await asyncio.sleep(0.1)  # the task is asleep for an hour now
    writer.put(state("k-1", session=10), save=False)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await stored())["k-1"].session == 10
