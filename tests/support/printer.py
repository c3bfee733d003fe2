"""The receipt printer's contract case, and a printer on a simulated bus opened by its driver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from firmware_bridge.drivers.printer import RECEIPT_PRINTER, ReceiptPrinterDriver
from firmware_bridge.simulated import SimulatedBackend
from firmware_bridge.simulated.printer import VirtualReceiptPrinter
from firmware_bridge.transport import UsbTransport, find_devices
from tests.support.peripherals import ContractCase

IDLE = 0x12  # an answer with only its fixed bits (1 and 4) on
NOW = datetime(2024, 5, 6, 9, 30, 15, tzinfo=UTC)
"""The moment test pages are printed at, so their text is known."""

CONTRACT_CASE = ContractCase(
    id="receipt_printer", spec=RECEIPT_PRINTER, make_device=VirtualReceiptPrinter
)


class RecordingPrinter(VirtualReceiptPrinter):
    """A virtual printer that also keeps every OUT transfer as it arrived."""

    def __init__(self, *, roll_lines: int | None = None, near_end_lines: int = 20) -> None:
        super().__init__(roll_lines=roll_lines, near_end_lines=near_end_lines)
        self.writes: list[bytes] = []

    def handle_out(self, endpoint: int, data: bytes) -> None:
        self.writes.append(data)
        super().handle_out(endpoint, data)


@dataclass
class PrinterOnBus:
    device: VirtualReceiptPrinter
    backend: SimulatedBackend
    driver: ReceiptPrinterDriver

    def reopen(self) -> None:
        """Find the device again and open a new driver, as the bridge does after a replug."""
        self.driver.close()
        self.driver = open_driver(self.backend)


def open_driver(backend: SimulatedBackend, name: str = "printer0") -> ReceiptPrinterDriver:
    (device,) = find_devices(backend, RECEIPT_PRINTER.default_ids)
    driver = RECEIPT_PRINTER.open(UsbTransport.open(device, RECEIPT_PRINTER.interface), name)
    assert isinstance(driver, ReceiptPrinterDriver)
    return driver


def printer_on_bus(device: VirtualReceiptPrinter | None = None) -> PrinterOnBus:
    """``device`` (a fresh virtual printer by default) plugged in and opened."""
    device = device or VirtualReceiptPrinter()
    backend = SimulatedBackend([device])
    return PrinterOnBus(device, backend, open_driver(backend))
