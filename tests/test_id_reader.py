"""The ID-card reader: SAM frame codec, virtual reader and driver (privacy included)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.national_id import check_character
from edge.protocol import PeripheralKind, PeripheralState
from firmware_bridge.codecs.sam import (
    MAX_LENGTH,
    PHOTO_LENGTH,
    PREAMBLE,
    TEXT_LENGTH,
    Answer,
    Command,
    FrameReader,
    Request,
    Status,
    TextField,
    decode_answer,
    decode_request,
    encode_answer,
    encode_card_data,
    encode_request,
    encode_text,
    mask_number,
    packets,
    split_card_data,
    summarise_text,
    unwrap,
    wrap,
)
from firmware_bridge.drivers.id_reader import (
    CARD_FAILURES,
    ENDPOINT_IN,
    ENDPOINT_OUT,
    READER_ERRORS,
    SAM_FAULTS,
    CardRead,
    ReadOutcome,
)
from firmware_bridge.errors import (
    FrameError,
    NoAnswerError,
    PeripheralError,
    PeripheralGoneError,
    StalledError,
)
from firmware_bridge.simulated import Fault, SimulatedBackend
from firmware_bridge.simulated.id_reader import SAMPLE_CARD, VirtualIdCard, VirtualIdCardReader
from firmware_bridge.transport import UsbTransport, find_devices
from tests.support.id_reader import CONTRACT_CASE, ReaderRig, open_reader

SAMPLE_NUMBER = SAMPLE_CARD.id_number


@pytest.fixture
def rig() -> Iterator[ReaderRig]:
    rig = open_reader()
    yield rig
    rig.driver.close()


def valid_numbers() -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=17, max_size=17).map(lambda d: d + check_character(d))


def answers() -> st.SearchStrategy[Answer]:
    byte = st.integers(0, 255)
    data = st.binary(max_size=MAX_LENGTH - 4)
    return st.builds(Answer, sw3=byte, data=data, sw1=byte, sw2=byte)


def frames() -> st.SearchStrategy[bytes]:
    requests = st.builds(encode_request, st.sampled_from(Command), st.binary(max_size=40))
    return st.one_of(requests, answers().map(encode_answer))


# --- codec: frames as they appear on the wire ------------------------------------------------

# Frames seen in public host programs for these readers; each checksum is the XOR of the rest.
WIRE_REQUESTS = [
    (Command.SAM_STATUS, "aaaaaa9669000311ffed"),
    (Command.FIND_CARD, "aaaaaa96690003200122"),
    (Command.SELECT_CARD, "aaaaaa96690003200221"),
    (Command.READ_TEXT_PHOTO, "aaaaaa96690003300132"),
]
WIRE_ANSWERS = [
    (Answer(Status.OK), "aaaaaa9669000400009094"),
    (Answer(Status.SAM_SELF_CHECK_FAILED), "aaaaaa9669000400006064"),
    (Answer(Status.CARD_FOUND, bytes(4)), "aaaaaa9669000800009f0000000097"),
    (Answer(Status.FIND_FAILED), "aaaaaa9669000400008084"),
    (Answer(Status.OK, bytes(8)), "aaaaaa9669000c00009000000000000000009c"),
    (Answer(Status.READ_FAILED), "aaaaaa9669000400004145"),
]


@pytest.mark.parametrize(("command", "wire"), WIRE_REQUESTS)
def test_requests_are_the_bytes_readers_take(command: Command, wire: str) -> None:
    assert encode_request(command).hex() == wire
    assert decode_request(bytes.fromhex(wire)).command is command


@pytest.mark.parametrize(("answer", "wire"), WIRE_ANSWERS)
def test_answers_are_the_bytes_readers_send(answer: Answer, wire: str) -> None:
    assert encode_answer(answer).hex() == wire
    assert decode_answer(bytes.fromhex(wire)) == answer


def test_a_card_read_answer_is_1295_bytes_with_its_block_lengths() -> None:
    data = encode_card_data(SAMPLE_CARD.text(), SAMPLE_CARD.photo)
    frame = encode_answer(Answer(Status.OK, data))
    assert len(frame) == 1295
    assert frame[5:14].hex() == "050800009001000400"


@pytest.mark.parametrize("command", list(Command))
@given(data=st.binary(max_size=200))
def test_every_command_round_trips(command: Command, data: bytes) -> None:
    request = decode_request(encode_request(command, data))
    assert request == Request(*command.value, data)
    assert request.command is command


@given(answers())
def test_every_answer_round_trips(answer: Answer) -> None:
    assert decode_answer(encode_answer(answer)) == answer


@pytest.mark.parametrize("status", list(Status))
def test_every_status_word_is_named(status: Status) -> None:
    assert decode_answer(encode_answer(Answer(status))).status is status


def test_unknown_status_words_and_commands_decode_without_a_name() -> None:
    assert decode_answer(encode_answer(Answer(0x55))).status is None
    assert decode_request(wrap(bytes([0x77, 0x01]))).command is None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (bytes.fromhex("aaaaaa9669000400009095"), "bad_checksum"),
        (bytes.fromhex("aaaaaa9669000500009094"), "bad_length"),
        (bytes.fromhex("aaaaaa9669000100"), "bad_length"),
        (bytes.fromhex("bbaaaa9669000400009094"), "garbled"),
        (bytes.fromhex("aaaaaa96"), "garbled"),
    ],
)
def test_a_broken_frame_is_refused_with_its_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        unwrap(frame)
    assert caught.value.reason == reason


def test_an_answer_needs_its_three_status_bytes() -> None:
    with pytest.raises(FrameError):
        decode_answer(wrap(b"\x00\x00"))


@given(st.binary(max_size=64))
def test_any_bytes_decode_to_an_answer_or_a_frame_error(data: bytes) -> None:
    try:
        answer = decode_answer(data)
    except FrameError:
        return
    assert encode_answer(answer) == data


@given(st.binary(max_size=64))
def test_any_bytes_decode_to_a_request_or_a_frame_error(data: bytes) -> None:
    try:
        request = decode_request(data)
    except FrameError:
        return
    assert wrap(bytes([request.code, request.parameter]) + request.data) == data


@given(frame=frames(), size=st.integers(1, 100))
def test_packets_cut_a_frame_without_losing_bytes(frame: bytes, size: int) -> None:
    cut = packets(frame, size)
    assert b"".join(cut) == frame
    assert all(0 < len(packet) <= size for packet in cut)


# --- codec: reassembly ------------------------------------------------------------------------


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    reader = FrameReader()
    found: list[bytes] = []
    start = 0
    for end in [*sorted(cuts), len(data)]:
        found += reader.feed(data[start:end])
        start = end
    return found


@settings(max_examples=200)
@given(stream=st.lists(frames(), max_size=5), data=st.data())
def test_any_split_of_a_valid_stream_gives_the_same_frames(
    stream: list[bytes], data: st.DataObject
) -> None:
    joined = b"".join(stream)
    cuts = data.draw(st.lists(st.integers(0, len(joined)), max_size=20))
    assert feed_in_pieces(joined, cuts) == stream


# Garbage without 0xAA can hold no preamble, not even the start of one.
no_preamble = st.binary(max_size=80).map(lambda b: b.replace(b"\xaa", b"\x00"))


@given(stream=st.lists(st.tuples(no_preamble, frames()), max_size=4), data=st.data())
def test_garbage_between_frames_is_skipped(
    stream: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    joined = b"".join(garbage + frame for garbage, frame in stream)
    cuts = data.draw(st.lists(st.integers(0, len(joined)), max_size=10))
    assert feed_in_pieces(joined, cuts) == [frame for _, frame in stream]


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_any_bytes_in_any_pieces_give_checked_frames_or_a_frame_error(
    pieces: list[bytes],
) -> None:
    reader = FrameReader()
    for piece in pieces:
        try:
            found = reader.feed(piece)
        except FrameError:
            continue
        for frame in found:
            assert frame.startswith(PREAMBLE)
            unwrap(frame)


def test_a_corrupt_frame_is_reported_and_reading_goes_on() -> None:
    good = encode_answer(Answer(Status.OK))
    corrupt = good[:-1] + b"\x00"
    reader = FrameReader()
    with pytest.raises(FrameError) as caught:
        reader.feed(good + corrupt + good)
    assert caught.value.reason == "bad_checksum"
    assert reader.feed(b"") == [good, good]


def test_an_impossible_length_is_a_false_start() -> None:
    good = encode_answer(Answer(Status.OK))
    reader = FrameReader()
    with pytest.raises(FrameError):
        reader.feed(bytes.fromhex("aaaaaa9669ffff") + good)
    assert reader.feed(b"") == [good]


# --- codec: the card's text ----------------------------------------------------------------


def test_the_text_fields_tile_the_256_byte_block_in_order() -> None:
    end = 0
    for field in TextField:
        offset, width = field.value
        assert offset == end
        end = offset + width
    assert end == TEXT_LENGTH


def test_each_text_field_lands_at_its_offset_padded_with_spaces() -> None:
    text = SAMPLE_CARD.text()
    assert text[122:158].decode("utf-16-le") == SAMPLE_NUMBER
    assert text[0:30].decode("utf-16-le") == SAMPLE_CARD.name.ljust(15)
    assert text[204:220].decode("utf-16-le") == "20400101"
    assert text[220:].decode("utf-16-le") == " " * 18


def test_a_value_too_long_for_its_field_is_refused() -> None:
    with pytest.raises(ValueError, match="NAME"):
        encode_text({TextField.NAME: "测" * 16})


def test_a_summary_keeps_the_masked_number_and_the_end_date() -> None:
    summary = summarise_text(SAMPLE_CARD.text())
    assert summary.masked_number == "**************005X"
    assert summary.valid_until == date(2040, 1, 1)


def test_a_card_valid_for_life_has_no_end_date() -> None:
    card = dataclasses.replace(SAMPLE_CARD, valid_to="长期")
    assert summarise_text(card.text()).valid_until is None


@pytest.mark.parametrize(
    "card",
    [
        dataclasses.replace(SAMPLE_CARD, id_number=SAMPLE_NUMBER[:17] + "1"),
        dataclasses.replace(SAMPLE_CARD, id_number=SAMPLE_NUMBER[:15]),
        dataclasses.replace(SAMPLE_CARD, id_number="A" + SAMPLE_NUMBER[1:]),
        dataclasses.replace(SAMPLE_CARD, valid_to="20401301"),
        dataclasses.replace(SAMPLE_CARD, valid_to="永久"),
    ],
    ids=["check-character", "15-digits", "letter", "month-13", "not-a-date"],
)
def test_a_garbled_number_or_date_is_a_bad_read(card: VirtualIdCard) -> None:
    with pytest.raises(FrameError) as caught:
        summarise_text(card.text())
    assert caught.value.reason == "bad_read"


def test_text_that_is_no_ucs2_is_a_bad_read() -> None:
    text = bytearray(SAMPLE_CARD.text())
    text[122:124] = b"\x00\xd8"  # a lone high surrogate
    with pytest.raises(FrameError):
        summarise_text(bytes(text))


@given(st.binary(min_size=TEXT_LENGTH, max_size=TEXT_LENGTH) | st.binary(max_size=300))
def test_any_text_gives_a_summary_or_a_frame_error(text: bytes) -> None:
    try:
        summary = summarise_text(text)
    except FrameError:
        return
    assert summary.masked_number.startswith("*" * 14)


@given(valid_numbers())
def test_the_masked_number_never_shows_the_region_or_birth_date(number: str) -> None:
    masked = mask_number(number)
    assert len(masked) == 18
    assert masked[:14] == "*" * 14
    assert masked[14:] == number[14:]
    assert number[6:14] not in masked


@given(valid_numbers())
def test_any_valid_number_passes_and_comes_back_masked(number: str) -> None:
    card = dataclasses.replace(SAMPLE_CARD, id_number=number)
    assert summarise_text(card.text()).masked_number == mask_number(number)


def test_card_data_splits_into_its_blocks() -> None:
    text, photo = SAMPLE_CARD.text(), bytes(range(256)) * 4
    split = split_card_data(encode_card_data(text, photo))
    assert (split.text, split.photo, split.fingerprint) == (text, photo, b"")
    fingerprint = b"\x01" * 1024
    with_fp = split_card_data(encode_card_data(text, photo, fingerprint), fingerprint=True)
    assert with_fp.fingerprint == fingerprint


def test_a_photo_of_the_wrong_length_is_a_bad_read() -> None:
    with pytest.raises(FrameError) as caught:
        split_card_data(encode_card_data(SAMPLE_CARD.text(), bytes(PHOTO_LENGTH - 1)))
    assert caught.value.reason == "bad_read"


@given(data=st.binary(max_size=1400), fingerprint=st.booleans())
def test_any_card_data_splits_or_raises_a_frame_error(data: bytes, *, fingerprint: bool) -> None:
    try:
        split = split_card_data(data, fingerprint=fingerprint)
    except FrameError:
        return
    blocks = (split.text, split.photo, split.fingerprint if fingerprint else None)
    assert encode_card_data(*blocks) == data


# --- the virtual reader ---------------------------------------------------------------------


def raw_exchange(transport: UsbTransport, frame: bytes) -> Answer:
    transport.write(ENDPOINT_OUT, frame)
    return decode_answer(transport.read(ENDPOINT_IN, 64))


def test_the_virtual_reader_reports_a_bad_checksum_and_an_unknown_command(
    rig: ReaderRig,
) -> None:
    transport = rig.driver.transport
    corrupt = encode_request(Command.SAM_STATUS)[:-1] + b"\x00"
    assert raw_exchange(transport, corrupt).status is Status.CHECKSUM_ERROR
    assert raw_exchange(transport, wrap(b"\x77\x01")).status is Status.COMMAND_ERROR
    assert raw_exchange(transport, encode_request(Command.SAM_STATUS)).status is Status.OK


def test_the_virtual_reader_takes_a_request_split_over_packets(rig: ReaderRig) -> None:
    request = encode_request(Command.READ_SAM_ID)
    for packet in packets(request, 3):
        rig.driver.transport.write(ENDPOINT_OUT, packet)
    answer = decode_answer(rig.driver.transport.read(ENDPOINT_IN, 64))
    assert (answer.status, len(answer.data)) == (Status.OK, 16)
    assert rig.device.requests[-1].command is Command.READ_SAM_ID


def test_the_virtual_reader_will_not_read_an_unselected_card(rig: ReaderRig) -> None:
    answer = raw_exchange(rig.driver.transport, encode_request(Command.READ_TEXT_PHOTO))
    assert answer.status is Status.READ_FAILED


# --- the driver: the shared contract -------------------------------------------------------


def test_contract_discover_and_status() -> None:
    device = CONTRACT_CASE.make_device()
    backend = SimulatedBackend([device])
    spec = CONTRACT_CASE.spec
    found = find_devices(backend, spec.default_ids)
    assert len(found) == 1
    driver = spec.open(UsbTransport.open(found[0], spec.interface), "name0")
    status = driver.status()
    assert (status.state, status.kind) == (PeripheralState.OK, PeripheralKind.ID_CARD_READER)
    assert (status.model, status.firmware) == ("termfleet virtual ID card reader", "1.00")
    driver.self_test()
    driver.close()


def test_contract_unplug_and_replug(rig: ReaderRig) -> None:
    rig.backend.unplug(rig.device)
    with pytest.raises(PeripheralGoneError):
        rig.driver.status()
    rig.backend.plug(rig.device)
    rig.reopen()
    assert rig.driver.status().state is PeripheralState.OK


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.TIMEOUT, NoAnswerError), (Fault.GARBAGE, FrameError), (Fault.STALL, StalledError)],
)
def test_contract_faults_and_recovery_on_the_same_driver(
    rig: ReaderRig, fault: Fault, error: type[PeripheralError]
) -> None:
    rig.device.inject(fault)
    with pytest.raises(error):
        rig.driver.status()
    with pytest.raises(error):
        rig.driver.read_card()
    rig.device.clear_faults()
    assert rig.driver.status().state is PeripheralState.OK
    assert rig.driver.read_card().outcome is ReadOutcome.OK


def test_contract_self_test_passes_and_fails_with_a_reason(rig: ReaderRig) -> None:
    rig.driver.self_test()
    sent = [request.command for request in rig.device.requests]
    assert sent == [
        Command.RESET_SAM,
        Command.READ_SAM_ID,
        Command.FIND_CARD,
        Command.SELECT_CARD,
        Command.READ_TEXT_PHOTO,
    ]
    rig.device.break_sam()
    with pytest.raises(PeripheralError) as caught:
        rig.driver.self_test()
    assert caught.value.reason == "sam_fault"


def test_the_self_test_asks_for_a_card_when_none_is_placed(rig: ReaderRig) -> None:
    rig.device.remove_card()
    with pytest.raises(PeripheralError, match="place a test ID card") as caught:
        rig.driver.self_test()
    assert caught.value.reason == "no_card"


# --- the driver: status and card reads -----------------------------------------------------


@pytest.mark.parametrize(("sw3", "reason"), SAM_FAULTS.items())
def test_a_broken_sam_is_a_fault_with_its_reason(rig: ReaderRig, sw3: Status, reason: str) -> None:
    rig.device.break_sam(sw3)
    status = rig.driver.status()
    assert (status.state, status.reason) == (PeripheralState.FAULT, reason)
    rig.device.repair_sam()
    assert rig.driver.status().state is PeripheralState.OK


def test_a_card_read_keeps_only_the_masked_number_and_end_date(rig: ReaderRig) -> None:
    read = rig.driver.read_card()
    assert read == CardRead(ReadOutcome.OK, "", "**************005X", date(2040, 1, 1))
    assert [r.command for r in rig.device.requests] == [
        Command.FIND_CARD,
        Command.SELECT_CARD,
        Command.READ_TEXT_PHOTO,
    ]


def test_a_read_leaks_nothing_of_the_card(rig: ReaderRig) -> None:
    read = rig.driver.read_card()
    shown = repr(read) + str(read)
    assert not any(character.isdigit() for character in shown)
    kept = " ".join(str(value) for value in dataclasses.astuple(read))
    for secret in (SAMPLE_NUMBER, SAMPLE_NUMBER[6:14], SAMPLE_CARD.name, SAMPLE_CARD.address):
        assert secret not in kept
        assert secret not in repr(vars(rig.driver))


def test_no_card_is_an_outcome(rig: ReaderRig) -> None:
    rig.device.remove_card()
    assert rig.driver.read_card() == CardRead(ReadOutcome.NO_CARD, "no_card")


STEPS = [Command.FIND_CARD, Command.SELECT_CARD, Command.READ_TEXT_PHOTO]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(("sw3", "reason"), CARD_FAILURES.items())
def test_a_card_status_word_at_any_step_is_a_read_outcome(
    rig: ReaderRig, step: Command, sw3: Status, reason: str
) -> None:
    rig.device.answer_with(sw3, command=step)
    read = rig.driver.read_card()
    expected = ReadOutcome.NO_CARD if reason == "no_card" else ReadOutcome.FAILED
    assert (read.outcome, read.reason, read.masked_number) == (expected, reason, "")
    assert rig.driver.read_card().outcome is ReadOutcome.OK


READER_FAULTS = [*READER_ERRORS.items(), *SAM_FAULTS.items(), (0x55, "unexpected_status")]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(("sw3", "reason"), READER_FAULTS)
def test_a_reader_status_word_is_a_peripheral_error(
    rig: ReaderRig, step: Command, sw3: int, reason: str
) -> None:
    rig.device.answer_with(sw3, command=step)
    with pytest.raises(PeripheralError) as caught:
        rig.driver.read_card()
    assert caught.value.reason == reason
    assert rig.driver.read_card().outcome is ReadOutcome.OK


@pytest.mark.parametrize(("sw3", "reason"), [*READER_ERRORS.items(), (0x55, "unexpected_status")])
def test_status_raises_for_a_reader_error(rig: ReaderRig, sw3: int, reason: str) -> None:
    rig.device.answer_with(sw3)
    with pytest.raises(PeripheralError) as caught:
        rig.driver.status()
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("valid_to", "outcome", "reason", "until"),
    [
        ("20300531", ReadOutcome.FAILED, "card_expired", date(2030, 5, 31)),
        ("20300601", ReadOutcome.OK, "", date(2030, 6, 1)),
        ("长期", ReadOutcome.OK, "", None),
    ],
    ids=["expired-yesterday", "last-valid-day", "valid-for-life"],
)
def test_the_end_date_decides_an_expired_card(
    valid_to: str, outcome: ReadOutcome, reason: str, until: date | None
) -> None:
    rig = open_reader(VirtualIdCardReader(card=dataclasses.replace(SAMPLE_CARD, valid_to=valid_to)))
    read = rig.driver.read_card()
    assert (read.outcome, read.reason, read.valid_until) == (outcome, reason, until)
    assert read.masked_number == "**************005X"


def test_an_expired_test_card_still_passes_the_self_test() -> None:
    card = dataclasses.replace(SAMPLE_CARD, valid_to="20200101")
    open_reader(VirtualIdCardReader(card=card)).driver.self_test()


def test_a_number_failing_its_check_character_is_a_bad_read() -> None:
    card = dataclasses.replace(SAMPLE_CARD, id_number=SAMPLE_NUMBER[:17] + "0")
    rig = open_reader(VirtualIdCardReader(card=card))
    assert rig.driver.read_card() == CardRead(ReadOutcome.FAILED, "bad_read")
    with pytest.raises(PeripheralError) as caught:
        rig.driver.self_test()
    assert caught.value.reason == "bad_read"


@pytest.mark.parametrize("packet_size", [1, 5, 7, 13, 63])
def test_answers_split_into_any_packets_are_read_whole(packet_size: int) -> None:
    rig = open_reader(VirtualIdCardReader(card=SAMPLE_CARD, packet_size=packet_size))
    assert rig.driver.status().state is PeripheralState.OK
    assert rig.driver.read_card().masked_number == "**************005X"


def test_a_wrong_checksum_from_the_reader_is_a_frame_error_then_reading_goes_on(
    rig: ReaderRig,
) -> None:
    rig.device.corrupt_next_answer()
    with pytest.raises(FrameError) as caught:
        rig.driver.read_card()
    assert caught.value.reason == "bad_checksum"
    assert rig.driver.read_card().outcome is ReadOutcome.OK


class NoisyReader(VirtualIdCardReader):
    """Spoils the third packet of every long answer: zeroed by line noise, or lost."""

    def __init__(self, *, lose: bool) -> None:
        super().__init__(card=SAMPLE_CARD)
        self.lose = lose
        self.spoiling = False
        self._full_packets = 0

    def send_in(self, endpoint: int, data: bytes) -> None:
        self._full_packets = self._full_packets + 1 if len(data) == 64 else 0
        if self.spoiling and self._full_packets == 3:
            self.spoiling = False
            if self.lose:
                return
            data = bytes(len(data))
        super().send_in(endpoint, data)


def test_a_packet_spoiled_inside_a_long_answer_is_a_frame_error() -> None:
    device = NoisyReader(lose=False)
    rig = open_reader(device)
    device.spoiling = True
    with pytest.raises(FrameError) as caught:
        rig.driver.read_card()
    assert caught.value.reason == "bad_checksum"
    assert rig.driver.read_card().outcome is ReadOutcome.OK


def test_a_packet_lost_inside_a_long_answer_is_a_frame_error_at_the_deadline() -> None:
    device = NoisyReader(lose=True)
    rig = open_reader(device)
    device.spoiling = True
    with pytest.raises(FrameError, match="stopped half way"):
        rig.driver.read_card(timeout_ms=100)
    assert rig.driver.read_card().outcome is ReadOutcome.OK
