"""The agent's firmware flasher: a verified ``.dfu`` image into one peripheral, over DFU 1.1.

The package manager (``package_target``) calls ``flash`` in a worker thread once a firmware
package is verified and its install permission allows (never in a citizen session). The
peripheral's slot lends its device for the update (``PeripheralBridge.lend``): the monitor's
polls go on meanwhile and report it ``updating_firmware``; afterwards the slot opens it again
and the next poll reports the firmware it runs. Imported only by an agent with peripherals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import usb.backend

from firmware_bridge.bridge import PeripheralBridge
from firmware_bridge.codecs.dfu import WILDCARD_ID, DfuFileError, parse_dfu_file
from firmware_bridge.dfu import (
    FirmwareUpdateError,
    UpdateResult,
    UpdateStage,
    devices_in_dfu_mode,
    update_firmware,
)
from firmware_bridge.errors import PeripheralError
from firmware_bridge.usb_ids import UsbId

log = logging.getLogger(__name__)

KNOWN_DFU_MODE_IDS: tuple[UsbId, ...] = (
    UsbId(0x1209, 0x7D11),  # termfleet's simulated DFU peripheral (pid.codes test id)
    UsbId(0x0483, 0xDF11),  # STMicroelectronics' STM32 system boot loader
)
"""Ids peripherals take in DFU mode besides their own: a device in DFU mode may enumerate as
its boot loader, with another product id (DFU 1.1 §4.2)."""


def expected_release(image: bytes) -> int | None:
    """The release the image's DFU suffix names (bcdDevice), or None for the 0xFFFF wildcard.

    termfleet's firmware packages put the new firmware's release there, so a device that
    comes back on its old firmware (a manifestation that failed silently) is caught.
    """
    try:
        release = parse_dfu_file(image).suffix.device_release
    except DfuFileError as exc:
        raise FirmwareUpdateError(UpdateStage.FILE, str(exc)) from exc
    return None if release == WILDCARD_ID else release


class DfuFlasher:
    """Flashes the bridge's DFU-capable peripherals, one at a time (``FirmwareFlasher``)."""

    def __init__(
        self,
        bridge: PeripheralBridge,
        *,
        dfu_ids: Mapping[str, Sequence[UsbId]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._bridge = bridge
        self._dfu_ids = dict(dfu_ids or {})
        """Per peripheral, the ids it takes in DFU mode; others use KNOWN_DFU_MODE_IDS."""
        self._sleep = sleep
        # The device in DFU mode is found again by its ids alone, so two updates at once could
        # each take the other's device for their own.
        self._one_at_a_time = threading.Lock()

    def peripherals(self) -> frozenset[str]:
        """The peripherals whose device has a DFU run-time interface that can download."""
        return self._bridge.updatable()

    def flash(self, peripheral: str, image: bytes) -> None:
        """Flash ``image`` (a DFU file) into ``peripheral``; FirmwareUpdateError with the stage.

        On any failure the peripheral runs its old firmware and is back in service.
        """
        expect = expected_release(image)  # a broken file is refused before the device is lent
        started = time.monotonic()
        with self._one_at_a_time:
            try:
                result = self._bridge.lend(
                    peripheral,
                    lambda backend, usb_id: self._update(
                        backend, usb_id, peripheral, image, expect
                    ),
                )
            except FirmwareUpdateError:
                raise
            except (PeripheralError, KeyError) as exc:  # absent, no access, not a slot here
                raise FirmwareUpdateError(UpdateStage.FIND, _message(exc)) from exc
        log.info(
            "%s: firmware %#06x → %#06x (%d bytes in %d blocks) in %.1f s",
            peripheral,
            result.old_version,
            result.new_version,
            result.bytes_written,
            result.blocks,
            time.monotonic() - started,
        )

    def _update(
        self,
        backend: usb.backend.IBackend,
        usb_id: UsbId,
        peripheral: str,
        image: bytes,
        expect: int | None,
    ) -> UpdateResult:
        mode_ids = (usb_id, *self._dfu_ids.get(peripheral, KNOWN_DFU_MODE_IDS))
        waiting = devices_in_dfu_mode(backend, mode_ids)
        if waiting:
            ids = ", ".join(map(str, waiting))
            detail = f"a device in DFU mode ({ids}) is on the bus already; it could be taken "
            detail += f"for {peripheral}"
            raise FirmwareUpdateError(UpdateStage.FIND, detail)
        if expect is None:
            log.warning("%s: the firmware file names no release to check it by", peripheral)
        return update_firmware(
            backend, usb_id, image, dfu_ids=mode_ids, sleep=self._sleep, expect_version=expect
        )


def _message(exc: Exception) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
