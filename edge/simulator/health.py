"""Simulated health: plausible, slowly wandering readings and occasional peripheral trouble.

A simulated terminal's USB peripherals are read by the real drivers off virtual devices
(``edge.simulator.peripherals``); the others (a kiosk's A4 printer, screen and call button) are
made up here, and both go into the heartbeat in the order of ``PERIPHERALS``. Without driven
peripherals, every peripheral is made up, for tests of other parts.
"""

from __future__ import annotations

import random
from typing import Protocol

from edge import __version__
from edge.protocol import (
    DeviceKind,
    Heartbeat,
    Network,
    NetworkType,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
)

PERIPHERALS: dict[DeviceKind, tuple[tuple[str, PeripheralKind], ...]] = {
    DeviceKind.KIOSK: (
        ("printer0", PeripheralKind.RECEIPT_PRINTER),
        ("printer1", PeripheralKind.A4_PRINTER),
        ("idreader0", PeripheralKind.ID_CARD_READER),
        ("camera0", PeripheralKind.CAMERA),
        ("help0", PeripheralKind.CALL_BUTTON),
        ("screen0", PeripheralKind.SCREEN),
    ),
    DeviceKind.REVIEW_PAD: (("keys0", PeripheralKind.REVIEW_PAD),),
    DeviceKind.STATION_PC: (
        ("idreader0", PeripheralKind.ID_CARD_READER),
        ("doccam0", PeripheralKind.DOCUMENT_CAMERA),
        ("printer0", PeripheralKind.RECEIPT_PRINTER),
        ("cardreader0", PeripheralKind.CITIZEN_CARD_READER),
        ("pad0", PeripheralKind.REVIEW_PAD),
    ),
    DeviceKind.BOOTH: (
        ("screen0", PeripheralKind.SCREEN),
        ("camera0", PeripheralKind.CAMERA),
        ("doccam0", PeripheralKind.DOCUMENT_CAMERA),
    ),
}
"""Every peripheral a terminal of each kind reports, USB or not (a station PC's window pad too)."""
# Chance per reading that a healthy peripheral develops a problem, and that a problem clears;
# edge.simulator.peripherals applies the same rates to the virtual USB devices.
FAULT_RATE = 0.002
RECOVERY_RATE = 0.05
# The made-up trouble of peripherals no driver reads (all of them, without driven peripherals).
_TROUBLE = {
    PeripheralKind.RECEIPT_PRINTER: (PeripheralState.DEGRADED, "paper_near_end"),
    PeripheralKind.A4_PRINTER: (PeripheralState.FAULT, "paper_jam"),
    PeripheralKind.ID_CARD_READER: (PeripheralState.FAULT, "no_answer"),
}
SIMULATED_OS = "Kylin V10 (SP1)"
_MODELS = {
    DeviceKind.KIOSK: "sim-kiosk-21",
    DeviceKind.REVIEW_PAD: "sim-pad-5",
    DeviceKind.STATION_PC: "sim-pc-7",
    DeviceKind.BOOTH: "sim-booth-2",
}
"""Made-up models: the simulator should not pass for a real maker's terminal."""
_NETWORK = {
    DeviceKind.STATION_PC: NetworkType.CELLULAR_4G,
    DeviceKind.REVIEW_PAD: NetworkType.WIFI,
}


def working_peripherals(kind: DeviceKind) -> tuple[PeripheralStatus, ...]:
    """The peripherals a terminal of this kind has, every one of them working."""
    return tuple(
        PeripheralStatus(name=name, kind=pkind, state=PeripheralState.OK, model="sim")
        for name, pkind in PERIPHERALS.get(kind, ())
    )


class DrivenPeripherals(Protocol):
    """Peripherals whose statuses drivers read, by slot name."""

    @property
    def names(self) -> frozenset[str]: ...

    def statuses(self) -> tuple[PeripheralStatus, ...]:
        """The latest statuses the drivers read; never blocks."""
        ...


class SimulatedHealth:
    """A HealthSource for one simulated terminal; deterministic for a given ``rng`` seed.

    With ``driven``, the peripherals it names are reported as their drivers last read them
    (none until the first poll) and only the others are made up.
    """

    def __init__(
        self, kind: DeviceKind, rng: random.Random, driven: DrivenPeripherals | None = None
    ) -> None:
        self._kind = kind
        self._rng = rng
        self._cpu = rng.uniform(3, 20)
        self._uptime = rng.randint(600, 30 * 86400)
        self._driven = driven
        skipped = driven.names if driven is not None else frozenset()
        self._order = [name for name, _ in PERIPHERALS.get(kind, ())]
        self._peripherals = {p.name: p for p in working_peripherals(kind) if p.name not in skipped}

    def read(self) -> Heartbeat:
        rng = self._rng
        self._cpu = min(100.0, max(0.5, self._cpu + rng.gauss(0, 2)))
        self._uptime += 30
        for name, status in self._peripherals.items():
            self._peripherals[name] = self._wander(status)
        network_type = _NETWORK.get(self._kind, NetworkType.ETHERNET)
        signal = rng.randint(-105, -70) if network_type is NetworkType.CELLULAR_4G else None
        return Heartbeat(
            full=True,
            uptime_s=self._uptime,
            cpu_percent=round(self._cpu, 1),
            memory_percent=round(rng.uniform(35, 60), 1),
            disk_percent=42.0,
            temperature_c=round(rng.uniform(38, 55), 1),
            network=Network(type=network_type, signal_dbm=signal),
            agent_version=__version__,
            os=SIMULATED_OS,
            hardware_model=_MODELS.get(self._kind, ""),
            outbox_backlog=0,
            peripherals=self._all_peripherals(),
        )

    def _all_peripherals(self) -> tuple[PeripheralStatus, ...]:
        if self._driven is None:
            return tuple(self._peripherals.values())
        read = {status.name: status for status in self._driven.statuses()}
        merged = [
            status
            for name in self._order
            if (status := read.pop(name, None) or self._peripherals.get(name)) is not None
        ]
        return (*merged, *read.values())  # driven peripherals PERIPHERALS does not list, last

    def _wander(self, status: PeripheralStatus) -> PeripheralStatus:
        rng = self._rng
        if status.state is PeripheralState.OK:
            trouble = _TROUBLE.get(status.kind)
            if trouble and rng.random() < FAULT_RATE:
                return PeripheralStatus(
                    name=status.name,
                    kind=status.kind,
                    state=trouble[0],
                    reason=trouble[1],
                    model=status.model,
                )
            return status
        if rng.random() < RECOVERY_RATE:
            return PeripheralStatus(
                name=status.name, kind=status.kind, state=PeripheralState.OK, model=status.model
            )
        return status
