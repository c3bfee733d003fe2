"""The device list's parameters, cursors, labels and inventory diffs, as pure functions.

Layer 1: no database, no network. The API tests (test_api_devices*.py) check the same rules
end to end; these pin each rule down in a table, and the cursor decoder against anything.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.device_filters import (
    DeviceFilters,
    QueryError,
    decode_cursor,
    encode_cursor,
    parse_query,
)
from control_plane.device_inventory import (
    AgentFacts,
    Inventory,
    Peripheral,
    changes,
    inventory_of,
)
from control_plane.device_labels import MAX_LABELS, LabelError, apply_patch, parse_selector
from edge.agent.telemetry import hardware_model, operating_system
from edge.protocol import Heartbeat, PeripheralKind, PeripheralState, PeripheralStatus

# --- parameters ----------------------------------------------------------------------------------


def test_no_parameters_are_the_first_page_of_everything() -> None:
    query = parse_query([])

    assert (query.filters, query.limit, query.after) == (DeviceFilters(), 100, "")


def test_every_filter_is_read() -> None:
    query = parse_query(
        [("node", "440117"), ("site", "s1"), ("kind", "kiosk"), ("presence", "offline_expected"),
         ("fault", "receipt_printer"), ("label", "vendor=inspur"), ("label", "floor=1"),
         ("q", "  街口 "), ("lifecycle", "in_service"), ("limit", "500")]
    )  # fmt: skip

    assert query.filters == DeviceFilters(
        node="440117",
        site="s1",
        kind="kiosk",
        presence="offline_expected",
        fault="receipt_printer",
        labels=(("floor", "1"), ("vendor", "inspur")),
        text="街口",
        lifecycle="in_service",
    )
    assert query.limit == 500  # the largest page


def test_label_filters_are_a_set_whatever_their_order() -> None:
    one = parse_query([("label", "a=1"), ("label", "b=2"), ("label", "a=1")]).filters
    two = parse_query([("label", "b=2"), ("label", "a=1")]).filters

    assert one == two
    assert one.digest() == two.digest()


@pytest.mark.parametrize(
    ("items", "parameter"),
    [
        ([("limit", "٣")], "limit"),  # an Arabic-Indic digit is a digit to str.isdigit
        ([("limit", "+5")], "limit"),
        ([("q", "a\x00b")], "q"),
        ([("label", f"k{i}=v") for i in range(9)], "label"),
        ([("node", "4401 17")], "node"),
        ([("presence", "online"), ("presence", "offline")], "presence"),
        ([("cursor", "x"), ("cursor", "y")], "cursor"),
    ],
)
def test_a_bad_parameter_names_itself(items: list[tuple[str, str]], parameter: str) -> None:
    with pytest.raises(QueryError) as refused:
        parse_query(items)

    assert refused.value.parameter == parameter
    assert refused.value.message.startswith(f"{parameter} ")


# --- cursors -------------------------------------------------------------------------------------


def test_a_cursor_goes_round_for_its_own_filters_only() -> None:
    filters = DeviceFilters(kind="kiosk", labels=(("vendor", "inspur"),))
    cursor = encode_cursor("kiosk-440117000-01", filters)

    assert decode_cursor(cursor, filters) == "kiosk-440117000-01"
    with pytest.raises(QueryError, match="other filters"):
        decode_cursor(cursor, DeviceFilters(kind="kiosk"))


def test_any_edited_character_of_a_cursor_is_caught() -> None:
    filters = DeviceFilters()
    cursor = encode_cursor("pad-1", filters)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in range(len(cursor)):
        for replacement in alphabet[:8]:
            edited = cursor[:position] + replacement + cursor[position + 1 :]
            if edited == cursor:
                continue
            try:
                after = decode_cursor(edited, filters)
            except QueryError:
                continue
            # base64's last character carries padding bits; an edit there may decode the same.
            assert after == "pad-1", (position, replacement)


@given(st.text(max_size=200))
def test_the_cursor_decoder_refuses_anything_else_cleanly(text: str) -> None:
    """A 400 for whatever comes in, never another exception (a 500)."""
    with contextlib.suppress(QueryError):
        assert isinstance(decode_cursor(text, DeviceFilters()), str)


# --- labels --------------------------------------------------------------------------------------


def test_a_merge_patch_sets_removes_and_sorts() -> None:
    assert apply_patch({"b": "1", "a": "2"}, {"b": None, "c": "3", "gone": None}) == {
        "a": "2",
        "c": "3",
    }


@pytest.mark.parametrize(
    "patch",
    [{"A": "x"}, {"a-": "x"}, {"": "x"}, {"a": ["x"]}, {"a": "é" * 64}, "a=b", None],
)
def test_a_bad_patch_is_refused(patch: object) -> None:
    with pytest.raises(LabelError):
        apply_patch({}, patch)


def test_a_patch_may_not_pass_the_label_limit_but_may_shrink_below_it() -> None:
    full = {f"k{i}": "v" for i in range(MAX_LABELS)}

    with pytest.raises(LabelError, match="at most"):
        apply_patch(full, {"one-more": "v"})
    assert len(apply_patch(full, {"k0": None})) == MAX_LABELS - 1


def test_a_selector_splits_at_the_first_equals_sign() -> None:
    assert parse_selector("note=a=b") == ("note", "a=b")
    assert parse_selector("empty=") == ("empty", "")


# --- inventory diffs -----------------------------------------------------------------------------

AT = datetime(2026, 3, 2, tzinfo=UTC)
PRINTER = PeripheralStatus(
    name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK, model="TP-80"
)


def inventory(*peripherals: PeripheralStatus, version: str = "1.0") -> Inventory:
    return inventory_of(version, Heartbeat(seq=1, peripherals=peripherals), heard=True)


def test_nothing_changed_is_nothing_to_write() -> None:
    assert not changes(inventory(PRINTER), inventory(PRINTER))


def test_a_new_peripheral_is_written() -> None:
    change = changes(inventory(), inventory(PRINTER))

    assert [p.name for p in change.upserts] == ["printer0"]
    assert change.agent is None


def test_a_status_change_and_a_firmware_change_are_written() -> None:
    broken = PeripheralStatus(
        name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.FAULT,
        reason="jam", model="TP-80",
    )  # fmt: skip
    flashed = PeripheralStatus(
        name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK,
        model="TP-80", firmware="2.2",
    )  # fmt: skip

    assert [p.status for p in changes(inventory(PRINTER), inventory(broken)).upserts] == ["fault"]
    flash = changes(inventory(PRINTER), inventory(flashed))
    assert [p.firmware for p in flash.upserts] == ["2.2"]


def test_a_peripheral_no_longer_reported_is_removed_and_an_agent_upgrade_is_written() -> None:
    change = changes(inventory(PRINTER), inventory(version="1.1"))

    assert change.removed == ("printer0",)
    assert change.agent == AgentFacts(agent_version="1.1")


def test_repeated_names_keep_the_last_and_long_text_is_cut_to_its_column() -> None:
    first = PeripheralStatus(name="p", kind=PeripheralKind.CAMERA, model="x" * 100)
    last = PeripheralStatus(name="p", kind=PeripheralKind.SCREEN)

    found = inventory(first, last).peripherals

    assert found == {"p": Peripheral(name="p", kind="screen", status="unknown")}
    assert len(inventory(first).peripherals["p"].model) == 64  # the column


def test_the_agent_row_follows_the_os_and_model_the_heartbeat_reports() -> None:
    def reported(os: str) -> Inventory:
        beat = Heartbeat(seq=1, os=os, hardware_model="ZW-21A")
        return inventory_of("1.0", beat, heard=True)

    upgrade = changes(reported("Kylin V10 (SP1)"), reported("Kylin V10 (SP3)"))

    assert upgrade.agent == AgentFacts("1.0", "Kylin V10 (SP3)", "ZW-21A")
    assert inventory_of("1.0", None, heard=False).agent is None


def test_the_agent_reads_the_model_from_dmi_and_does_without(tmp_path: Path) -> None:
    (tmp_path / "sys_vendor").write_text("Inspur\n")
    (tmp_path / "product_name").write_text("ZW-21A\n")

    assert hardware_model(tmp_path) == "Inspur ZW-21A"
    assert hardware_model(tmp_path / "absent") == ""
    assert operating_system()
