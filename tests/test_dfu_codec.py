"""DFU 1.1 codec: the specification's tables, known frames, and any bytes from a device or file."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.codecs.dfu import (
    DfuFileError,
    DfuRequest,
    DfuState,
    DfuStatus,
    DfuStatusCode,
    DfuSuffix,
    FunctionalDescriptor,
    build_dfu_file,
    decode_functional_descriptor,
    decode_state,
    decode_status,
    find_functional_descriptor,
    parse_dfu_file,
    suffix_crc,
)
from firmware_bridge.errors import FrameError
from firmware_bridge.usb_ids import UsbId


def test_request_codes_are_the_specifications() -> None:
    assert {r.name: r.value for r in DfuRequest} == {
        "DETACH": 0,
        "DNLOAD": 1,
        "UPLOAD": 2,
        "GETSTATUS": 3,
        "CLRSTATUS": 4,
        "GETSTATE": 5,
        "ABORT": 6,
    }


def test_states_are_numbered_as_in_appendix_a() -> None:
    names = [
        "appIDLE",
        "appDETACH",
        "dfuIDLE",
        "dfuDNLOAD-SYNC",
        "dfuDNBUSY",
        "dfuDNLOAD-IDLE",
        "dfuMANIFEST-SYNC",
        "dfuMANIFEST",
        "dfuMANIFEST-WAIT-RESET",
        "dfuUPLOAD-IDLE",
        "dfuERROR",
    ]
    ours = [state.name.replace("_", "").lower() for state in DfuState]
    assert ours == [name.replace("-", "").lower() for name in names]
    assert [state.value for state in DfuState] == list(range(11))


def test_status_codes_are_numbered_as_in_section_6_1_2() -> None:
    names = [
        "OK", "errTARGET", "errFILE", "errWRITE", "errERASE", "errCHECK_ERASED", "errPROG",
        "errVERIFY", "errADDRESS", "errNOTDONE", "errFIRMWARE", "errVENDOR", "errUSBR", "errPOR",
        "errUNKNOWN", "errSTALLEDPKT",
    ]  # fmt: skip
    assert [code.name.replace("_", "") for code in DfuStatusCode] == [
        name.upper().replace("_", "") for name in names
    ]
    assert [code.value for code in DfuStatusCode] == list(range(16))
    assert all(code.meaning for code in DfuStatusCode)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (bytes([0, 0, 0, 0, 2, 0]), DfuStatus(DfuStatusCode.OK, 0, DfuState.DFU_IDLE)),
        (
            bytes([0, 0x01, 0x02, 0x03, 4, 0]),
            DfuStatus(DfuStatusCode.OK, 0x030201, DfuState.DFU_DNBUSY),
        ),
        (
            bytes([3, 0xE8, 0x03, 0, 10, 7]),
            DfuStatus(DfuStatusCode.ERR_WRITE, 1000, DfuState.DFU_ERROR, 7),
        ),
        (
            bytes([15, 0xFF, 0xFF, 0xFF, 10, 0]),
            DfuStatus(DfuStatusCode.ERR_STALLEDPKT, 0xFFFFFF, DfuState.DFU_ERROR),
        ),
    ],
)
def test_getstatus_answers_decode(frame: bytes, expected: DfuStatus) -> None:
    assert decode_status(frame) == expected
    assert expected.encode() == frame


@pytest.mark.parametrize(
    "frame",
    [b"", bytes(5), bytes(7), bytes([16, 0, 0, 0, 2, 0]), bytes([0, 0, 0, 0, 11, 0])],
    ids=["empty", "short", "long", "unknown-status", "unknown-state"],
)
def test_getstatus_answers_that_are_not_dfu_are_frame_errors(frame: bytes) -> None:
    with pytest.raises(FrameError):
        decode_status(frame)


@given(st.binary(max_size=12))
def test_any_bytes_decode_to_a_status_or_a_frame_error(frame: bytes) -> None:
    try:
        status = decode_status(frame)
    except FrameError:
        return
    assert len(frame) == 6
    assert status.encode() == frame


@given(st.binary(min_size=6, max_size=6))
def test_any_six_bytes_decode_or_are_refused_for_their_codes(frame: bytes) -> None:
    try:
        status = decode_status(frame)
    except FrameError:
        assert frame[0] > 15 or frame[4] > 10
        return
    assert (status.status, status.state) == (frame[0], frame[4])
    assert status.poll_timeout_ms == int.from_bytes(frame[1:4], "little")


@given(st.binary(max_size=3))
def test_getstate_answers_decode_or_are_frame_errors(frame: bytes) -> None:
    try:
        state = decode_state(frame)
    except FrameError:
        assert len(frame) != 1 or frame[0] > 10
        return
    assert bytes([state]) == frame


def test_a_functional_descriptor_as_an_stm32_boot_loader_sends_it() -> None:
    # bmAttributes 0x0B: can download, can upload, will detach; 255 ms; 2048 bytes; DFU 1.1a.
    frame = bytes([9, 0x21, 0x0B, 0xFF, 0x00, 0x00, 0x08, 0x1A, 0x01])
    descriptor = decode_functional_descriptor(frame)
    assert descriptor == FunctionalDescriptor(
        can_download=True,
        can_upload=True,
        manifestation_tolerant=False,
        will_detach=True,
        detach_timeout_ms=255,
        transfer_size=2048,
        dfu_version=0x011A,
    )
    assert descriptor.encode() == frame


@pytest.mark.parametrize(
    "frame",
    [
        bytes([9, 0x21, 1, 0, 0, 0, 1]),
        bytes([9, 0x24, 1, 0, 0, 0, 1, 0x10, 1]),
        bytes([7, 0x21, 1, 0, 0, 0, 1, 0x10, 1]),
        bytes([9, 0x21, 1, 0, 0, 0, 0, 0x10, 1]),
    ],
    ids=["short", "other-type", "bad-length", "zero-transfer-size"],
)
def test_broken_functional_descriptors_are_frame_errors(frame: bytes) -> None:
    with pytest.raises(FrameError):
        decode_functional_descriptor(frame)


def test_the_functional_descriptor_is_found_after_other_class_descriptors() -> None:
    wanted = FunctionalDescriptor(
        can_download=True,
        can_upload=False,
        manifestation_tolerant=True,
        will_detach=False,
        detach_timeout_ms=1000,
        transfer_size=64,
    )
    other = bytes([5, 0x24, 0, 0x10, 0x01])
    assert find_functional_descriptor(other + wanted.encode()) == wanted
    with pytest.raises(FrameError):
        find_functional_descriptor(other)
    with pytest.raises(FrameError):
        find_functional_descriptor(wanted.encode()[:5])


@given(st.binary(max_size=40))
def test_any_class_descriptors_give_a_functional_descriptor_or_a_frame_error(
    extra: bytes,
) -> None:
    try:
        descriptor = find_functional_descriptor(extra)
    except FrameError:
        return
    assert descriptor.encode() in extra


@given(
    st.builds(
        FunctionalDescriptor,
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.integers(0, 0xFFFF),
        st.integers(1, 0xFFFF),
        st.integers(0, 0xFFFF),
    )
)
def test_functional_descriptors_round_trip(descriptor: FunctionalDescriptor) -> None:
    assert decode_functional_descriptor(descriptor.encode()) == descriptor


def _crc_bit_by_bit(data: bytes) -> int:
    """Appendix B's CRC written out: reflected polynomial 0xEDB88320, seed ~0, no final XOR."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc


