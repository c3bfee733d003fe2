"""The peripherals every driver contract test runs against: a driver and its virtual device.

Each driver module adds one ``ContractCase`` to ``CONTRACT_CASES``; ``tests/test_peripheral_
contract.py`` runs the same suite (discover, status, unplug/replug, timeout, garbage) on each.
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


CONTRACT_CASES: list[ContractCase] = []
