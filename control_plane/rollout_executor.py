"""The rollout executor: runs the pure planner against the stored rollouts and the devices' reports.

Every rollout lives in memory (``Tracked``), loaded at start. Three things move them, one at a
time under one lock: an operator's action (create, pause, resume, cancel, roll back, retry), a
device's package report (``report``), and the clock (``tick``: waves, windows, timeouts). Each
writes the rows it changed, then publishes the retained content notice of every device whose
orders changed. A notice that could not be published (the broker connection is down) is
published on a later tick: the retained notice, not the moment, is the order.

Only one executor may drive a database's rollouts: the server runs it while it holds the
database's rollout lock (``rollout_driver``); see docs/rollouts.md for replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from edge import mqtt
from edge.protocol import PackageReport, PackageState
from edge.schedule import OpeningHours

from . import rollout_store
from .db.whole import whole
from .rollout_notices import NoticeMaker
from .rollout_store import Tracked
from .rollouts import (
    DeviceProgress,
    DeviceStep,
    OperationError,
    RolloutPhase,
    apply,
    cancel,
    pause,
    plan,
    resume,
    retry_failed,
    rollback,
)
from .rollouts.reports import moves_for
from .rollouts.states import move
from .rollouts.steps import MarkTimedOut, PauseRollout
from .rollouts.targets import Assignment

log = logging.getLogger(__name__)

TICK_S = 5.0
"""How often rollouts are planned without a report or an action waking the executor."""

PUBLISH_BATCH = 256
"""Notices made between two chances for the event loop to send them."""

Publish = Callable[[mqtt.Outgoing], bool]
"""Hands a message to the broker connection; False when there is none right now."""


def _now() -> datetime:
    return datetime.now(UTC)


class RolloutExecutor:
    def __init__(
        self,
        notices: NoticeMaker,
        hours_of: Callable[[str], OpeningHours | None],
        publish: Publish,
        *,
        clock: Callable[[], datetime] = _now,
        connection: Callable[[], object] = lambda: None,
    ) -> None:
        self._notices = notices
        self._connection = connection
        self._published_on: object = None
        self._hours_of = hours_of
        self._publish = publish
        self._clock = clock
        self.rollouts: dict[str, Tracked] = {}
        self._by_device: dict[str, list[str]] = {}
        self._unpublished: set[str] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.changed = asyncio.Condition()
        """Notified after every change, for watchers (``rollout show --watch``, tests)."""

    # -- state -------------------------------------------------------------------------------

    async def load(self) -> None:
        async with self._lock:
            self.rollouts = {}
            self._by_device = {}
            for tracked in await rollout_store.load_all():
                await self._notices.remember(tracked.row.target_sha256, tracked.row.previous_sha256)
                self._track(tracked)

    def _track(self, tracked: Tracked) -> None:
        self.rollouts[tracked.rollout_id] = tracked
        for device_id in tracked.devices:
            self._by_device.setdefault(device_id, []).append(tracked.rollout_id)

    def active_for(self, device_ids: Iterable[str], package_name: str) -> dict[str, str]:
        """Devices among ``device_ids`` already in an unfinished rollout of ``package_name``."""
        busy: dict[str, str] = {}
        for device_id in device_ids:
            for rollout_id in self._by_device.get(device_id, ()):
                tracked = self.rollouts[rollout_id]
                if tracked.row.package_name == package_name and not tracked.final:
                    busy[device_id] = rollout_id
        return busy

    def windows(self, device_id: str, now: datetime) -> bool:
        """Whether ``device_id`` may install now: its site is closed, or it has no known hours."""
        hours = self._hours_of(device_id)
        return hours is None or not hours.is_open(now)

    # -- what moves rollouts -----------------------------------------------------------------

    async def create(self, tracked: Tracked) -> Tracked:
        """Store a new rollout (made by ``rollout_create``) and plan it at once."""
        async with self._lock:
            busy = self.active_for(tracked.devices, tracked.row.package_name)
            if busy:
                device_id, other = next(iter(sorted(busy.items())))
                msg = (
                    f"{len(busy)} targeted devices are in unfinished rollout {other} of "
                    f"{tracked.row.package_name}, e.g. {device_id}: finish, cancel or roll it back"
                )
                raise OperationError(msg, reason="devices_busy")
            now = self._clock()
            # Planned before it is stored, so the first wave's rows are written once, notified.
            moved, _ = self._advance(tracked, now)
            await rollout_store.insert(tracked)
            await self._notices.remember(tracked.row.target_sha256, tracked.row.previous_sha256)
            self._track(tracked)
            self._unpublished.update(moved)
            await self._publish_pending(now)
        await self._changed()
        return tracked

    async def operate(self, rollout_id: str, action: str, *, waive: bool = False) -> Tracked:
        """An operator's action: pause, resume, cancel, rollback or retry."""
        async with self._lock:
            tracked = self.rollouts[rollout_id]
            now = self._clock()
            devices = tracked.devices
            match action:
                case "pause":
                    state = pause(tracked.state)
                case "resume":
                    state = resume(tracked.state, waive_thresholds=waive)
                case "cancel":
                    state, devices = cancel(tracked.state, devices, now)
                case "rollback":
                    state, devices = rollback(tracked.state, devices, now)
                case "retry":
                    state, devices = retry_failed(tracked.state, devices, now)
                case _:
                    msg = f"unknown action {action!r}"
                    raise OperationError(msg, reason="unknown_action")
            moved = _moved(tracked.devices, devices)
            if state.version != tracked.state.version:
                moved = list(devices)  # a rollback: every device's notice names another version
            tracked.state, tracked.devices = state, devices
            if action != "pause":
                tracked.row.pause_detail = ""
            await rollout_store.save(tracked, moved, now)
            self._unpublished.update(moved)
            await self._plan(tracked, now)
        await self._changed()
        return tracked

    async def report(self, device_id: str, report: PackageReport) -> None:
        """A device's package report (retained, so also its state after any reconnect)."""
        now = self._clock()
        await rollout_store.record_report(device_id, report.packages, now)
        by_name = {state.name: state for state in report.packages if state.name}
        async with self._lock:
            for rollout_id in self._by_device.get(device_id, ()):
                tracked = self.rollouts[rollout_id]
                state = by_name.get(tracked.row.package_name)
                if state is not None and self._take_report(tracked, device_id, state, now):
                    await rollout_store.save(tracked, [device_id], now)
                    self._unpublished.add(device_id)
        self._wake.set()
        await self._changed()

    def _take_report(
        self, tracked: Tracked, device_id: str, state: PackageState, now: datetime
    ) -> bool:
        progress = tracked.devices[device_id]
        installed = None if state.installed is None else str(state.installed)
        steps = moves_for(tracked.state, progress, state)
        for step in steps:
            progress = move(progress, step, now)
        if steps and steps[-1] in {DeviceStep.FAILED, DeviceStep.INCOMPATIBLE}:
            tracked.notes[device_id] = (state.reason or steps[-1].value, state.detail)
        if progress.installed_version != installed and (steps or not progress.terminal):
            progress = _with_installed(progress, installed)
        if progress == tracked.devices[device_id]:
            return False
        tracked.devices[device_id] = progress
        return True

    async def tick(self) -> None:
        """Plan every unfinished rollout and publish the notices not yet out."""
        async with self._lock:
            now = self._clock()
            connection = self._connection()
            if connection is not None and connection is not self._published_on:
                # The broker connection keeps no session: a notice in flight when the last one
                # broke may be lost, so every device's notice goes out again on the new one.
                self._published_on = connection
                self._unpublished.update(self._by_device)
            for tracked in list(self.rollouts.values()):
                if not tracked.final:
                    await self._plan(tracked, now)
            await self._publish_pending(now)
        await self._changed()

    async def run(self, interval_s: float = TICK_S) -> None:
        """Tick forever: every ``interval_s``, and at once after a report."""
        while True:
            try:
                await whole(self.tick())
            except Exception:
                log.exception("rollout tick failed; trying again in %.0f s", interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)
            self._wake.clear()

    async def _plan(self, tracked: Tracked, now: datetime) -> None:
        moved, state_changed = self._advance(tracked, now)
        if moved or state_changed:
            await rollout_store.save(tracked, moved, now)
            if state_changed:
                log.info(
                    "rollout %s: %s, wave %d",
                    tracked.rollout_id,
                    tracked.state.phase,
                    tracked.state.wave,
                )
        self._unpublished.update(moved)
        await self._publish_pending(now)

    def _advance(self, tracked: Tracked, now: datetime) -> tuple[list[str], bool]:
        """``tracked`` moved on by one plan: the devices that moved, and whether it did."""
        planned = plan(tracked.state, tracked.devices, now, self.windows)
        devices = apply(planned, tracked.devices, now)
        for step in planned.device_steps():
            if isinstance(step, MarkTimedOut):
                detail = f"no report for {tracked.state.spec.device_timeout} while {step.stuck_in}"
                tracked.notes[step.device_id] = ("timeout", detail)
        for action in planned.steps:
            if isinstance(action, PauseRollout):
                tracked.row.pause_detail = action.detail[:255]
        moved = _moved(tracked.devices, devices)
        state_changed = planned.rollout != tracked.state
        tracked.state, tracked.devices = planned.rollout, devices
        return moved, state_changed

    async def _publish_pending(self, now: datetime) -> None:
        for count, device_id in enumerate(sorted(self._unpublished), start=1):
            notice = self._notices.notice(device_id, self._assignments(device_id), now)
            if not self._publish(self._notices.message(device_id, notice)):
                return  # no connection: the rest wait for the next tick
            self._unpublished.discard(device_id)
            if count % PUBLISH_BATCH == 0:
                # Let the connection send what it has: the first terminals of a large wave are
                # told while the last notices are still being made.
                await asyncio.sleep(0)

    def _assignments(self, device_id: str) -> Iterable[Assignment]:
        for rollout_id in self._by_device.get(device_id, ()):
            tracked = self.rollouts[rollout_id]
            row = tracked.row
            rolling_back = tracked.state.phase in {
                RolloutPhase.ROLLING_BACK,
                RolloutPhase.ROLLED_BACK,
            }
            yield Assignment(
                rollout_id=rollout_id,
                created=row.created_at,
                package_name=row.package_name,
                kind=tracked.kind,
                version=int(tracked.state.version),
                step=tracked.devices[device_id].step,
                policy=tracked.state.spec.install_policy,
                allow_older=rolling_back or row.allow_older,
                rolling_back=rolling_back,
                peripheral=row.peripheral,
            )

    async def _changed(self) -> None:
        async with self.changed:
            self.changed.notify_all()


def _moved(before: dict[str, DeviceProgress], after: dict[str, DeviceProgress]) -> list[str]:
    return [device_id for device_id, progress in after.items() if before.get(device_id) != progress]


def _with_installed(progress: DeviceProgress, installed: str | None) -> DeviceProgress:
    return dataclasses.replace(progress, installed_version=installed)
