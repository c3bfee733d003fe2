"""Firmware update (固件升级) of a peripheral over USB DFU 1.1: the thin IO loop.

``update_firmware`` verifies the file, detaches the device into DFU mode, downloads, manifests,
resets it and checks the release it comes back with. Any failure once the device is in DFU mode
clears its error, aborts and resets it, so it boots its old firmware (DFU 1.1 §6.1.3, §6.1.5).
What to send next and what an answer means is decided by the pure planner in ``codecs.dfu_plan``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import usb.backend
import usb.core

from .codecs.dfu import (
    BLOCK_NUMBER_MODULO,
    DFU_INTERFACE_CLASS,
    DFU_INTERFACE_SUBCLASS,
    PROTOCOL_DFU_MODE,
    PROTOCOL_RUNTIME,
    REQUEST_TYPE_IN,
    REQUEST_TYPE_OUT,
    STATUS_LENGTH,
    DfuFile,
    DfuFileError,
    DfuRequest,
    DfuState,
    DfuStatus,
    DfuStatusCode,
    FunctionalDescriptor,
    decode_status,
    find_functional_descriptor,
    parse_dfu_file,
)
from .codecs.dfu_plan import (
    Block,
    Reaction,
    Verdict,
    after_block,
    after_manifest,
    plan_blocks,
    requests_to_idle,
)
from .errors import NoAnswerError, PeripheralError, PeripheralGoneError, StalledError
from .transport import UsbTransport, find_devices, usb_errors
from .usb_ids import UsbId

MAX_STATUS_POLLS = 200  # DFU_GETSTATUS answers saying "busy" before we call the device wedged
ENUMERATION_ATTEMPTS = 20  # looks for the device after a reset, ENUMERATION_WAIT_S apart
ENUMERATION_WAIT_S = 0.25

Progress = Callable[[int, int], None]
"""Called with (bytes the device accepted, bytes to download) after each block."""


class UpdateStage(enum.Enum):
    FILE = "file"
    FIND = "find"
    DETACH = "detach"
    DOWNLOAD = "download"
    MANIFEST = "manifest"
    VERIFY = "verify"


class FirmwareUpdateError(PeripheralError):
    """An update that failed at ``stage`` (and ``block``), with the device's status if known."""

    reason = "firmware_update_failed"

    def __init__(
        self,
        stage: UpdateStage,
        detail: str,
        *,
        block: int | None = None,
        status: DfuStatusCode | None = None,
    ) -> None:
        where = f"download block {block}" if block is not None else stage.value
        said = f"; device status {status.name}: {status.meaning}" if status else ""
        super().__init__(f"firmware update failed at {where}: {detail}{said}")
        self.stage, self.block, self.status = stage, block, status


@dataclass(frozen=True)
class UpdateResult:
    device: UsbId
    old_version: int
    new_version: int
    bytes_written: int
    blocks: int


def file_matches(dfu_file: DfuFile, devices: Sequence[UsbId]) -> bool:
    """Whether the file's suffix names one of the ids the device goes by (Appendix B)."""
    return any(dfu_file.suffix.matches(device) for device in devices)


# --- the IO loop ---------------------------------------------------------------------------------


class _Session:
    """The claimed DFU interface of a device in DFU mode; every call raises PeripheralError."""

    def __init__(self, transport: UsbTransport, sleep: Callable[[float], None]) -> None:
        self.transport, self.sleep = transport, sleep
        self.last_state: DfuState | None = None

    def send(self, request: DfuRequest, value: int = 0, data: bytes = b"") -> None:
        index = self.transport.interface
        self.transport.control_out(REQUEST_TYPE_OUT, request, value, index, data)

    def status(self) -> DfuStatus:
        index = self.transport.interface
        answer = self.transport.control_in(
            REQUEST_TYPE_IN, DfuRequest.GETSTATUS, 0, index, STATUS_LENGTH
        )
        status = decode_status(answer)
        self.last_state = status.state
        return status

    def await_status(self, judge: Callable[[DfuStatus], Reaction]) -> tuple[DfuStatus, Reaction]:
        """Ask DFU_GETSTATUS until ``judge`` is no longer WAIT, honouring bwPollTimeout."""
        for _ in range(MAX_STATUS_POLLS):
            status = self.status()
            reaction = judge(status)
            if reaction.verdict is not Verdict.WAIT:
                return status, reaction
            self.sleep(reaction.wait_ms / 1000)
        return status, Reaction(Verdict.FAILED, problem="the device stayed busy")


_Found = tuple[usb.core.Device, int, FunctionalDescriptor]
"""A device, the number of its DFU interface, and that interface's functional descriptor."""


@dataclass
class _Cursor:
    """Where the update is, so that an error from the bus names its stage and block."""

    stage: UpdateStage
    block: int | None = None


