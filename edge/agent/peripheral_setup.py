"""From the agent's config to a ``PeripheralBridge``: which slots, on which USB bus.

Imported only by an agent that has peripherals: it loads pyusb and every driver.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import usb.backend.libusb1

from edge.protocol import PeripheralKind
from firmware_bridge.bridge import PeripheralBridge, PeripheralSlot
from firmware_bridge.catalog import default_slots, slot
from firmware_bridge.simulated.terminal import SimulatedPeripherals, simulated_peripherals
from firmware_bridge.usb_ids import UsbId

from .config import AgentConfig
from .review_pad import ReviewPadLink


def slots_of(config: AgentConfig) -> tuple[PeripheralSlot, ...]:
    """The config's ``[[usb_peripherals]]``, else its kind's default set; ValueError if unknown."""
    if not config.usb_peripherals:
        return default_slots(config.kind)
    return tuple(
        slot(p.name, p.kind, [UsbId.parse(i) for i in p.ids], presence_only=p.presence_only)
        for p in config.usb_peripherals
    )


def simulated_bridge(config: AgentConfig) -> tuple[PeripheralBridge, SimulatedPeripherals]:
    """A bridge over virtual devices for the config's slots, and those devices (for tests)."""
    slots = slots_of(config)
    simulated = simulated_peripherals(slots, serial_prefix=config.device_id)
    return PeripheralBridge(simulated.backend, slots), simulated


def build_bridge(config: AgentConfig) -> PeripheralBridge:
    """The bridge ``config.peripherals`` asks for; ValueError with the reason when it cannot be."""
    if config.peripherals == "simulated":
        return simulated_bridge(config)[0]
    backend = usb.backend.libusb1.get_backend()
    if backend is None:
        msg = (
            'peripherals = "usb" needs libusb 1.0, which is not installed '
            "(Debian: apt-get install libusb-1.0-0)"
        )
        raise ValueError(msg)
    return PeripheralBridge(backend, slots_of(config))


def review_pad_link(
    bridge: PeripheralBridge, clock: Callable[[], datetime]
) -> ReviewPadLink | None:
    """The link of the terminal's first review pad, if it has one."""
    for slot_ in bridge.slots:
        if slot_.spec.kind is PeripheralKind.REVIEW_PAD:
            return ReviewPadLink(bridge, slot_.name, clock)
    return None
