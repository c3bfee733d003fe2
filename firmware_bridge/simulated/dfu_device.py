"""A virtual peripheral that updates its firmware over USB DFU 1.1, faults included.

In run-time mode it enumerates with its application's product id, a vendor interface and a DFU
run-time interface; after DFU_DETACH and a USB reset it comes back in DFU mode with another
product id. It walks the state diagram of Appendix A, stalls what the diagram does not allow,
asks for bwPollTimeout (checked against an injected clock), and keeps its old firmware until
manifestation succeeds. Tests inject a device status at any block or at manifestation.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import ClassVar

from firmware_bridge.codecs.dfu import (
    BLOCK_NUMBER_MODULO,
    DFU_INTERFACE_CLASS,
    DFU_INTERFACE_SUBCLASS,
    PROTOCOL_DFU_MODE,
    PROTOCOL_RUNTIME,
    REQUEST_TYPE_IN,
    REQUEST_TYPE_OUT,
    DfuRequest,
    DfuState,
    DfuStatus,
    DfuStatusCode,
    FunctionalDescriptor,
)

from .device import (
    TRANSFER_BULK,
    Fault,
    Setup,
    StallRequest,
    VirtualDevice,
    VirtualEndpoint,
    VirtualInterface,
)

RUNTIME_PRODUCT_ID = 0x7D10
DFU_PRODUCT_ID = 0x7D11
BOOTLOADER_RELEASE = 0x0001  # bcdDevice in DFU mode: the boot loader's, not the application's
_IMAGE_HEADER = struct.Struct("<3sHH")
_IMAGE_MAGIC = b"TFW"
_ACCEPTING = frozenset({DfuState.DFU_IDLE, DfuState.DFU_DNLOAD_IDLE})
_ABORTABLE = frozenset({DfuState.DFU_IDLE, DfuState.DFU_DNLOAD_IDLE, DfuState.DFU_UPLOAD_IDLE})


class Mode(enum.Enum):
    RUNTIME = "runtime"
    DFU = "dfu"


@dataclass(frozen=True)
class Firmware:
    """What the device runs: its release (bcdDevice) and the image it was flashed with."""

    version: int
    image: bytes


def firmware_image(version: int, body: bytes = b"", product_id: int = RUNTIME_PRODUCT_ID) -> bytes:
    """An image this device accepts: magic, target product id and release, then the body."""
    return _IMAGE_HEADER.pack(_IMAGE_MAGIC, product_id, version) + body


class VirtualDfuPeripheral(VirtualDevice):
    """A DFU-capable peripheral; ``firmware``, ``mode`` and ``state`` are for tests to read."""

    vendor_id = 0x1209
    product_id = RUNTIME_PRODUCT_ID
    manufacturer = "termfleet"
    product = "virtual DFU peripheral"
    dfu_product_id: ClassVar[int] = DFU_PRODUCT_ID
    runtime_dfu_interface: ClassVar[int] = 1

    def __init__(
        self,
        *,
        version: int = 0x0100,
        body: bytes = b"old firmware",
        transfer_size: int = 64,
        poll_timeout_ms: int = 20,
        manifestation_tolerant: bool = True,
        will_detach: bool = False,
        silent_in_manifest: bool = False,
        clock: Callable[[], float] | None = None,
        serial: str = "DFU0001",
    ) -> None:
        super().__init__(serial=serial)
        self.firmware = Firmware(version, firmware_image(version, body))
        self.descriptor = FunctionalDescriptor(
            can_download=True,
            can_upload=False,
            manifestation_tolerant=manifestation_tolerant,
            will_detach=will_detach,
            detach_timeout_ms=1000,
            transfer_size=transfer_size,
        )
        self.poll_timeout_ms = poll_timeout_ms
        self.silent_in_manifest = silent_in_manifest
        """Answer nothing from dfuMANIFEST on, as some devices that are not
        manifestation-tolerant do (§7): the host must reset them without a last status."""
        self.mode = Mode.RUNTIME
        self.state = DfuState.APP_IDLE
        self.status = DfuStatusCode.OK
        self.requests: list[tuple[Mode, DfuRequest]] = []
        """Every DFU request the device received, in order."""
        self.bus_resets = 0
        """USB resets the host sent (a device that detaches itself needs one fewer)."""
        self.on_block: Callable[[int], None] | None = None
        """Called with the number of each block the device took (a test unplugs it mid-way)."""
        self._clock = clock
        self._deadline = 0.0
        self._staged = bytearray()
        self._next_block = 0
        self._block_written = False
        self._manifested = False
        self._switching = False
        self._ignore_detach = False
        self._entry_status = DfuStatusCode.OK
        self._block_failures: dict[int, DfuStatusCode] = {}
        self._stalled_blocks: set[int] = set()
        self._end_failure = DfuStatusCode.OK
        self._manifest_failure = DfuStatusCode.OK

    # --- what tests call ---------------------------------------------------------------------

    def fail_at(self, *, block: int, status: DfuStatusCode) -> None:
        """Report ``status`` (and enter dfuERROR) when programming block ``block``."""
        self._block_failures[block] = status

    def fail_manifest(self, status: DfuStatusCode) -> None:
        """Report ``status`` when manifestation ends, keeping the old firmware."""
        self._manifest_failure = status

    def fail_end_of_download(self, status: DfuStatusCode = DfuStatusCode.ERR_NOTDONE) -> None:
        """Stall the zero-length DFU_DNLOAD, as a device that misses data does (A.2.6)."""
        self._end_failure = status

    def stall_block(self, block: int) -> None:
        """Stall the DFU_DNLOAD of ``block`` as an unexpected request (errSTALLEDPKT)."""
        self._stalled_blocks.add(block)

    def ignore_detach(self) -> None:
        """Accept DFU_DETACH but never come back in DFU mode (a broken boot loader)."""
        self._ignore_detach = True

    def enter_dfu_in_error(self, status: DfuStatusCode) -> None:
        """Arrive in DFU mode already in dfuERROR with ``status`` (e.g. errPOR)."""
        self._entry_status = status

    @property
    def staged(self) -> bytes:
        """What the host downloaded so far and the device has not committed."""
        return bytes(self._staged)

    # --- descriptors ---------------------------------------------------------------------------

    def device_release(self) -> int:
        return self.firmware.version if self.mode is Mode.RUNTIME else BOOTLOADER_RELEASE

    def ids(self) -> tuple[int, int]:
        if self.mode is Mode.DFU:
            return self.vendor_id, self.dfu_product_id
        return self.vendor_id, self.product_id

    def strings(self) -> tuple[str, str, str]:
        product = self.product if self.mode is Mode.RUNTIME else f"{self.product} (DFU mode)"
        return self.manufacturer, product, self.serial

    def current_interfaces(self) -> tuple[VirtualInterface, ...]:
        extra = self.descriptor.encode()
        if self.mode is Mode.DFU:
            dfu = VirtualInterface(
                0, DFU_INTERFACE_CLASS, DFU_INTERFACE_SUBCLASS, PROTOCOL_DFU_MODE, extra=extra
            )
            return (dfu,)
        endpoints = (VirtualEndpoint(0x01, TRANSFER_BULK), VirtualEndpoint(0x81, TRANSFER_BULK))
        runtime = VirtualInterface(
            self.runtime_dfu_interface,
            DFU_INTERFACE_CLASS,
            DFU_INTERFACE_SUBCLASS,
            PROTOCOL_RUNTIME,
            extra=extra,
        )
        return (VirtualInterface(0, 0xFF, endpoints=endpoints), runtime)

    # --- bus events ---------------------------------------------------------------------------

    def reset(self) -> None:
        self.bus_resets += 1
        self._after_reset()

    def _after_reset(self) -> None:
        if self.mode is Mode.DFU:
            if self.state is DfuState.DFU_MANIFEST:
                # Manifestation ends before the reset takes effect, or is cut short by it.
                with suppress(StallRequest):
                    self._settle()
                if self.silent_in_manifest:
                    self.clear_faults()
            # Committed firmware is always whole (the staged image is only copied on success),
            # so a reset in any DFU state boots the application (A.2, "USB reset").
            self._enter(Mode.RUNTIME, DfuState.APP_IDLE, DfuStatusCode.OK)
        elif self.state is DfuState.APP_DETACH and not self._ignore_detach:
            state = DfuState.DFU_ERROR if self._entry_status else DfuState.DFU_IDLE
            self._enter(Mode.DFU, state, self._entry_status)
        else:
            self.state = DfuState.APP_IDLE

    def attach(self, reenumerate: Callable[[VirtualDevice], None] | None) -> None:
        if reenumerate is None and not self._switching:
            # Off the bus without a mode switch: power is lost and the application boots again.
            self._enter(Mode.RUNTIME, DfuState.APP_IDLE, DfuStatusCode.OK)
        if reenumerate is not None:
            self._switching = False
        super().attach(reenumerate)

    def _enter(self, mode: Mode, state: DfuState, status: DfuStatusCode) -> None:
        self._switching = mode is not self.mode
        self.mode, self.state, self.status = mode, state, status
        self._staged.clear()
        self._next_block = 0
        self._manifested = False

    # --- requests -----------------------------------------------------------------------------

    def handle_control_out(self, setup: Setup, data: bytes) -> None:
        request = self._request(setup, REQUEST_TYPE_OUT)
        if self.mode is Mode.RUNTIME:
            self._runtime_out(request)
            return
        self._settle()
        if request is DfuRequest.DNLOAD and data:
            self._download(setup.value, data)
        elif request is DfuRequest.DNLOAD and self.state is DfuState.DFU_DNLOAD_IDLE:
            if self._end_failure:
                self._fail(self._end_failure)
                raise StallRequest
            self.state = DfuState.DFU_MANIFEST_SYNC
        elif request is DfuRequest.CLRSTATUS and self.state is DfuState.DFU_ERROR:
            self.state, self.status = DfuState.DFU_IDLE, DfuStatusCode.OK
        elif request is DfuRequest.ABORT and self.state in _ABORTABLE:
            self.state = DfuState.DFU_IDLE
            self._staged.clear()
            self._next_block = 0
        else:
            self._unexpected()

    def handle_control_in(self, setup: Setup) -> bytes:
        request = self._request(setup, REQUEST_TYPE_IN)
        if self.mode is Mode.RUNTIME:
            if request is DfuRequest.GETSTATUS:
                return DfuStatus(DfuStatusCode.OK, 0, self.state).encode()
            if request is DfuRequest.GETSTATE:
                return bytes([self.state])
            self.state = DfuState.APP_IDLE
            raise StallRequest
        self._settle()
        if request is DfuRequest.GETSTATE:
            return bytes([self.state])
        if request is DfuRequest.GETSTATUS:
            return self._status().encode()
        return self._unexpected()

    def _request(self, setup: Setup, request_type: int) -> DfuRequest:
        interface = self.runtime_dfu_interface if self.mode is Mode.RUNTIME else 0
        if setup.request_type != request_type or setup.index != interface:
            raise StallRequest
        try:
            request = DfuRequest(setup.request)
        except ValueError:
            raise StallRequest from None
        self.requests.append((self.mode, request))
        return request

    def _runtime_out(self, request: DfuRequest) -> None:
        if request is not DfuRequest.DETACH or self.state is not DfuState.APP_IDLE:
            self.state = DfuState.APP_IDLE
            raise StallRequest
        self.state = DfuState.APP_DETACH
        if self.descriptor.will_detach and not self._ignore_detach:
            self._after_reset()  # bitWillDetach: the device leaves and returns by itself (§5.1)
            self.reenumerate()

    def _download(self, block: int, data: bytes) -> None:
        if (
            self.state not in _ACCEPTING
            or block != self._next_block
            or len(data) > self.descriptor.transfer_size
            or block in self._stalled_blocks
        ):
            self._unexpected()
        self._staged += data
        self._next_block = (block + 1) % BLOCK_NUMBER_MODULO
        self._block_written = False
        self.state = DfuState.DFU_DNLOAD_SYNC
        if self.on_block is not None:
            self.on_block(block)

    def _status(self) -> DfuStatus:
        if self.state is DfuState.DFU_DNLOAD_SYNC:
            if not self._block_written and self.poll_timeout_ms:
                return self._busy(DfuState.DFU_DNBUSY)
            self._program_block()
            if self.state is DfuState.DFU_DNLOAD_SYNC:
                self.state = DfuState.DFU_DNLOAD_IDLE
        elif self.state is DfuState.DFU_MANIFEST_SYNC:
            if not self._manifested and self.poll_timeout_ms:
                if self.silent_in_manifest:
                    self.inject(Fault.TIMEOUT)
                return self._busy(DfuState.DFU_MANIFEST)
            self._manifest()
            if self.state is DfuState.DFU_MANIFEST_SYNC:
                self.state = DfuState.DFU_IDLE
        return DfuStatus(self.status, 0, self.state)

    def _busy(self, state: DfuState) -> DfuStatus:
        self.state = state
        self._deadline = self._now() + self.poll_timeout_ms / 1000
        return DfuStatus(DfuStatusCode.OK, self.poll_timeout_ms, state)

    def _settle(self) -> None:
        """Finish the work of a busy state once its poll timeout has passed (A.2.5, A.2.8)."""
        if self.state not in {DfuState.DFU_DNBUSY, DfuState.DFU_MANIFEST}:
            return
        if self._now() < self._deadline:
            self._unexpected()  # the host did not wait bwPollTimeout: any request is an error
        if self.state is DfuState.DFU_DNBUSY:
            self.state = DfuState.DFU_DNLOAD_SYNC
            self._program_block()
        else:
            self.state = DfuState.DFU_MANIFEST_SYNC
            self._manifest()

    def _program_block(self) -> None:
        if self._block_written:
            return
        self._block_written = True
        failure = self._block_failures.get((self._next_block - 1) % BLOCK_NUMBER_MODULO)
        if failure:
            self._fail(failure)

    def _manifest(self) -> None:
        if self._manifested:
            return
        self._manifested = True
        failure = self._manifest_failure or self._image_problem()
        if failure:
            self._fail(failure)
            return
        version = _IMAGE_HEADER.unpack_from(self._staged)[2]
        self.firmware = Firmware(version, bytes(self._staged))
        if not self.descriptor.manifestation_tolerant:
            self.state = DfuState.DFU_MANIFEST_WAIT_RESET

    def _image_problem(self) -> DfuStatusCode:
        if len(self._staged) < _IMAGE_HEADER.size:
            return DfuStatusCode.ERR_FILE
        magic, product_id, _ = _IMAGE_HEADER.unpack_from(self._staged)
        if magic != _IMAGE_MAGIC:
            return DfuStatusCode.ERR_FILE
        return DfuStatusCode.OK if product_id == self.product_id else DfuStatusCode.ERR_TARGET

    def _fail(self, status: DfuStatusCode) -> None:
        self.state, self.status = DfuState.DFU_ERROR, status

    def _unexpected(self) -> bytes:
        """A request the state diagram does not allow: STALL, and dfuERROR/errSTALLEDPKT."""
        if self.state is not DfuState.DFU_ERROR:
            self._fail(DfuStatusCode.ERR_STALLEDPKT)
        raise StallRequest

    def _now(self) -> float:
        # Without a clock the device assumes the host always waited long enough.
        return self._clock() if self._clock is not None else float("inf")
