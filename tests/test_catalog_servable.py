"""What a terminal can serve now: levels from peripheral states, dates and channels."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.catalog import Availability, Catalog, Level, ServiceChannel, servable
from edge.protocol.health import PeripheralKind, PeripheralState, PeripheralStatus
from tests.test_catalog_items import KNOWN_KINDS, catalogs, dates, item

OK, DEGRADED, FAULT = PeripheralState.OK, PeripheralState.DEGRADED, PeripheralState.FAULT
ABSENT, UNKNOWN = PeripheralState.ABSENT, PeripheralState.UNKNOWN
PRINTER, ID_READER = PeripheralKind.A4_PRINTER, PeripheralKind.ID_CARD_READER
TODAY = date(2025, 5, 6)
RANK = {Level.UNAVAILABLE: 0, Level.QUERY_ONLY: 1, Level.FULL: 2}


def peripheral(
    name: str, kind: PeripheralKind, state: PeripheralState = OK, reason: str = ""
) -> PeripheralStatus:
    return PeripheralStatus(name=name, kind=kind, state=state, reason=reason)


KIOSK = (peripheral("printer0", PRINTER), peripheral("idreader0", ID_READER))

# Four items as a kiosk holds them: print after an ID read, query after an ID read, an ID read
# to complete what anyone may look up, and one that needs nothing.
CATALOG = Catalog(
    catalog_id="conghua-kiosk",
    version=1,
    items=(
        item("RS-0012", query_needs=(ID_READER,), needs=(PRINTER,)),
        item("GJJ-0010", query_needs=(ID_READER,), needs=()),
        item("MZ-0019", query_needs=(), needs=(ID_READER,)),
        item("ZJ-0012", query_needs=(), needs=()),
    ),
)


def levels(availability: Availability) -> dict[str, Level]:
    return {one.code: one.level for one in availability.items}


def replaced(name: str, new: PeripheralStatus) -> tuple[PeripheralStatus, ...]:
    return tuple(new if one.name == name else one for one in KIOSK)


def test_everything_works_everything_full() -> None:
    availability = servable(CATALOG, KIOSK, TODAY)
    assert set(levels(availability).values()) == {Level.FULL}
    assert all(one.missing == () and one.reason == "" for one in availability.items)


def test_a_printer_out_of_paper_leaves_print_items_query_only_saying_why() -> None:
    printer_out = peripheral("printer0", PRINTER, FAULT, "paper_out")
    availability = servable(CATALOG, replaced("printer0", printer_out), TODAY)
    assert levels(availability) == {
        "GJJ-0010": Level.FULL,
        "MZ-0019": Level.FULL,
        "RS-0012": Level.QUERY_ONLY,
        "ZJ-0012": Level.FULL,
    }
    printing = next(one for one in availability.items if one.code == "RS-0012")
    assert printing.missing == (PRINTER,)
    assert printing.reason == "printer0 paper_out"


def test_an_id_reader_fault_follows_each_items_levels() -> None:
    reader_down = peripheral("idreader0", ID_READER, FAULT, "sam_error")
    availability = servable(CATALOG, replaced("idreader0", reader_down), TODAY)
    assert levels(availability) == {
        "GJJ-0010": Level.UNAVAILABLE,  # cannot even be looked up without the reader
        "MZ-0019": Level.QUERY_ONLY,  # looked up freely, completed with the reader
        "RS-0012": Level.UNAVAILABLE,
        "ZJ-0012": Level.FULL,
    }
    assert {one.reason for one in availability.items if one.missing} == {"idreader0 sam_error"}


def test_both_down_name_both_in_order_of_kind() -> None:
    down = (
        peripheral("printer0", PRINTER, ABSENT),
        peripheral("idreader0", ID_READER, UNKNOWN),
    )
    printing = servable(CATALOG, down, TODAY).items[2]
    assert printing.code == "RS-0012"
    assert printing.level == Level.UNAVAILABLE
    assert printing.missing == (PRINTER, ID_READER)
    assert printing.reason == "printer0 absent; idreader0 unknown"


@pytest.mark.parametrize("state", [OK, DEGRADED])
def test_a_working_or_degraded_printer_serves_in_full(state: PeripheralState) -> None:
    low_paper = peripheral("printer0", PRINTER, state, "paper_low")
    assert set(levels(servable(CATALOG, replaced("printer0", low_paper), TODAY)).values()) == {
        Level.FULL
    }


def test_a_kind_the_terminal_does_not_have_is_named() -> None:
    availability = servable(CATALOG, (peripheral("idreader0", ID_READER),), TODAY)
    printing = next(one for one in availability.items if one.code == "RS-0012")
    assert (printing.level, printing.reason) == (Level.QUERY_ONLY, "no a4_printer")


def test_one_working_printer_of_two_is_enough_and_all_broken_ones_are_named() -> None:
    spare = peripheral("printer1", PRINTER, FAULT, "cover_open")
    jammed = peripheral("printer0", PRINTER, FAULT, "jam")
    assert levels(servable(CATALOG, (*KIOSK, spare), TODAY))["RS-0012"] == Level.FULL
    both_down = (jammed, spare, peripheral("idreader0", ID_READER))
    printing = servable(CATALOG, both_down, TODAY).items[2]
    assert printing.reason == "printer0 jam, printer1 cover_open"


def test_a_peripheral_of_unknown_kind_provides_nothing() -> None:
    catalog = Catalog(
        catalog_id="c", version=1, items=(item("X-1", needs=(PeripheralKind.UNKNOWN,)),)
    )
    odd = (*KIOSK, peripheral("hologram0", PeripheralKind.UNKNOWN))
    result = servable(catalog, odd, TODAY).items[0]
    assert (result.level, result.missing) == (Level.QUERY_ONLY, (PeripheralKind.UNKNOWN,))
    assert "does not know" in result.reason


@pytest.mark.parametrize(
    ("today", "level"),
    [
        (date(2025, 4, 30), Level.NOT_EFFECTIVE),
        (date(2025, 5, 1), Level.FULL),
        (date(2025, 12, 31), Level.FULL),
        (date(2026, 1, 1), Level.NOT_EFFECTIVE),
    ],
)
def test_an_item_outside_its_dates_is_not_effective_whatever_works(
    today: date, level: Level
) -> None:
    dated = item("SW-0140", effective_from=date(2025, 5, 1), effective_to=date(2025, 12, 31))
    catalog = Catalog(catalog_id="c", version=1, items=(dated,))
    assert servable(catalog, KIOSK, today).items[0].level == level
    # Without peripherals an effective item cannot even be looked up; dates still come first.
    bare = Level.NOT_EFFECTIVE if level is Level.NOT_EFFECTIVE else Level.UNAVAILABLE
    assert servable(catalog, (), today).items[0].level == bare


def test_with_a_channel_items_not_offered_there_say_so() -> None:
    window_only = item("GA-0030", channels=(ServiceChannel.WINDOW,), needs=(), query_needs=())
    catalog = Catalog(catalog_id="c", version=1, items=(window_only, item("RS-0012")))
    kiosk = levels(servable(catalog, KIOSK, TODAY, channel=ServiceChannel.KIOSK))
    assert kiosk == {"GA-0030": Level.NOT_OFFERED, "RS-0012": Level.FULL}
    assert levels(servable(catalog, KIOSK, TODAY))["GA-0030"] == Level.FULL


def test_counts_cover_every_level_and_add_up() -> None:
    reader_down = peripheral("idreader0", ID_READER, FAULT)
    availability = servable(CATALOG, replaced("idreader0", reader_down), TODAY)
    assert availability.counts() == {
        Level.FULL: 1,
        Level.QUERY_ONLY: 1,
        Level.UNAVAILABLE: 2,
        Level.NOT_EFFECTIVE: 0,
        Level.NOT_OFFERED: 0,
    }
    assert (availability.catalog_id, availability.version) == ("conghua-kiosk", 1)


def test_items_sharing_needs_each_keep_their_own_code() -> None:
    twins = Catalog(catalog_id="c", version=1, items=(item("A-1"), item("A-2"), item("A-3")))
    assert [one.code for one in servable(twins, (), TODAY).items] == ["A-1", "A-2", "A-3"]


# --- properties -----------------------------------------------------------------------------

states = st.sampled_from(list(PeripheralState))
peripherals = st.lists(
    st.builds(
        PeripheralStatus,
        name=st.sampled_from(["p0", "p1", "p2"]),
        kind=st.sampled_from([*KNOWN_KINDS, PeripheralKind.UNKNOWN]),
        state=states,
        reason=st.sampled_from(["", "paper_out", "no_answer"]),
    ),
    max_size=6,
)


@given(catalogs(), peripherals, st.sampled_from(KNOWN_KINDS), dates)
def test_adding_a_working_peripheral_never_makes_an_item_less_available(
    catalog: Catalog, present: list[PeripheralStatus], kind: PeripheralKind, today: date
) -> None:
    before = servable(catalog, present, today)
    added = peripheral("new0", kind, OK)
    after = servable(catalog, [*present, added], today)
    for old, new in zip(before.items, after.items, strict=True):
        assert old.code == new.code
        if old.level in RANK:
            assert RANK[new.level] >= RANK[old.level]
            assert set(new.missing) == set(old.missing) - {kind}
        else:
            assert new.level == old.level  # dates and channels do not depend on peripherals


@given(catalogs(), peripherals, dates)
def test_levels_agree_with_what_is_missing(
    catalog: Catalog, present: list[PeripheralStatus], today: date
) -> None:
    working = {p.kind for p in present if p.state in {OK, DEGRADED}} - {PeripheralKind.UNKNOWN}
    availability = servable(catalog, present, today)
    assert sum(availability.counts().values()) == len(catalog.items)
    for one, result in zip(catalog.items, availability.items, strict=True):
        if not one.effective_on(today):
            assert result.level == Level.NOT_EFFECTIVE
            continue
        needed = set(one.needs) | set(one.query_needs)
        assert set(result.missing) == needed - working
        if set(one.query_needs) - working:
            assert result.level == Level.UNAVAILABLE
        elif result.missing:
            assert result.level == Level.QUERY_ONLY
        else:
            assert result.level == Level.FULL
        assert bool(result.reason) == bool(result.missing)
