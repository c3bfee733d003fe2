"""The receipt printer's pure codecs: status bytes, the health table, the test page, the stream."""

from __future__ import annotations

import itertools
import re
from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.protocol import PeripheralState
from firmware_bridge.codecs.escpos import (
    CHINESE_MODE_ON,
    CHINESE_SAMPLE,
    INITIALIZE,
    PARTIAL_CUT_AFTER_FEED,
    PrinterStatus,
    SelfTestPage,
    StatusQuery,
    UnprintableTextError,
    check_answer,
    decode_status,
    encode_test_page,
    encode_text,
    health,
    status_request,
)
from firmware_bridge.codecs.escpos_stream import Command, CommandReader, Op
from firmware_bridge.errors import FrameError
from firmware_bridge.simulated.printer import VirtualReceiptPrinter
from tests.support.printer import IDLE, NOW

FAULT = PeripheralState.FAULT
DEGRADED = PeripheralState.DEGRADED
OK = PeripheralState.OK
text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


def answers(query: StatusQuery, value: int) -> bytes:
    """The four answers of an idle printer, with ``value`` as the answer to ``query``."""
    return bytes(value if q is query else IDLE for q in StatusQuery)


# --- status bytes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "bits", "field"),
    [
        (StatusQuery.PRINTER, 0x04, "drawer_pin3_high"),
        (StatusQuery.PRINTER, 0x08, "offline"),
        (StatusQuery.PRINTER, 0x20, "waiting_for_recovery"),
        (StatusQuery.PRINTER, 0x40, "feed_button_pressed"),
        (StatusQuery.OFFLINE_CAUSE, 0x04, "cover_open"),
        (StatusQuery.OFFLINE_CAUSE, 0x08, "feeding_by_button"),
        (StatusQuery.OFFLINE_CAUSE, 0x20, "stopped_by_paper_end"),
        (StatusQuery.OFFLINE_CAUSE, 0x40, "error_occurred"),
        (StatusQuery.ERROR_CAUSE, 0x08, "cutter_error"),
        (StatusQuery.ERROR_CAUSE, 0x20, "unrecoverable_error"),
        (StatusQuery.ERROR_CAUSE, 0x40, "auto_recoverable_error"),
        (StatusQuery.ROLL_PAPER, 0x0C, "paper_near_end"),
        (StatusQuery.ROLL_PAPER, 0x04, "paper_near_end"),  # models with one sensor bit
        (StatusQuery.ROLL_PAPER, 0x08, "paper_near_end"),
        (StatusQuery.ROLL_PAPER, 0x60, "paper_out"),
        (StatusQuery.ROLL_PAPER, 0x20, "paper_out"),
        (StatusQuery.ROLL_PAPER, 0x40, "paper_out"),
    ],
)
def test_each_status_bit_sets_its_field_and_nothing_else(
    query: StatusQuery, bits: int, field: str
) -> None:
    assert decode_status(answers(query, IDLE | bits)) == PrinterStatus(**{field: True})


def test_an_idle_printer_and_model_specific_bits_decode_to_no_condition() -> None:
    assert decode_status(bytes([IDLE] * 4)) == PrinterStatus()
    # n=3 bit 2 means a mechanical error on one model and nothing on another: not read.
    assert decode_status(answers(StatusQuery.ERROR_CAUSE, IDLE | 0x04)) == PrinterStatus()


def test_an_out_of_paper_printer_as_the_command_reference_shows_it() -> None:
    status = decode_status(bytes([0x1A, 0x32, IDLE, 0x7E]))
    assert status == PrinterStatus(
        offline=True, stopped_by_paper_end=True, paper_near_end=True, paper_out=True
    )


@pytest.mark.parametrize("query", list(StatusQuery))
@pytest.mark.parametrize("flipped", [0x01, 0x02, 0x10, 0x80])
def test_a_broken_fixed_bit_is_a_frame_error(query: StatusQuery, flipped: int) -> None:
    with pytest.raises(FrameError, match="fixed bits"):
        check_answer(query, bytes([IDLE ^ flipped]))
    with pytest.raises(FrameError):
        decode_status(answers(query, IDLE ^ flipped))


@pytest.mark.parametrize("data", [b"", b"\x12\x12"])
def test_an_answer_of_other_than_one_byte_is_a_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError, match="expected 1"):
        check_answer(StatusQuery.PRINTER, data)


@given(st.binary(max_size=8))
def test_any_bytes_decode_to_a_status_or_a_frame_error(data: bytes) -> None:
    well_formed = len(data) == 4 and all(b & 0x93 == 0x12 for b in data)
    try:
        status = decode_status(data)
    except FrameError:
        assert not well_formed
    else:
        assert well_formed
        assert isinstance(status, PrinterStatus)


def test_status_requests_are_dle_eot_n() -> None:
    assert [status_request(q) for q in StatusQuery] == [
        bytes([0x10, 0x04, n]) for n in (1, 2, 3, 4)
    ]


# --- the mapping to the heartbeat's state -----------------------------------------------

S = PrinterStatus


