"""The terminal's peripherals as the agent sees them: found, opened, asked, and found again.

The bridge holds one slot per peripheral the terminal should have (printer0, idreader0 …). A
poll opens what has appeared on the bus, asks every open driver for its status, and turns a
driver's error into the status the heartbeat carries: a device that left the bus is ``absent``
(reason ``unplugged``) and is looked for again at the next poll; a device that fails to answer
is a ``fault`` with the error's reason. Everything here blocks; the agent calls it from a thread.

A firmware update borrows a slot's device (``lend``): its driver lets go for the time of the
update and opens it again afterwards, while polls from another thread go on around it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import usb.backend
import usb.core

from edge.protocol import PeripheralState, PeripheralStatus

from .dfu import can_update
from .driver import DriverSpec, PeripheralDriver
from .errors import PeripheralError, PeripheralGoneError
from .transport import UsbTransport, find_devices
from .usb_ids import UsbId

NOT_FOUND = "not_found"
"""Absent since start-up: never seen on the bus (wrong ids in the config, or not plugged in)."""
UNPLUGGED = "unplugged"
"""Absent after it had been seen: unplugged, powered off, or dropped off the bus."""
UPDATING_FIRMWARE = "updating_firmware"
"""Degraded while its device is lent to a firmware update: it is not ours to ask meanwhile."""

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
        self.usb_id: UsbId | None = None
        """The ids of the device the slot opened last, kept while it is away."""
        self.updatable = False
        """Whether that device has a DFU run-time interface that can download."""
        self.lent = False
        """Its device is lent to a firmware update (``PeripheralBridge.lend``)."""
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

    def updatable(self) -> frozenset[str]:
        """The slots whose device, as last opened, can take a firmware update over DFU.

        Read from the device's descriptors when the slot opens it (the first poll does), and
        kept while the device is away: flashing one that is unplugged fails with its reason.
        """
        return frozenset(s.slot.name for s in self._slots if s.updatable)

    def use(self, name: str, work: Callable[[PeripheralDriver], T]) -> T:
        """Run ``work`` with the named peripheral's driver, opening it if it has appeared.

        Raises PeripheralError when the peripheral is absent or the work fails; a device that
        left the bus is forgotten, to be found again.
        """
        state = self._named(name)
        with state.lock:
            driver = self._driver(state)
            try:
                return work(driver)
            except PeripheralGoneError:
                self._forget(state)
                raise

    def lend(self, name: str, work: Callable[[usb.backend.IBackend, UsbId], T]) -> T:
        """Run ``work`` with the bus and the ids of the named peripheral's device, released.

        For a firmware update: the driver closes first (a claimed interface goes back to its
        kernel driver), then, while ``work`` runs, polls report the slot ``degraded`` with
        reason ``updating_firmware`` without waiting for it, ``use`` refuses, and no slot opens
        a device with those ids. Afterwards the slot opens its device again, whatever ``work``
        did; one still away is found by a later poll. Raises PeripheralError when it is absent.
        """
        state = self._named(name)
        with state.lock:
            self._driver(state)
            usb_id = state.usb_id
            assert usb_id is not None  # noqa: S101 - set by the open that gave the driver
            self._forget(state)
            state.lent = True
        try:
            return work(self._backend, usb_id)
        finally:
            with state.lock:
                state.lent = False
                self._open(state)

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
            if state.lent:
                return self._updating(slot)
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

    def _driver(self, state: _Slot) -> PeripheralDriver:
        """The slot's open driver, opening its device if it appeared; PeripheralError if not."""
        if state.lent:
            msg = f"{state.slot.name}: its firmware is being updated"
            raise PeripheralError(msg, reason=UPDATING_FIRMWARE)
        driver = state.driver or self._open(state)
        if driver is None:
            if state.open_error is not None:
                raise state.open_error
            msg = f"{state.slot.name}: not on the bus"
            raise PeripheralGoneError(msg, reason=UNPLUGGED if state.seen else NOT_FOUND)
        return driver

    def _open(self, state: _Slot) -> PeripheralDriver | None:
        """Open the first free device that fills the slot; remembers why one on the bus failed."""
        slot = state.slot
        taken = {s.where for s in self._slots if s is not state and s.where is not None}
        lent = {s.usb_id for s in self._slots if s.lent}
        state.open_error = None
        try:
            candidates = find_devices(self._backend, slot.wanted_ids)
        except PeripheralError as exc:
            state.open_error = exc
            return None
        for device in candidates:
            where = (device.bus or 0, device.address or 0)
            if where in taken or _usb_id(device) in lent:
                continue  # two alike peripherals: each slot takes its own; lent ones are away
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
            state.usb_id = _usb_id(device)
            state.updatable = can_update(device)
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
    def _updating(slot: PeripheralSlot) -> PeripheralStatus:
        return PeripheralStatus(
            name=slot.name,
            kind=slot.spec.kind,
            state=PeripheralState.DEGRADED,
            reason=UPDATING_FIRMWARE,
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


def _usb_id(device: usb.core.Device) -> UsbId:
    return UsbId(device.idVendor, device.idProduct)