def test_the_suffix_crc_follows_the_specifications_convention() -> None:
    # CRC-32's check value over "123456789" is 0xCBF43926; DFU leaves out the final inversion.
    assert suffix_crc(b"123456789") == 0xCBF43926 ^ 0xFFFFFFFF
    assert suffix_crc(b"firmware") == _crc_bit_by_bit(b"firmware")


def test_a_file_made_by_dfu_suffix_parses_to_its_payload_and_ids() -> None:
    suffix = DfuSuffix(device_release=0x0200, product_id=0x7D10, vendor_id=0x1209)
    data = build_dfu_file(b"\x01\x02firmware", suffix)
    assert data[-16:-4] == bytes.fromhex("0002 107d 0912 0001") + b"UFD" + bytes([16])
    assert int.from_bytes(data[-4:], "little") == _crc_bit_by_bit(data[:-4])
    parsed = parse_dfu_file(data)
    assert parsed.payload == b"\x01\x02firmware"
    assert parsed.suffix == suffix


@given(st.binary(max_size=64), st.data())
def test_a_file_with_any_byte_changed_is_refused(payload: bytes, data: st.DataObject) -> None:
    good = build_dfu_file(payload, DfuSuffix(0x0100, 0x7D10, 0x1209))
    position = data.draw(st.integers(0, len(good) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = bytearray(good)
    tampered[position] ^= flip
    with pytest.raises(DfuFileError):
        parse_dfu_file(bytes(tampered))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"UFD" + bytes(10), "too short"),
        (bytes(32), "no DFU suffix"),
        (b"firmware" + bytes(8) + b"UFD" + bytes([16]) + bytes(4), "CRC"),
    ],
)
def test_files_without_a_valid_suffix_are_refused_clearly(data: bytes, words: str) -> None:
    with pytest.raises(DfuFileError, match=words):
        parse_dfu_file(data)


def test_a_suffix_length_below_sixteen_is_refused() -> None:
    body = b"firmware" + bytes(8) + b"UFD" + bytes([12])
    with pytest.raises(DfuFileError, match="length 12"):
        parse_dfu_file(body + suffix_crc(body).to_bytes(4, "little"))


@given(st.binary(max_size=80))
def test_any_bytes_as_a_file_parse_or_are_refused(data: bytes) -> None:
    try:
        parsed = parse_dfu_file(data)
    except DfuFileError:
        return
    assert data.startswith(parsed.payload)
    assert len(parsed.payload) + parsed.suffix.length == len(data)


@pytest.mark.parametrize(
    ("vendor", "product", "matches"),
    [
        (0x1209, 0x7D10, True),
        (0xFFFF, 0x7D10, True),
        (0x1209, 0xFFFF, True),
        (0xFFFF, 0xFFFF, True),
        (0x1209, 0x7D11, False),
        (0x0483, 0x7D10, False),
    ],
)
def test_suffix_ids_match_the_device_or_are_wildcards(
    vendor: int, product: int, *, matches: bool
) -> None:
    suffix = DfuSuffix(0xFFFF, product, vendor)
    assert suffix.matches(UsbId(0x1209, 0x7D10)) is matches
