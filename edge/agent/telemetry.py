"""Health readings for the heartbeat from psutil, and the diff against the last reading."""

from __future__ import annotations

import time
from typing import Any, Protocol

import msgspec
import psutil

from edge import __version__
from edge.protocol import Heartbeat, Network, NetworkType, PeripheralStatus


class HealthSource(Protocol):
    """Something that can read the terminal's health now."""

    def read(self) -> Heartbeat: ...


class SystemHealth:
    """The machine's own health via psutil; peripherals come from firmware_bridge when it lands."""

    def __init__(self, peripherals: tuple[PeripheralStatus, ...] = ()) -> None:
        self._peripherals = peripherals

    def read(self) -> Heartbeat:
        return Heartbeat(
            full=True,
            uptime_s=int(time.time() - psutil.boot_time()),
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            disk_percent=psutil.disk_usage("/").percent,
            temperature_c=_temperature(),
            network=Network(type=NetworkType.UNKNOWN),
            agent_version=__version__,
            outbox_backlog=0,
            peripherals=self._peripherals,
        )


def _temperature() -> float | None:
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    for entries in read().values():
        for entry in entries:
            if entry.current:
                return float(entry.current)
    return None


_DIFF_EXEMPT = frozenset({"v", "session", "seq", "at", "full"})


def heartbeat_diff(previous: Heartbeat | None, current: Heartbeat) -> Heartbeat:
    """Only the fields that changed since ``previous`` (None = unchanged), or all if no previous."""
    if previous is None:
        return msgspec.structs.replace(current, full=True)
    changes: dict[str, Any] = {}
    for field in msgspec.structs.fields(Heartbeat):
        name = field.name
        if name in _DIFF_EXEMPT:
            continue
        value = getattr(current, name)
        if value != getattr(previous, name):
            changes[name] = value
    return Heartbeat(session=current.session, seq=current.seq, at=current.at, full=False, **changes)
