"""USB Device Firmware Upgrade 1.1 (DFU, 固件升级) on the wire: requests, states, status, files.

The host's planner (blocks, what each answer means) is ``codecs.dfu_plan``. Pure: bytes in,
values out; every decoder raises ``FrameError`` (or its ``DfuFileError``) and nothing else.
Sections cited are those of "USB Device Class Specification for Device Firmware Upgrade",
revision 1.1.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import TypeVar

from firmware_bridge.errors import FrameError
from firmware_bridge.usb_ids import UsbId

DFU_INTERFACE_CLASS = 0xFE  # application-specific class (§4.1.2)
DFU_INTERFACE_SUBCLASS = 0x01
PROTOCOL_RUNTIME = 0x01  # the interface a running application exposes (§4.1.2)
PROTOCOL_DFU_MODE = 0x02  # the interface of the DFU-mode descriptor set (§4.2.3)
REQUEST_TYPE_OUT = 0x21  # class request, host to device, to an interface (§3)
REQUEST_TYPE_IN = 0xA1  # class request, device to host, to an interface (§3)
FUNCTIONAL_DESCRIPTOR_TYPE = 0x21
FUNCTIONAL_DESCRIPTOR_LENGTH = 9
STATUS_LENGTH = 6
SUFFIX_LENGTH = 16
SUFFIX_SIGNATURE = b"UFD"  # "DFU" backwards, as it sits in the file (Appendix B)
DFU_VERSION_1_0 = 0x0100
WILDCARD_ID = 0xFFFF  # a suffix id that matches any device (Appendix B)
BLOCK_NUMBER_MODULO = 0x10000  # wValue wraps to zero after 65,535 (§6.1.1)

_STATUS = struct.Struct("<B3sBB")
_FUNCTIONAL = struct.Struct("<BBBHHH")
_SUFFIX = struct.Struct("<HHHH3sBI")
_Code = TypeVar("_Code", bound=enum.IntEnum)


class DfuRequest(enum.IntEnum):
    """bRequest of the DFU class requests (§3, Table 3.1)."""

    DETACH = 0
    DNLOAD = 1
    UPLOAD = 2
    GETSTATUS = 3
    CLRSTATUS = 4
    GETSTATE = 5
    ABORT = 6


class DfuState(enum.IntEnum):
    """bState: where the device is in the state diagram (§6.1.2, Appendix A)."""

    APP_IDLE = 0
    APP_DETACH = 1
    DFU_IDLE = 2
    DFU_DNLOAD_SYNC = 3
    DFU_DNBUSY = 4
    DFU_DNLOAD_IDLE = 5
    DFU_MANIFEST_SYNC = 6
    DFU_MANIFEST = 7
    DFU_MANIFEST_WAIT_RESET = 8
    DFU_UPLOAD_IDLE = 9
    DFU_ERROR = 10


class DfuStatusCode(enum.IntEnum):
    """bStatus: the result of the most recent request (§6.1.2)."""

    OK = 0
    ERR_TARGET = 1
    ERR_FILE = 2
    ERR_WRITE = 3
    ERR_ERASE = 4
    ERR_CHECK_ERASED = 5
    ERR_PROG = 6
    ERR_VERIFY = 7
    ERR_ADDRESS = 8
    ERR_NOTDONE = 9
    ERR_FIRMWARE = 10
    ERR_VENDOR = 11
    ERR_USBR = 12
    ERR_POR = 13
    ERR_UNKNOWN = 14
    ERR_STALLEDPKT = 15

    @property
    def meaning(self) -> str:
        """The specification's one-line description, for error messages."""
        return _MEANINGS[self]


_MEANINGS = {
    DfuStatusCode.OK: "no error condition is present",
    DfuStatusCode.ERR_TARGET: "file is not targeted for use by this device",
    DfuStatusCode.ERR_FILE: "file is for this device but fails a vendor-specific verification",
    DfuStatusCode.ERR_WRITE: "device is unable to write memory",
    DfuStatusCode.ERR_ERASE: "memory erase function failed",
    DfuStatusCode.ERR_CHECK_ERASED: "memory erase check failed",
    DfuStatusCode.ERR_PROG: "program memory function failed",
    DfuStatusCode.ERR_VERIFY: "programmed memory failed verification",
    DfuStatusCode.ERR_ADDRESS: "cannot program memory: address out of range",
    DfuStatusCode.ERR_NOTDONE: "zero-length download before the device had all the data",
    DfuStatusCode.ERR_FIRMWARE: "device's firmware is corrupt; it cannot return to run-time",
    DfuStatusCode.ERR_VENDOR: "vendor-specific error (see the status string)",
    DfuStatusCode.ERR_USBR: "device detected unexpected USB reset signalling",
    DfuStatusCode.ERR_POR: "device detected unexpected power-on reset",
    DfuStatusCode.ERR_UNKNOWN: "something went wrong, but the device does not know what",
    DfuStatusCode.ERR_STALLEDPKT: "device stalled an unexpected request",
}