def update_firmware(  # noqa: PLR0913 - one operation's keyword-only options
    backend: usb.backend.IBackend,
    ids: UsbId | Sequence[UsbId],
    image: bytes,
    *,
    dfu_ids: UsbId | Sequence[UsbId] | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    expect_version: int | None = None,
) -> UpdateResult:
    """Flash the DFU file ``image`` into the one device with ``ids``; FirmwareUpdateError if not.

    ``dfu_ids`` are the ids it enumerates with in DFU mode (default: ``ids``); ``expect_version``
    is the bcdDevice the new firmware must report. Nothing touches the device before the file,
    the device and its DFU interface have been checked.
    """
    runtime_ids = _id_tuple(ids)
    mode_ids = _id_tuple(dfu_ids) if dfu_ids is not None else runtime_ids
    try:
        dfu_file = parse_dfu_file(image)
    except DfuFileError as exc:
        raise FirmwareUpdateError(UpdateStage.FILE, str(exc)) from exc
    device, interface, descriptor = _runtime_device(backend, runtime_ids)
    found = UsbId(device.idVendor, device.idProduct)
    if not file_matches(dfu_file, (found, *mode_ids)):
        suffix = dfu_file.suffix
        target = UsbId(suffix.vendor_id, suffix.product_id)
        raise FirmwareUpdateError(UpdateStage.FILE, f"the file is for {target}, not {found}")
    old_version = int(device.bcdDevice)
    _detach(device, interface, descriptor)
    in_dfu_mode = _await(backend, mode_ids, PROTOCOL_DFU_MODE, sleep, UpdateStage.DETACH)
    blocks = _flash(in_dfu_mode, dfu_file.payload, progress, sleep)
    runtime, _, _ = _await(backend, runtime_ids, PROTOCOL_RUNTIME, sleep, UpdateStage.VERIFY)
    new_version = int(runtime.bcdDevice)
    if expect_version is not None and new_version != expect_version:
        detail = f"the device runs release {new_version:#06x}, not {expect_version:#06x}"
        raise FirmwareUpdateError(UpdateStage.VERIFY, detail)
    return UpdateResult(found, old_version, new_version, len(dfu_file.payload), blocks)


def can_update(device: usb.core.Device) -> bool:
    """Whether ``device`` has a DFU run-time interface that can download (§4.1, bitCanDnload).

    Reads descriptors only (libusb keeps them), so a bridge may ask at every open.
    """
    try:
        found = _dfu_interface(device, PROTOCOL_RUNTIME)
    except PeripheralError:  # gone, or a functional descriptor that is no such thing
        return False
    return found is not None and found[1].can_download


def devices_in_dfu_mode(backend: usb.backend.IBackend, ids: Sequence[UsbId]) -> list[UsbId]:
    """The ids of devices with ``ids`` on the bus in DFU mode now; PeripheralError from the bus.

    ``update_firmware`` takes the first DFU-mode device with its ``dfu_ids`` to be the one it
    detached: a caller with broad ``dfu_ids`` checks there is none before it starts.
    """
    return [
        UsbId(device.idVendor, device.idProduct)
        for device in find_devices(backend, ids)
        if _dfu_interface(device, PROTOCOL_DFU_MODE) is not None
    ]


def _id_tuple(ids: UsbId | Sequence[UsbId]) -> tuple[UsbId, ...]:
    return (ids,) if isinstance(ids, UsbId) else tuple(ids)


def _runtime_device(backend: usb.backend.IBackend, ids: Sequence[UsbId]) -> _Found:
    try:
        candidates = [
            (device, found)
            for device in find_devices(backend, ids)
            if (found := _dfu_interface(device, PROTOCOL_RUNTIME)) is not None
        ]
    except PeripheralError as exc:
        raise FirmwareUpdateError(UpdateStage.FIND, str(exc)) from exc
    if len(candidates) != 1:
        wanted = ", ".join(map(str, ids))
        detail = f"{len(candidates)} devices with a DFU run-time interface match {wanted}"
        raise FirmwareUpdateError(UpdateStage.FIND, detail)
    device, (interface, descriptor) = candidates[0]
    if not descriptor.can_download:
        raise FirmwareUpdateError(UpdateStage.FIND, "the device cannot download (bitCanDnload)")
    return device, interface, descriptor


def _dfu_interface(
    device: usb.core.Device, protocol: int
) -> tuple[int, FunctionalDescriptor] | None:
    """The number and functional descriptor of the device's DFU interface in one mode (§4)."""
    wanted = (DFU_INTERFACE_CLASS, DFU_INTERFACE_SUBCLASS, protocol)
    with usb_errors("reading the configuration descriptor"):
        for configuration in device:
            for interface in configuration:
                kind = (
                    interface.bInterfaceClass,
                    interface.bInterfaceSubClass,
                    interface.bInterfaceProtocol,
                )
                if kind == wanted:
                    extra = bytes(interface.extra_descriptors)
                    return interface.bInterfaceNumber, find_functional_descriptor(extra)
    return None


def _detach(device: usb.core.Device, interface: int, descriptor: FunctionalDescriptor) -> None:
    """DFU_DETACH, then the USB reset unless the device detaches itself (§5.1)."""
    try:
        transport = UsbTransport.open(device, interface)
    except PeripheralError as exc:
        raise FirmwareUpdateError(UpdateStage.DETACH, str(exc)) from exc
    try:
        transport.control_out(
            REQUEST_TYPE_OUT, DfuRequest.DETACH, descriptor.detach_timeout_ms, interface
        )
        if not descriptor.will_detach:
            _reset(transport)
    except PeripheralGoneError:
        if not descriptor.will_detach:
            raise FirmwareUpdateError(UpdateStage.DETACH, "the device left the bus") from None
    except PeripheralError as exc:
        raise FirmwareUpdateError(UpdateStage.DETACH, str(exc)) from exc
    finally:
        transport.close()


