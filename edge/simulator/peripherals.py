"""A simulated terminal's USB peripherals: virtual devices that the real drivers read.

Each terminal gets a simulated bus of its own with a virtual device per USB peripheral of its
kind (``firmware_bridge.catalog``), and the bridge, monitor and review-pad link a real agent
has over them. A trouble model puts the devices, now and then, in the states a clerk meets: a
receipt roll near its end or out, an ID reader whose SAM fails, a stuck rating key, a pulled
cable. It takes one step per poll, and the drivers report what it did at the next.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from edge.agent.peripherals import PeripheralMonitor
from edge.protocol import PeripheralStatus, Rating
from firmware_bridge.bridge import PeripheralBridge, PeripheralSlot
from firmware_bridge.catalog import default_slots
from firmware_bridge.simulated.backend import SimulatedBackend
from firmware_bridge.simulated.device import VirtualDevice
from firmware_bridge.simulated.id_reader import VirtualIdCardReader
from firmware_bridge.simulated.printer import VirtualReceiptPrinter
from firmware_bridge.simulated.review_pad import VirtualReviewPad
from firmware_bridge.simulated.terminal import SimulatedPeripherals, simulated_peripherals

from .district import SimulatedTerminal
from .health import FAULT_RATE, RECOVERY_RATE
from .pad import SimulatedPadLink

_RATING_KEYS = tuple(r for r in Rating if r is not Rating.UNKNOWN)


@dataclass(frozen=True)
class Trouble:
    """One thing that can go wrong with a device, how likely it is, and what ends it."""

    reason: str
    """What the driver reports while it lasts."""
    weight: float
    begin: Callable[[], None]
    end: Callable[[], None]


def troubles_of(
    device: VirtualDevice, backend: SimulatedBackend, rng: random.Random
) -> tuple[Trouble, ...]:
    """What can happen to ``device`` on ``backend``: its own faults, or its cable pulled."""

    def unplugged(weight: float) -> Trouble:
        return Trouble(
            "unplugged", weight, lambda: backend.unplug(device), lambda: backend.plug(device)
        )

    match device:
        case VirtualReceiptPrinter():
            return (
                Trouble("paper_near_end", 0.7, device.paper_near_end, device.refill),
                Trouble("paper_out", 0.3, device.paper_out, device.refill),
            )
        case VirtualIdCardReader():
            return (Trouble("sam_fault", 0.6, device.break_sam, device.repair_sam), unplugged(0.4))
        case VirtualReviewPad():
            key = rng.choice(_RATING_KEYS)  # a pad sticks on one key; which one is its own
            return (
                Trouble(
                    "key_stuck", 0.5, lambda: device.stick_key(key), lambda: device.unstick_key(key)
                ),
                unplugged(0.5),
            )
        case _:
            return (unplugged(1.0),)


class PeripheralTrouble:
    """The trouble model over one terminal's devices; deterministic for a given ``rng``.

    At each step a working device goes wrong with ``fault_rate`` and a troubled one recovers
    with ``recovery_rate``, the rates of the made-up peripherals of ``edge.simulator.health``.
    """

    def __init__(
        self,
        simulated: SimulatedPeripherals,
        rng: random.Random,
        *,
        fault_rate: float = FAULT_RATE,
        recovery_rate: float = RECOVERY_RATE,
    ) -> None:
        self._rng = rng
        self._fault_rate = fault_rate
        self._recovery_rate = recovery_rate
        self.troubles = {
            name: troubles_of(device, simulated.backend, rng)
            for name, device in simulated.devices.items()
        }
        """What can go wrong with each device, by slot name."""
        self.current: dict[str, Trouble] = {}
        """The trouble each troubled device is in now, by slot name."""

    def step(self) -> None:
        rng = self._rng
        for name, troubles in self.troubles.items():
            trouble = self.current.get(name)
            if trouble is None:
                if rng.random() < self._fault_rate:
                    self._begin(name, rng.choices(troubles, [t.weight for t in troubles])[0])
            elif rng.random() < self._recovery_rate:
                self.end(name)

    def begin(self, name: str, reason: str) -> None:
        """Put the device in slot ``name`` in its trouble ``reason`` now (for tests and demos)."""
        known = {t.reason: t for t in self.troubles[name]}
        if reason not in known:
            msg = f"{name} has no trouble {reason!r}; it knows {', '.join(known)}"
            raise ValueError(msg)
        self.end(name)
        self._begin(name, known[reason])

    def end(self, name: str) -> None:
        """Clear the device's trouble, if it has one."""
        trouble = self.current.pop(name, None)
        if trouble is not None:
            trouble.end()

    def _begin(self, name: str, trouble: Trouble) -> None:
        trouble.begin()
        self.current[name] = trouble


class TroubledBridge(PeripheralBridge):
    """A bridge over a simulated bus whose every poll is also a step of the trouble model.

    The step follows the poll, so trouble develops between two polls and the next one reports
    it, and the first poll sees every device as it was plugged in, as a terminal starting does.
    """

    def __init__(
        self,
        simulated: SimulatedPeripherals,
        slots: tuple[PeripheralSlot, ...],
        trouble: PeripheralTrouble,
    ) -> None:
        super().__init__(simulated.backend, slots)
        self.trouble = trouble

    def poll(self) -> tuple[PeripheralStatus, ...]:
        statuses = super().poll()
        self.trouble.step()
        return statuses


@dataclass(frozen=True)
class SimulatedUsb:
    """One simulated terminal's USB peripherals, and what its agent watches them with."""

    simulated: SimulatedPeripherals
    trouble: PeripheralTrouble
    monitor: PeripheralMonitor
    pad: SimulatedPadLink | None
    """The link of its review pad, if it has one (review pads, station PCs)."""

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.simulated.devices)

    def statuses(self) -> tuple[PeripheralStatus, ...]:
        return self.monitor.statuses()


def simulated_usb(
    terminal: SimulatedTerminal,
    rng: random.Random,
    clock: Callable[[], datetime],
    poll_interval_s: float,
) -> SimulatedUsb:
    """The USB peripherals of ``terminal``, all working at first, polled every interval."""
    slots = default_slots(terminal.kind)
    simulated = simulated_peripherals(slots, serial_prefix=terminal.device_id)
    trouble = PeripheralTrouble(simulated, rng)
    bridge = TroubledBridge(simulated, slots, trouble)
    monitor = PeripheralMonitor(bridge, clock, interval_s=poll_interval_s)
    pad = None
    for slot in slots:
        device = simulated.devices[slot.name]
        if isinstance(device, VirtualReviewPad):
            pad = SimulatedPadLink(bridge, slot.name, device, clock, window=terminal.window)
            break
    return SimulatedUsb(simulated, trouble, monitor, pad)
