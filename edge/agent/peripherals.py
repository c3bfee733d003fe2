"""The agent's view of its peripherals: polled off the event loop, changes recorded as events.

``PeripheralMonitor`` polls firmware_bridge's ``PeripheralBridge`` in a worker thread (USB
transfers block, up to their timeouts) and keeps the latest statuses for the heartbeat, which
reads them without waiting. A peripheral whose state changes becomes a ``peripheral_changed``
event record, so a printer that ran out of paper between two heartbeats is still on record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from edge.protocol import DeviceEvent, EventType, PeripheralState, PeripheralStatus, Severity
from edge.protocol.commands import CHECK_PASSED, check_failed
from firmware_bridge.errors import PeripheralError

from .commissioning import check_name, no_peripherals

if TYPE_CHECKING:  # the bridge loads pyusb; startup imports it only for an agent with peripherals
    from firmware_bridge.bridge import PeripheralBridge

RecordEvent = Callable[[DeviceEvent], Awaitable[object]]

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 5.0
"""How often peripherals are asked for their status: a paper-out shows within this."""


def changes(
    before: dict[str, PeripheralStatus], now: tuple[PeripheralStatus, ...]
) -> list[PeripheralStatus]:
    """The peripherals whose state or reason differs from ``before`` (all, at first). Pure."""
    changed = []
    for status in now:
        last = before.get(status.name)
        if last is None or (last.state, last.reason) != (status.state, status.reason):
            changed.append(status)
    return changed


_SEVERITY = {
    PeripheralState.OK: Severity.INFO,
    PeripheralState.DEGRADED: Severity.WARNING,
}


def change_event(status: PeripheralStatus, at: datetime) -> DeviceEvent:
    """The event record of a peripheral's new state. Pure."""
    reason = f" ({status.reason})" if status.reason else ""
    return DeviceEvent(
        type=EventType.PERIPHERAL_CHANGED,
        severity=_SEVERITY.get(status.state, Severity.CRITICAL),
        at=at,
        message=f"{status.name} is {status.state.value}{reason}",
        peripheral=status.name,
        peripheral_kind=status.kind,
        peripheral_state=status.state,
        details={"reason": status.reason} if status.reason else {},
    )


class PeripheralMonitor:
    """Polls the bridge, keeps the latest statuses, records changes, runs self-tests."""

    def __init__(
        self,
        bridge: PeripheralBridge,
        clock: Callable[[], datetime],
        *,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.bridge = bridge
        self._clock = clock
        self._interval_s = interval_s
        self._latest: dict[str, PeripheralStatus] = {}
        self._polled = False

    @property
    def interval_s(self) -> float:
        """Seconds between two polls of ``run``."""
        return self._interval_s

    def statuses(self) -> tuple[PeripheralStatus, ...]:
        """The statuses of the last poll, in slot order; never blocks."""
        return tuple(self._latest.values())

    async def poll_once(self, record: RecordEvent) -> tuple[PeripheralStatus, ...]:
        """Poll every peripheral now and ``record`` an event for each change."""
        statuses = await asyncio.to_thread(self.bridge.poll)
        changed = changes(self._latest, statuses)
        self._latest = {status.name: status for status in statuses}
        for status in changed:
            # At start-up only trouble is news; after that every change is.
            if self._polled or status.state is not PeripheralState.OK:
                await record(change_event(status, self._clock()))
        self._polled = True
        return statuses

    async def run(self, record: RecordEvent) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.poll_once(record)
            except Exception:  # a driver bug must not end peripheral monitoring for good
                log.exception("peripheral poll failed")

    def run_self_tests(self) -> dict[str, str]:
        """Each peripheral's commissioning check, ``name.check`` → pass or ``fail: reason``.

        Blocks (a test print, a card read): call it from a worker thread.
        """
        slots = self.bridge.slots
        if not slots:
            return no_peripherals()
        checks = {}
        for slot in slots:
            check = check_name(slot.name, slot.spec.kind)
            try:
                self.bridge.self_test(slot.name)
            except PeripheralError as exc:
                checks[check] = check_failed(f"{exc.reason}: {exc}")
            else:
                checks[check] = CHECK_PASSED
        return checks

    def close(self) -> None:
        self.bridge.close()
