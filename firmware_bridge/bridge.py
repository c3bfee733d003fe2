"""The terminal's peripherals as the agent sees them: found, opened, asked, and found again.

The bridge holds one slot per peripheral the terminal should have (printer0, idreader0 …). A
poll opens what has appeared on the bus, asks every open driver for its status, and turns a
driver's error into the status the heartbeat carries: a device that left the bus is ``absent``
(reason ``unplugged``) and is looked for again at the next poll; a device that fails to answer
is a ``fault`` with the error's reason. Everything here blocks; the agent calls it from a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import usb.backend

from edge.protocol import PeripheralState, PeripheralStatus

from .driver import DriverSpec, PeripheralDriver
from .errors import PeripheralError, PeripheralGoneError
from .transport import UsbTransport, find_devices
from .usb_ids import UsbId

NOT_FOUND = "not_found"
"""Absent since start-up: never seen on the bus (wrong ids in the config, or not plugged in)."""
UNPLUGGED = "unplugged"
"""Absent after it had been seen: unplugged, powered off, or dropped off the bus."""

T = TypeVar("T")


@dataclass(frozen=True)
class PeripheralSlot:
    """One peripheral the terminal should have, and the ids that may fill the slot."""

    name: str
    spec: DriverSpec
    ids: tuple[UsbId, ...] = ()
    """The ids to look for; empty means the spec's default ids."""

    @property
    def wanted_ids(self) -> tuple[UsbId, ...]:
        return self.ids or self.spec.default_ids


class _Slot:
    """A slot's driver, when one is open, and whether the device was ever seen."""

    def __init__(self, slot: PeripheralSlot) -> None:
        self.slot = slot
        self.driver: PeripheralDriver | None = None
        self.where: tuple[int, int] | None = None  # (bus, address) of the open device
        self.seen = False
        self.open_error: PeripheralError | None = None
        """Why the device found on the bus could not be opened (no access, no answer)."""
        self.lock = threading.Lock()


class PeripheralBridge:
    """Opens configured peripherals when they appear, reports their statuses, and runs work."""

    def __init__(self, backend: usb.backend.IBackend, slots: Sequence[PeripheralSlot]) -> None:
        names = [slot.name for slot in slots]
        if len(set(names)) != len(names):
            msg = f"peripheral names must be unique on a terminal: {names}"
            raise ValueError(msg)
        self._backend = backend
        self._slots = [_Slot(slot) for slot in slots]

    @property
    def slots(self) -> tuple[PeripheralSlot, ...]:
        return tuple(s.slot for s in self._slots)

    def poll(self) -> tuple[PeripheralStatus, ...]:
        """Every slot's status now, opening devices that appeared since the last poll."""
        return tuple(self._poll(s) for s in self._slots)

    def use(self, name: str, work: Callable[[PeripheralDriver], T]) -> T:
        """Run ``work`` with the named peripheral's driver, opening it if it has appeared.

        Raises PeripheralError when the peripheral is absent or the work fails; a device that
        left the bus is forgotten, to be found again.
        """
        state = self._named(name)
        with state.lock:
            driver = state.driver or self._open(state)
            if driver is None:
                if state.open_error is not None:
                    raise state.open_error
                msg = f"{name}: not on the bus"
                raise PeripheralGoneError(msg, reason=UNPLUGGED if state.seen else NOT_FOUND)
            try:
                return work(driver)
            except PeripheralGoneError:
                self._forget(state)
                raise

    def self_test(self, name: str) -> None:
        """Run the named peripheral's commissioning self-test; raises PeripheralError."""
        self.use(name, lambda driver: driver.self_test())

    def close(self) -> None:
        for state in self._slots:
            with state.lock:
                self._forget(state)

    # --- one slot --------------------------------------------------------------------------

    def _poll(self, state: _Slot) -> PeripheralStatus:
        slot = state.slot
        with state.lock:
            driver = state.driver or self._open(state)
            if driver is None and state.open_error is not None:
                return self._fault(slot, state.open_error)
            if driver is None:
                return self._absent(state)
            try:
                return driver.status()
            except PeripheralGoneError:
                self._forget(state)
                return self._absent(state)
            except PeripheralError as exc:
                return self._fault(slot, exc)

    def _open(self, state: _Slot) -> PeripheralDriver | None:
        """Open the first free device that fills the slot; remembers why one on the bus failed."""
        slot = state.slot
        taken = {s.where for s in self._slots if s is not state and s.where is not None}
        state.open_error = None
        try:
            candidates = find_devices(self._backend, slot.wanted_ids)
        except PeripheralError as exc:
            state.open_error = exc
            return None
        for device in candidates:
            where = (device.bus or 0, device.address or 0)
            if where in taken:
                continue  # two alike peripherals: each slot takes its own
            try:
                transport = UsbTransport.open(device, slot.spec.interface, claim=slot.spec.claim)
            except PeripheralError as exc:
                state.open_error = exc  # on the bus but not ours: udev rules, a busy interface
                continue
            try:
                state.driver = slot.spec.open(transport, slot.name)
            except PeripheralError as exc:
                state.open_error = exc  # another protocol, or no answer to the first request
                transport.close()
                continue
            state.where = where
            state.seen = True
            state.open_error = None
            return state.driver
        return None

    @staticmethod
    def _forget(state: _Slot) -> None:
        if state.driver is not None:
            state.driver.close()
        state.driver = None
        state.where = None

    @staticmethod
    def _fault(slot: PeripheralSlot, error: PeripheralError) -> PeripheralStatus:
        return PeripheralStatus(
            name=slot.name, kind=slot.spec.kind, state=PeripheralState.FAULT, reason=error.reason
        )

    @staticmethod
    def _absent(state: _Slot) -> PeripheralStatus:
        return PeripheralStatus(
            name=state.slot.name,
            kind=state.slot.spec.kind,
            state=PeripheralState.ABSENT,
            reason=UNPLUGGED if state.seen else NOT_FOUND,
        )

    def _named(self, name: str) -> _Slot:
        for state in self._slots:
            if state.slot.name == name:
                return state
        msg = f"no peripheral named {name!r} on this terminal"
        raise KeyError(msg)