BUSY_STATES = frozenset(
    {
        DfuState.DFU_DNLOAD_SYNC,
        DfuState.DFU_DNBUSY,
        DfuState.DFU_MANIFEST_SYNC,
        DfuState.DFU_MANIFEST,
    }
)
"""States the device leaves on its own once the host has waited bwPollTimeout and asks again."""


@dataclass(frozen=True)
class DfuStatus:
    """The 6-byte answer to DFU_GETSTATUS (§6.1.2)."""

    status: DfuStatusCode
    poll_timeout_ms: int
    """bwPollTimeout: the least time the host waits before the next DFU_GETSTATUS."""
    state: DfuState
    """The state the device enters right after sending this answer."""
    string_index: int = 0

    def encode(self) -> bytes:
        return _STATUS.pack(
            self.status, self.poll_timeout_ms.to_bytes(3, "little"), self.state, self.string_index
        )


def decode_status(data: bytes) -> DfuStatus:
    """A DFU_GETSTATUS answer → DfuStatus; FrameError for a short answer or unknown codes."""
    if len(data) != STATUS_LENGTH:
        msg = f"DFU status is {STATUS_LENGTH} bytes, got {len(data)}"
        raise FrameError(msg)
    status, poll, state, string_index = _STATUS.unpack(data)
    return DfuStatus(
        status=_closed(DfuStatusCode, status, "bStatus"),
        poll_timeout_ms=int.from_bytes(poll, "little"),
        state=_closed(DfuState, state, "bState"),
        string_index=string_index,
    )


def decode_state(data: bytes) -> DfuState:
    """A DFU_GETSTATE answer (one byte, §6.1.4) → DfuState; FrameError otherwise."""
    if len(data) != 1:
        msg = f"DFU state is 1 byte, got {len(data)}"
        raise FrameError(msg)
    return _closed(DfuState, data[0], "bState")


def _closed(kind: type[_Code], value: int, field: str) -> _Code:
    try:
        return kind(value)
    except ValueError:
        # A value the specification does not define means the frame is not DFU at all.
        msg = f"{field} {value} is not defined by DFU 1.1"
        raise FrameError(msg) from None


@dataclass(frozen=True)
class FunctionalDescriptor:
    """The DFU functional descriptor (§4.1.3, Table 4.2), in run-time and DFU mode alike."""

    can_download: bool
    can_upload: bool
    manifestation_tolerant: bool
    """The device still answers after manifestation; otherwise it waits for a USB reset."""
    will_detach: bool
    """The device leaves the bus itself on DFU_DETACH; the host must not reset it (§5.1)."""
    detach_timeout_ms: int
    transfer_size: int
    """wTransferSize: the most bytes one DFU_DNLOAD may carry."""
    dfu_version: int = 0x0110

    def encode(self) -> bytes:
        attributes = (
            self.can_download
            | self.can_upload << 1
            | self.manifestation_tolerant << 2
            | self.will_detach << 3
        )
        return _FUNCTIONAL.pack(
            FUNCTIONAL_DESCRIPTOR_LENGTH,
            FUNCTIONAL_DESCRIPTOR_TYPE,
            attributes,
            self.detach_timeout_ms,
            self.transfer_size,
            self.dfu_version,
        )


