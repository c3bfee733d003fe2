"""Health readings for the heartbeat from psutil, and the diff against the last reading."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import msgspec
import psutil

from edge import __version__
from edge.protocol import Heartbeat, ItemsSummary, Network, NetworkType, PeripheralStatus

ItemsSource = Callable[[tuple[PeripheralStatus, ...]], ItemsSummary | None]
"""What the terminal can serve of its catalog given these peripherals (``catalog_report``)."""


class HealthSource(Protocol):
    """Something that can read the terminal's health now."""

    def read(self) -> Heartbeat: ...


class SystemHealth:
    """The machine's own health via psutil, the peripherals' latest statuses, and the items."""

    def __init__(
        self,
        peripherals: Callable[[], tuple[PeripheralStatus, ...]] = tuple,
        items: ItemsSource | None = None,
    ) -> None:
        self._peripherals = peripherals
        self._items = items
        self._os = operating_system()  # neither changes while the agent runs
        self._model = hardware_model()

    def read(self) -> Heartbeat:
        peripherals = self._peripherals()
        return Heartbeat(
            full=True,
            uptime_s=int(time.time() - psutil.boot_time()),
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_percent=psutil.virtual_memory().percent,
            disk_percent=psutil.disk_usage("/").percent,
            temperature_c=_temperature(),
            network=Network(type=network_type(psutil.net_if_stats())),
            agent_version=__version__,
            os=self._os,
            hardware_model=self._model,
            outbox_backlog=0,
            peripherals=peripherals,
            items=self._items(peripherals) if self._items is not None else None,
        )


def operating_system() -> str:
    """The OS's own name for itself (os-release's PRETTY_NAME), else the kernel's name."""
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:  # not a systemd-era Linux
        pretty = ""
    return pretty or f"{platform.system()} {platform.release()}".strip()


def hardware_model(dmi: Path = Path("/sys/class/dmi/id")) -> str:
    """The maker's name for the machine (DMI vendor and product), or "" where there is none."""
    parts = []
    for name in ("sys_vendor", "product_name"):
        try:
            parts.append((dmi / name).read_text(errors="replace").strip())
        except OSError:  # no DMI (ARM boards, containers)
            continue
    return " ".join(part for part in parts if part)


# Linux interface names by kind (systemd's predictable names and the classic ones), in the order
# a terminal with several links normally routes through them.
_INTERFACE_KINDS = (
    (("en", "eth"), NetworkType.ETHERNET),
    (("wl", "wlan"), NetworkType.WIFI),
    (("wwan", "ppp", "usb", "rmnet"), NetworkType.CELLULAR_4G),
)


def network_type(interfaces: Mapping[str, Any]) -> NetworkType:
    """The kind of link in use, told by the names of the interfaces that are up.

    A cellular modem is reported as 4G: telling 4G from 5G needs the modem's own interface.
    """
    for prefixes, kind in _INTERFACE_KINDS:
        for name, stats in sorted(interfaces.items()):
            if getattr(stats, "isup", False) and name.startswith(prefixes):
                return kind
    return NetworkType.UNKNOWN


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
    # __struct_fields__, not msgspec.structs.fields: that evaluates the annotations each call.
    for name in Heartbeat.__struct_fields__:
        if name in _DIFF_EXEMPT:
            continue
        value = getattr(current, name)
        if value != getattr(previous, name):
            changes[name] = value
    return Heartbeat(session=current.session, seq=current.seq, at=current.at, full=False, **changes)
