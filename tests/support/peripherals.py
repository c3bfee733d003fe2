"""The peripherals every driver contract test runs against: a driver and its virtual device.

Each driver's support module defines one ``ContractCase``; ``tests/test_peripheral_contract.py``
lists them and runs the same suite (discover, status, unplug/replug, timeout, garbage) on each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.driver import DriverSpec
from firmware_bridge.simulated import VirtualDevice


@dataclass(frozen=True)
class ContractCase:
    id: str
    spec: DriverSpec
    make_device: Callable[[], VirtualDevice]
    """A working virtual device that enumerates with ``spec.default_ids[0]``."""
    speaks: bool = True
    """False for presence-only peripherals: no protocol to time out or garble."""
