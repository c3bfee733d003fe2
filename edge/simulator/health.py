"""Simulated health: plausible, slowly wandering readings and occasional peripheral trouble."""

from __future__ import annotations

import random

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
    ),
    DeviceKind.BOOTH: (
        ("screen0", PeripheralKind.SCREEN),
        ("camera0", PeripheralKind.CAMERA),
        ("doccam0", PeripheralKind.DOCUMENT_CAMERA),
    ),
}
# Chance per reading that a healthy peripheral develops a problem, and that a problem clears.
FAULT_RATE = 0.002
RECOVERY_RATE = 0.05
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


class SimulatedHealth:
    """A HealthSource for one simulated terminal; deterministic for a given ``rng`` seed."""

    def __init__(self, kind: DeviceKind, rng: random.Random) -> None:
        self._kind = kind
        self._rng = rng
        self._cpu = rng.uniform(3, 20)
        self._uptime = rng.randint(600, 30 * 86400)
        self._peripherals = {p.name: p for p in working_peripherals(kind)}

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
            peripherals=tuple(self._peripherals.values()),
        )

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