def decode_functional_descriptor(data: bytes) -> FunctionalDescriptor:
    """Nine bytes of a DFU functional descriptor → value; FrameError otherwise."""
    if len(data) != FUNCTIONAL_DESCRIPTOR_LENGTH:
        msg = f"DFU functional descriptor is 9 bytes, got {len(data)}"
        raise FrameError(msg)
    length, kind, attributes, detach, transfer, version = _FUNCTIONAL.unpack(data)
    if length != FUNCTIONAL_DESCRIPTOR_LENGTH or kind != FUNCTIONAL_DESCRIPTOR_TYPE:
        msg = f"not a DFU functional descriptor (bLength {length}, type {kind:#04x})"
        raise FrameError(msg)
    if transfer == 0:
        msg = "DFU functional descriptor has wTransferSize 0: no download could make progress"
        raise FrameError(msg)
    return FunctionalDescriptor(
        can_download=bool(attributes & 0x01),
        can_upload=bool(attributes & 0x02),
        manifestation_tolerant=bool(attributes & 0x04),
        will_detach=bool(attributes & 0x08),
        detach_timeout_ms=detach,
        transfer_size=transfer,
        dfu_version=version,
    )


def find_functional_descriptor(extra: bytes) -> FunctionalDescriptor:
    """The DFU functional descriptor among an interface's class-specific descriptors."""
    offset = 0
    while offset + 2 <= len(extra):
        length, kind = extra[offset], extra[offset + 1]
        if length < 2 or offset + length > len(extra):  # noqa: PLR2004 - bLength and bType
            break
        if kind == FUNCTIONAL_DESCRIPTOR_TYPE:
            return decode_functional_descriptor(extra[offset : offset + length])
        offset += length
    msg = "the interface carries no DFU functional descriptor"
    raise FrameError(msg)


class DfuFileError(FrameError):
    """A firmware file refused before the device is touched: no suffix, bad CRC, wrong device."""

    reason = "bad_firmware_file"


@dataclass(frozen=True)
class DfuSuffix:
    """The last 16 bytes of a DFU file (Appendix B); the suffix is never sent to the device."""

    device_release: int
    """bcdDevice: 0xFFFF or the release the file is meant for."""
    product_id: int
    vendor_id: int
    dfu_version: int = DFU_VERSION_1_0
    length: int = SUFFIX_LENGTH

    def matches(self, device: UsbId) -> bool:
        """Whether the file is meant for ``device`` (0xFFFF is a wildcard, Appendix B)."""
        return self.vendor_id in {WILDCARD_ID, device.vendor_id} and self.product_id in {
            WILDCARD_ID,
            device.product_id,
        }


@dataclass(frozen=True)
class DfuFile:
    """A verified DFU file: the bytes to download and what its suffix says."""

    payload: bytes
    suffix: DfuSuffix


def suffix_crc(data: bytes) -> int:
    """The suffix's dwCRC of ``data``: CRC-32 seeded 0xFFFFFFFF, never inverted at the end.

    Appendix B and dfu-util agree on that convention; it is the complement of zlib's CRC-32.
    """
    return zlib.crc32(data) ^ 0xFFFFFFFF


def parse_dfu_file(data: bytes) -> DfuFile:
    """A DFU file → payload and suffix, after checking signature, length and CRC."""
    if len(data) < SUFFIX_LENGTH:
        msg = f"firmware file of {len(data)} bytes is too short for a DFU suffix"
        raise DfuFileError(msg)
    release, product, vendor, version, signature, length, crc = _SUFFIX.unpack(
        data[-SUFFIX_LENGTH:]
    )
    if signature != SUFFIX_SIGNATURE:
        msg = "firmware file has no DFU suffix (signature is not 'UFD')"
        raise DfuFileError(msg)
    if not SUFFIX_LENGTH <= length <= len(data):
        msg = f"DFU suffix length {length} is not between 16 and the file size"
        raise DfuFileError(msg)
    expected = suffix_crc(data[:-4])
    if crc != expected:
        msg = f"DFU file CRC {crc:#010x} does not match its contents ({expected:#010x})"
        raise DfuFileError(msg)
    return DfuFile(
        payload=data[:-length],
        suffix=DfuSuffix(release, product, vendor, version, length),
    )


def build_dfu_file(payload: bytes, suffix: DfuSuffix) -> bytes:
    """``payload`` with a 16-byte DFU suffix and its CRC appended (what dfu-suffix writes)."""
    body = (
        payload
        + _SUFFIX.pack(
            suffix.device_release,
            suffix.product_id,
            suffix.vendor_id,
            suffix.dfu_version,
            SUFFIX_SIGNATURE,
            SUFFIX_LENGTH,
            0,
        )[:-4]
    )
    return body + suffix_crc(body).to_bytes(4, "little")