def _await(
    backend: usb.backend.IBackend,
    ids: Sequence[UsbId],
    protocol: int,
    sleep: Callable[[float], None],
    stage: UpdateStage,
) -> _Found:
    """The first device with ``ids`` and a DFU interface of ``protocol``, polled a few times."""
    for attempt in range(ENUMERATION_ATTEMPTS):
        if attempt:
            sleep(ENUMERATION_WAIT_S)
        # A device half-way through re-enumeration may vanish while we read it: look again.
        with suppress(PeripheralError):
            for device in find_devices(backend, ids):
                if (found := _dfu_interface(device, protocol)) is not None:
                    return device, *found
    mode = "DFU" if protocol == PROTOCOL_DFU_MODE else "run-time"
    detail = f"the device did not come back in {mode} mode ({', '.join(map(str, ids))})"
    raise FirmwareUpdateError(stage, detail)


def _flash(
    found: _Found, payload: bytes, progress: Progress | None, sleep: Callable[[float], None]
) -> int:
    """Download and manifest ``payload`` into a DFU-mode device, then reset it; its blocks."""
    device, interface, descriptor = found
    cursor = _Cursor(UpdateStage.DETACH)
    try:
        transport = UsbTransport.open(device, interface)
    except PeripheralError as exc:
        raise FirmwareUpdateError(UpdateStage.DETACH, str(exc)) from exc
    session = _Session(transport, sleep)
    blocks = plan_blocks(payload, descriptor.transfer_size)
    try:
        _to_idle(session)
        cursor.stage = UpdateStage.DOWNLOAD
        for block in blocks:
            cursor.block = block.number
            _download(session, block)
            if progress is not None:
                progress(block.done, len(payload))
        cursor.stage, cursor.block = UpdateStage.MANIFEST, None
        _manifest(session, len(blocks) % BLOCK_NUMBER_MODULO, descriptor)
        _reset(transport)
    except BaseException as exc:
        # Whatever went wrong (the bus, the device, a progress callback, Ctrl-C), the device
        # must not stay in DFU mode with half an image.
        reported = _recover(session)
        if isinstance(exc, FirmwareUpdateError) or not isinstance(exc, PeripheralError):
            raise
        raise FirmwareUpdateError(
            cursor.stage, str(exc), block=cursor.block, status=reported
        ) from exc
    finally:
        transport.close()
    return len(blocks)


def _download(session: _Session, block: Block) -> None:
    session.send(DfuRequest.DNLOAD, block.number, block.data)
    status, reaction = session.await_status(after_block)
    if reaction.verdict is Verdict.FAILED:
        raise FirmwareUpdateError(
            UpdateStage.DOWNLOAD, reaction.problem, block=block.number, status=_error(status)
        )


def _manifest(session: _Session, block_number: int, descriptor: FunctionalDescriptor) -> None:
    """The zero-length DFU_DNLOAD that ends the transfer, then the wait for manifestation (§7)."""
    session.send(DfuRequest.DNLOAD, block_number)
    try:
        status, reaction = session.await_status(after_manifest)
    except (NoAnswerError, StalledError, PeripheralGoneError):
        # A device that is not manifestation-tolerant may fall silent once in dfuMANIFEST (§7);
        # the reset follows, and the verify stage checks the release it boots.
        if descriptor.manifestation_tolerant or session.last_state is not DfuState.DFU_MANIFEST:
            raise
        return
    if reaction.verdict is Verdict.FAILED:
        raise FirmwareUpdateError(UpdateStage.MANIFEST, reaction.problem, status=_error(status))


def _to_idle(session: _Session) -> DfuStatus:
    """Bring the device to dfuIDLE (or the reset it waits for); the first status it gave."""
    first: DfuStatus | None = None
    for _ in range(MAX_STATUS_POLLS):
        status = session.status()
        first = first or status
        requests = requests_to_idle(status.state)
        if requests is None:
            session.sleep(status.poll_timeout_ms / 1000)
            continue
        for request in requests:
            session.send(request)
        return first
    msg = "the device stayed busy"
    raise PeripheralError(msg, reason="busy")


def _recover(session: _Session) -> DfuStatusCode | None:
    """Clear, abort and reset, so the device boots its old firmware; the error it reported."""
    reported = None
    with suppress(PeripheralError):
        reported = _error(_to_idle(session))
    with suppress(PeripheralError):
        _reset(session.transport)
    return reported


def _reset(transport: UsbTransport) -> None:
    # A device that switches mode re-enumerates, so the old handle's device is gone: expected.
    with suppress(PeripheralGoneError):
        transport.reset()


def _error(status: DfuStatus) -> DfuStatusCode | None:
    return status.status if status.status is not DfuStatusCode.OK else None
