"""A simulated USB bus behind pyusb's backend interface, with virtual peripherals on it.

The drivers cannot tell it from libusb: they find devices with ``usb.core.find``, read their
descriptors and talk to their endpoints. Tests and the demo's simulated terminals use it; faults
(unplug, timeout, stall, garbage) are injected per device.
"""

from .backend import SimulatedBackend
from .device import Fault, Setup, VirtualDevice, VirtualEndpoint, VirtualInterface
from .dfu_device import VirtualDfuPeripheral
from .id_reader import VirtualIdCardReader
from .presence import VirtualPresenceDevice
from .printer import VirtualReceiptPrinter
from .review_pad import VirtualReviewPad

__all__ = [
    "Fault",
    "Setup",
    "SimulatedBackend",
    "VirtualDevice",
    "VirtualDfuPeripheral",
    "VirtualEndpoint",
    "VirtualIdCardReader",
    "VirtualInterface",
    "VirtualPresenceDevice",
    "VirtualReceiptPrinter",
    "VirtualReviewPad",
]
