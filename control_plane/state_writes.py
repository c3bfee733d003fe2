"""Device state to the database in batches, off the ingest's path.

Every terminal sends a heartbeat every 30 s: a province's 50,000 send 1,700 a second, and all
of them come back at once after a broker restart. Written one transaction each (a row lock,
an UPDATE, the inventory diff, a commit: 7-11 ms of CPU), the control plane handled about 40
a second and fell behind (bench/connections.py): presence waited behind queued heartbeats and
the fleet went "silent". So the ingest changes its fleet state in memory at once and hands the
new state here; a task writes what piled up every ``WRITE_INTERVAL_S``, each device's latest
state once:

- a device whose inventory (agent, OS, hardware, peripherals) changed, or that the database
  may not hold yet, through ``registry.save_states`` (its row, made if missing, and its
  inventory rows: a few statements for each 500 devices);
- every other one in a single UPDATE for the whole batch, in one transaction
  (``device_rows``: PostgreSQL gets the columns as arrays, SQLite ``executemany``).

A failed write keeps its states for the next round (a newer state of the same device replaces
the older one meanwhile). A stop writes what is left; a kill loses at most one interval of
state, which the devices' retained presence and next heartbeat restore.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from tortoise.transactions import in_transaction

from edge.protocol import Heartbeat

from . import device_rows, registry
from .fleet import DeviceState

log = logging.getLogger(__name__)

WRITE_INTERVAL_S = 0.5
"""How long a state change may wait for the next batch: well under a heartbeat interval."""
LAST_SEEN_PERSIST_S = 60.0
"""last_seen and the volatile readings change with every heartbeat; the database gets them at
most this often per device (the fleet state in memory, which the API reads, has them at once)."""

VOLATILE_HEALTH = frozenset(
    {"uptime_s", "cpu_percent", "memory_percent", "disk_percent", "temperature_c", "network",
     "outbox_backlog"}
)  # fmt: skip
"""Readings that differ at nearly every heartbeat: written with last_seen, not on their own."""
INVENTORY_HEALTH = ("os", "hardware_model", "peripherals")
"""What of a heartbeat the inventory tables hold (``device_inventory.inventory_of``)."""
_TRACKED_HEALTH = tuple(
    f.name
    for f in msgspec.structs.fields(Heartbeat)
    if f.name not in VOLATILE_HEALTH | set(INVENTORY_HEALTH) | {"v", "session", "seq", "at", "full"}
)


class Write(enum.Enum):
    UPDATE = "update"
    """The device's row, in the batch's one statement."""
    SAVE = "save"
    """The row (made if missing) and the inventory rows, through ``registry.save_states``."""


def write_needed(
    before: DeviceState | None, after: DeviceState, persisted_at: datetime | None, now: datetime
) -> Write | None:
    """What ``after`` needs written, given the state it replaces and when last_seen was written.

    ``before`` None: the fleet state does not know the device, so the database may not either.
    """
    if before is None or _inventory(before) != _inventory(after):
        return Write.SAVE
    tracked = (before.presence, before.session, before.kind, before.agent_version)
    if tracked != (after.presence, after.session, after.kind, after.agent_version):
        return Write.UPDATE
    if _readings(before.health, _TRACKED_HEALTH) != _readings(after.health, _TRACKED_HEALTH):
        return Write.UPDATE
    if persisted_at is None or now - persisted_at >= timedelta(seconds=LAST_SEEN_PERSIST_S):
        return Write.UPDATE
    return None


def _inventory(state: DeviceState) -> tuple[object, ...]:
    heard = state.last_seen is not None or bool(state.agent_version) or state.health is not None
    return (heard, state.agent_version, *_readings(state.health, INVENTORY_HEALTH))


def _readings(health: Heartbeat | None, names: Sequence[str]) -> tuple[object, ...]:
    return tuple(None if health is None else getattr(health, name) for name in names)


@dataclass(frozen=True, slots=True)
class _Pending:
    state: DeviceState
    save: bool
    """Through ``registry.save_states``: the row may be missing or the inventory changed."""


class StateWriter:
    """Collects device states and writes them in batches (see the module's docstring)."""

    def __init__(
        self,
        stored: Iterable[DeviceState] = (),
        interval_s: float = WRITE_INTERVAL_S,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._interval_s = interval_s
        self._persisted_last_seen: dict[str, datetime] = {
            s.device_id: s.last_seen for s in stored if s.last_seen is not None
        }
        """When each device's last_seen last went to the database (``stored``: as loaded)."""
        self._on_failure = on_failure
        """Told of each failed round of ``run`` (the ingest counts them as errors)."""
        self._pending: dict[str, _Pending] = {}
        self._writing = asyncio.Lock()

    def offer(self, before: DeviceState | None, after: DeviceState, now: datetime) -> None:
        """Write ``after``, which replaces ``before`` at ``now``, if ``write_needed`` says so."""
        persisted = self._persisted_last_seen.get(after.device_id)
        write = write_needed(before, after, persisted, now)
        if write is None:
            return
        self.put(after, save=write is Write.SAVE)
        if after.last_seen is not None:
            self._persisted_last_seen[after.device_id] = after.last_seen

    def put(self, state: DeviceState, *, save: bool) -> None:
        """Write ``state`` with the next batch, replacing a state of the device still waiting."""
        waiting = self._pending.get(state.device_id)
        self._pending[state.device_id] = _Pending(
            state, save or (waiting is not None and waiting.save)
        )

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write what waits now; returns how many devices. On failure they wait again."""
        async with self._writing:
            batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                await _write(list(batch.values()))
            except BaseException:
                self._requeue(batch)
                raise
            return len(batch)

    def _requeue(self, batch: dict[str, _Pending]) -> None:
        for device_id, failed in batch.items():
            newer = self._pending.get(device_id)
            if newer is None:
                self._pending[device_id] = failed
            elif failed.save and not newer.save:
                self._pending[device_id] = _Pending(newer.state, save=True)

    async def run(self) -> None:
        """Write a batch every interval until cancelled; then write what is left, once."""
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                try:
                    await self.flush()
                except Exception:  # the database is away: keep the states, try again
                    if self._on_failure is not None:
                        self._on_failure()
                    log.exception("could not write %d device states; retrying", self.waiting)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())


async def _write(batch: Sequence[_Pending]) -> None:
    saves = [pending.state for pending in batch if pending.save]
    if saves:
        await registry.save_states(saves)
    updates = [pending.state for pending in batch if not pending.save]
    if updates:
        async with in_transaction() as conn:
            await device_rows.update_states(conn, updates)
