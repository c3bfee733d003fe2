"""The ID-card reader's contract case, and its driver opened over a virtual reader for tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from firmware_bridge.drivers.id_reader import ID_CARD_READER, IdCardReaderDriver
from firmware_bridge.simulated import SimulatedBackend
from firmware_bridge.simulated.id_reader import SAMPLE_CARD, VirtualIdCardReader
from firmware_bridge.transport import UsbTransport, find_devices
from tests.support.peripherals import ContractCase

TODAY = date(2030, 6, 1)
"""The terminal's date in these tests: SAMPLE_CARD (valid to 2040-01-01) is valid then."""


def make_reader() -> VirtualIdCardReader:
    """A working reader with the sample card on it, so the self-test passes."""
    return VirtualIdCardReader(card=SAMPLE_CARD)


CONTRACT_CASE = ContractCase(id="id_card_reader", spec=ID_CARD_READER, make_device=make_reader)


@dataclass
class ReaderRig:
    """A virtual reader on a simulated bus and the driver that opened it."""

    device: VirtualIdCardReader
    backend: SimulatedBackend
    driver: IdCardReaderDriver

    def reopen(self) -> None:
        """Rediscover the device and open a new driver, as the bridge does after a replug."""
        self.driver.close()
        self.driver = _open(self.backend, self.driver.name)


def open_reader(device: VirtualIdCardReader | None = None) -> ReaderRig:
    device = device if device is not None else make_reader()
    backend = SimulatedBackend([device])
    return ReaderRig(device, backend, _open(backend, "idreader0"))


def _open(backend: SimulatedBackend, name: str) -> IdCardReaderDriver:
    found = find_devices(backend, ID_CARD_READER.default_ids)
    transport = UsbTransport.open(found[0], ID_CARD_READER.interface)
    return IdCardReaderDriver(transport, name, today=lambda: TODAY)