@pytest.mark.parametrize(
    ("status", "state", "reason"),
    [
        (S(), OK, ""),
        (S(paper_out=True, paper_near_end=True), FAULT, "paper_out"),
        (S(stopped_by_paper_end=True), FAULT, "paper_out"),
        (S(cover_open=True), FAULT, "cover_open"),
        (S(cutter_error=True, error_occurred=True), FAULT, "cutter_error"),
        (S(unrecoverable_error=True, error_occurred=True), FAULT, "error"),
        (S(auto_recoverable_error=True, error_occurred=True), DEGRADED, "auto_recoverable_error"),
        (S(error_occurred=True), FAULT, "error"),
        (S(paper_near_end=True), DEGRADED, "paper_near_end"),
        (S(offline=True), DEGRADED, "offline"),
        (S(offline=True, feeding_by_button=True, feed_button_pressed=True), OK, ""),
        (S(drawer_pin3_high=True, waiting_for_recovery=True), OK, ""),
        # priorities: the first of each pair wins
        (S(paper_out=True, cover_open=True), FAULT, "paper_out"),
        (S(cover_open=True, cutter_error=True), FAULT, "cover_open"),
        (S(cutter_error=True, unrecoverable_error=True), FAULT, "cutter_error"),
        (S(unrecoverable_error=True, auto_recoverable_error=True), FAULT, "error"),
        (S(cover_open=True, auto_recoverable_error=True), FAULT, "cover_open"),
        (S(auto_recoverable_error=True, paper_near_end=True), DEGRADED, "auto_recoverable_error"),
        (S(paper_near_end=True, offline=True), DEGRADED, "paper_near_end"),
    ],
)
def test_health_table(status: PrinterStatus, state: PeripheralState, reason: str) -> None:
    assert health(status) == (state, reason)


@given(st.builds(PrinterStatus, **{f.name: st.booleans() for f in fields(PrinterStatus)}))
def test_a_printer_that_cannot_print_is_a_fault_and_nothing_else_is(status: PrinterStatus) -> None:
    stopped = (
        status.paper_out
        or status.stopped_by_paper_end
        or status.cover_open
        or status.cutter_error
        or status.unrecoverable_error
        or (status.error_occurred and not status.auto_recoverable_error)
    )
    assert (health(status)[0] is FAULT) == stopped


# --- the test page -----------------------------------------------------------------------


def page(**changes: object) -> SelfTestPage:
    base = SelfTestPage(
        title="政务服务中心 1号窗口", name="printer0", printed_at=NOW, model="M", firmware="1.02"
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_test_page_initialises_selects_chinese_and_ends_with_a_partial_cut() -> None:
    data = encode_test_page(page(lines=("hello",)))
    assert data.startswith(INITIALIZE + CHINESE_MODE_ON + b"\x1b\x61\x01")  # then centred
    assert data.endswith(b"\x1b\x64\x03" + PARTIAL_CUT_AFTER_FEED)
    assert PARTIAL_CUT_AFTER_FEED == b"\x1d\x56\x42\x00"
    assert CHINESE_SAMPLE.encode("gb18030") in data
    assert "政务服务中心 1号窗口".encode("gb18030") + b"\n" in data
    assert b"2024-05-06 09:30:15" in data


@pytest.mark.parametrize(
    ("changes", "culprit"),
    [
        ({"title": "ok\x1b@"}, "'\\x1b' at position 2"),
        ({"lines": ("fine", "\x10\x04\x01")}, "'\\x10' at position 0"),
        ({"name": "a\nb"}, "'\\n' at position 1"),
        ({"model": "\ud800"}, "'\\ud800' at position 10 of '型号 Model: "),
    ],
)
def test_text_that_would_be_commands_or_cannot_be_encoded_is_refused(
    changes: dict[str, object], culprit: str
) -> None:
    with pytest.raises(UnprintableTextError, match=re.escape(culprit)):
        encode_test_page(page(**changes))


def test_encoded_text_is_gb18030() -> None:
    assert encode_text("评价器 €") == "评价器 €".encode("gb18030")


@given(
    title=text,
    name=text,
    model=text,
    firmware=text,
    lines=st.lists(text, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
)
def test_test_page_round_trip_through_the_virtual_printer(
    title: str, name: str, model: str, firmware: str, lines: list[str], cuts: list[int]
) -> None:
    sent = page(title=title, name=name, model=model, firmware=firmware, lines=tuple(lines))
    data = encode_test_page(sent)
    printer = VirtualReceiptPrinter()
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    for start, end in itertools.pairwise(bounds):  # written in arbitrary pieces
        printer.handle_out(0x01, data[start:end])
    assert printer.pages == ["\n".join(sent.text_lines())]


# --- the stream reader -------------------------------------------------------------------


def test_length_prefixed_data_is_skipped_whole_across_writes() -> None:
    qr = b"\x1d(k" + bytes([5, 0]) + b"1P0\n\n"  # GS ( k with LF bytes in its data
    stream = b"A\n" + qr + b"B\n" + b"\x1bd\x02" + b"\x1dVB\x00"
    reader = CommandReader()
    commands = [c for i in range(len(stream)) for c in reader.feed(stream[i : i + 1])]
    assert [c.op for c in commands] == [
        Op.TEXT, Op.NEWLINE, Op.OTHER, Op.TEXT, Op.NEWLINE, Op.FEED, Op.CUT,
    ]  # fmt: skip
    assert commands[2].data == b"k" + bytes([5, 0]) + b"1P0\n\n"


def merged_text(commands: list[Command]) -> list[Command]:
    """Adjacent TEXT commands as one: a write boundary may split a run of text anywhere."""
    merged: list[Command] = []
    for command in commands:
        if merged and command.op is Op.TEXT and merged[-1].op is Op.TEXT:
            command = Command(Op.TEXT, merged[-1].data + command.data)  # noqa: PLW2901
            merged.pop()
        merged.append(command)
    return merged


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_any_bytes_in_any_pieces_read_as_in_one_piece(data: bytes, cuts: list[int]) -> None:
    whole = CommandReader().feed(data)
    reader = CommandReader()
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    pieces = [c for start, end in itertools.pairwise(bounds) for c in reader.feed(data[start:end])]
    assert merged_text(pieces) == merged_text(whole)
    VirtualReceiptPrinter().handle_out(0x01, data)  # and the printer takes anything
