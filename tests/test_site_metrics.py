"""The fleet gauges computed at scrape time: site top-N, faults, windows, backlog, districts.

Pure: a fleet state built in memory, scraped through ``ControlPlaneMetrics``'s registry and read
back with prometheus_client's parser, as Prometheus reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.fault_reasons import KNOWN_PAIRS, OTHER, fault_reason
from control_plane.fleet import DeviceState, FleetState
from control_plane.metrics import ControlPlaneMetrics
from control_plane.site_counts import SiteCount, top_sites
from control_plane.site_facts import SiteFacts, build_facts
from control_plane.site_labels import UNPLACED, SiteLabels
from edge import schedule
from edge.protocol import (
    DeviceKind,
    Heartbeat,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    PresenceState,
)
from monitoring import metrics as names
from monitoring.metrics import TOP_SITES

NOON = datetime(2024, 6, 11, 4, 0, tzinfo=UTC)  # Tuesday 12:00 in Guangzhou
NIGHT = datetime(2024, 6, 11, 16, 0, tzinfo=UTC)  # Wednesday 00:00 in Guangzhou
OFFICE_HOURS = schedule.parse("mon-fri 08:30-17:30")
NODES = [
    ("44", "province", "/44/"),
    ("4401", "city", "/44/4401/"),
    ("440117", "district", "/44/4401/440117/"),
    ("440118", "district", "/44/4401/440118/"),
    ("440117001", "town", "/44/4401/440117/440117001/"),
]
SITES = [
    ("hall", "district", "/44/4401/440117/"),
    ("town", "town", "/44/4401/440117/440117001/"),
]
Samples = dict[tuple[tuple[str, str], ...], float]


def device(
    device_id: str,
    site: str = "",
    kind: DeviceKind = DeviceKind.KIOSK,
    *,
    online: bool = True,
    peripherals: tuple[PeripheralStatus, ...] = (),
    backlog: int | None = None,
) -> DeviceState:
    return DeviceState(
        device_id,
        kind,
        PresenceState.ONLINE if online else PresenceState.OFFLINE,
        site=site,
        health=Heartbeat(full=True, peripherals=peripherals, outbox_backlog=backlog),
    )


def fault(
    kind: PeripheralKind, reason: str, state: PeripheralState = PeripheralState.FAULT
) -> PeripheralStatus:
    return PeripheralStatus(name=f"{kind.value}0", kind=kind, state=state, reason=reason)


def fleet_of(*devices: DeviceState, facts: SiteFacts | None = None) -> FleetState:
    fleet = FleetState(devices)
    fleet.set_site_facts(facts or build_facts(SITES, NODES))
    fleet.set_opening_hours({"hall": OFFICE_HOURS, "town": OFFICE_HOURS})
    return fleet


def scrape(fleet: FleetState, name: str, now: datetime = NOON) -> Samples:
    """The samples of one metric: sorted label pairs → value."""
    text = generate_latest(ControlPlaneMetrics(fleet, lambda: now).registry).decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


# --- top-N -----------------------------------------------------------------------------------


def test_top_sites_are_the_worst_first_ties_by_code_zeros_left_out_and_capped() -> None:
    counts = {"s-b": 3, "s-a": 3, "s-c": 5, "s-d": 0, "s-e": 1}
    labels = {"s-c": SiteLabels("4401", "440117", "town")}

    top = top_sites(counts, labels, limit=3)

    assert top == [
        SiteCount("s-c", SiteLabels("4401", "440117", "town"), 5),
        SiteCount("s-a", UNPLACED, 3),
        SiteCount("s-b", UNPLACED, 3),
    ]
    assert top_sites(counts, labels) == top_sites(dict(reversed(counts.items())), labels)


def test_the_offline_site_gauge_lists_at_most_top_sites_sites_worst_first() -> None:
    sites = [(f"s{i:03}", "village", "/44/4401/440117/440117001/") for i in range(TOP_SITES + 10)]
    # Site i has i + 1 terminals unexpectedly offline (open at noon: no hours known).
    devices = [
        device(f"d{i}-{n}", f"s{i:03}", online=False)
        for i in range(TOP_SITES + 10)
        for n in range(i + 1)
    ]
    fleet = FleetState([*devices, device("unplaced", online=False)])
    fleet.set_site_facts(build_facts(sites, NODES))

    samples = scrape(fleet, names.SITE_DEVICES_OFFLINE.name)

    assert len(samples) == TOP_SITES
    worst = max(samples, key=lambda k: samples[k])
    assert worst == key(
        site=f"s{TOP_SITES + 9:03}", city="4401", district="440117", level="village"
    )
    assert min(samples.values()) == 11  # the ten best sites (1..10 offline) dropped out


def test_offline_sites_count_only_unexpected_terminals() -> None:
    fleet = fleet_of(device("a", "hall", online=False), device("b", "town", online=True))

    assert scrape(fleet, names.SITE_DEVICES_OFFLINE.name) == {
        key(site="hall", city="4401", district="440117", level="district"): 1.0
    }
    assert scrape(fleet, names.SITE_DEVICES_OFFLINE.name, now=NIGHT) == {}  # closed: expected


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason", "counted"),
    [
        (PeripheralKind.RECEIPT_PRINTER, "paper_out", "paper_out"),
        (PeripheralKind.A4_PRINTER, "paper_jam", "paper_jam"),
        (PeripheralKind.ID_CARD_READER, "sam_fault", "sam_fault"),
        (PeripheralKind.REVIEW_PAD, "key_stuck", "key_stuck"),
        (PeripheralKind.CAMERA, "unplugged", "unplugged"),
        (PeripheralKind.REVIEW_PAD, "paper_out", OTHER),  # known, but not for a pad
        (PeripheralKind.RECEIPT_PRINTER, "flux_capacitor", OTHER),
        (PeripheralKind.RECEIPT_PRINTER, "", OTHER),
        (PeripheralKind.UNKNOWN, "no_answer", "no_answer"),
    ],
)
def test_fault_reasons_are_bounded(kind: PeripheralKind, reason: str, counted: str) -> None:
    assert fault_reason(kind, reason) == counted


def test_faults_of_online_terminals_by_kind_and_reason_every_known_pair_present() -> None:
    printer_out = fault(PeripheralKind.RECEIPT_PRINTER, "paper_out")
    low = fault(PeripheralKind.RECEIPT_PRINTER, "paper_near_end", PeripheralState.DEGRADED)
    fleet = fleet_of(
        device("k1", "hall", peripherals=(printer_out,)),
        device("k2", "hall", peripherals=(low, fault(PeripheralKind.SCREEN, "weird"))),
        device("k3", "town", peripherals=(printer_out,)),
        device("k4", "town", online=False, peripherals=(printer_out,)),  # offline: not counted
        device("k5", "town", peripherals=(fault(PeripheralKind.CAMERA, "", PeripheralState.OK),)),
    )

    samples = scrape(fleet, names.PERIPHERAL_FAULTS.name)

    assert len(samples) == len(KNOWN_PAIRS)
    assert {k: v for k, v in samples.items() if v} == {
        key(peripheral_kind="receipt_printer", reason="paper_out"): 2.0,
        key(peripheral_kind="receipt_printer", reason="paper_near_end"): 1.0,
        key(peripheral_kind="screen", reason="other"): 1.0,
    }


def test_site_faults_list_the_worst_sites_with_each_fault_they_have() -> None:
    out = fault(PeripheralKind.RECEIPT_PRINTER, "paper_out")
    reader = fault(PeripheralKind.ID_CARD_READER, "sam_fault")
    fleet = fleet_of(
        device("k1", "hall", peripherals=(out,)),
        device("k2", "town", peripherals=(out, reader)),
        device("k3", "", peripherals=(out,)),  # placed nowhere: in the totals, at no site
    )

    samples = scrape(fleet, names.SITE_PERIPHERAL_FAULTS.name)

    town = {"site": "town", "city": "4401", "district": "440117", "level": "town"}
    hall = {"site": "hall", "city": "4401", "district": "440117", "level": "district"}
    assert samples == {
        key(**town, peripheral_kind="id_card_reader", reason="sam_fault"): 1.0,
        key(**town, peripheral_kind="receipt_printer", reason="paper_out"): 1.0,
        key(**hall, peripheral_kind="receipt_printer", reason="paper_out"): 1.0,
    }


# --- windows without a pad -------------------------------------------------------------------


def window_fleet(*devices: DeviceState) -> FleetState:
    facts = build_facts(
        [*SITES, ("nohours", "town", "/44/4401/440117/440117001/")],
        NODES,
        [("hall", 1), ("hall", 2), ("hall", 3), ("town", 4), ("nohours", 5)],
        {"pad1": 1, "pad2": 2, "pad4": 4},
    )
    return fleet_of(*devices, facts=facts)


def test_windows_without_an_online_pad_at_open_sites() -> None:
    fleet = window_fleet(
        device("pad1", "hall", DeviceKind.REVIEW_PAD),
        device("pad2", "hall", DeviceKind.REVIEW_PAD, online=False),  # bound but offline
        device("pad4", "town", DeviceKind.REVIEW_PAD),
    )

    samples = scrape(fleet, names.SITE_WINDOWS_WITHOUT_PAD.name)

    assert samples == {
        key(site="hall", city="4401", district="440117", level="district"): 2.0,
        # Hours unknown: counted as open, as for offline terminals.
        key(site="nohours", city="4401", district="440117", level="town"): 1.0,
    }


def test_closed_sites_are_absent_from_windows_without_a_pad() -> None:
    fleet = window_fleet()

    at_night = scrape(fleet, names.SITE_WINDOWS_WITHOUT_PAD.name, now=NIGHT)

    assert at_night == {key(site="nohours", city="4401", district="440117", level="town"): 1.0}


def test_only_review_pads_cover_a_window() -> None:
    fleet = window_fleet(device("pad4", "town", DeviceKind.STATION_PC))

    samples = scrape(fleet, names.SITE_WINDOWS_WITHOUT_PAD.name)

    assert samples[key(site="town", city="4401", district="440117", level="town")] == 1.0


# --- outbox backlog --------------------------------------------------------------------------


def test_outbox_backlog_is_a_gauge_histogram_over_online_terminals() -> None:
    fleet = fleet_of(
        device("a", backlog=0),
        device("b", backlog=10),
        device("c", backlog=11),
        device("d", backlog=250_000),
        device("e", backlog=5_000, online=False),  # offline: its backlog is stale
        device("f"),  # an agent that does not report it
    )
    name = names.OUTBOX_BACKLOG.name

    buckets = scrape(fleet, name + "_bucket")
    assert {dict(k)["le"]: v for k, v in buckets.items()} == {
        "0.0": 1.0,
        "10.0": 2.0,
        "100.0": 3.0,
        "1000.0": 3.0,
        "10000.0": 3.0,
        "100000.0": 3.0,
        "+Inf": 4.0,
    }
    assert scrape(fleet, name + "_gcount") == {(): 4.0}
    assert scrape(fleet, name + "_gsum") == {(): 250_021.0}


# --- devices by level and by district ----------------------------------------------------------


def test_devices_by_district_list_every_district_and_the_unplaced() -> None:
    fleet = fleet_of(device("a", "hall"), device("b", "town", online=False), device("c"))

    samples = scrape(fleet, names.DISTRICT_DEVICES.name)

    places = {(dict(k)["city"], dict(k)["district"]) for k in samples}
    assert places == {("4401", "440117"), ("4401", "440118"), ("none", "none")}
    assert len(samples) == 3 * 4
    assert {k: v for k, v in samples.items() if v} == {
        key(city="4401", district="440117", presence="online"): 1.0,
        key(city="4401", district="440117", presence="offline_unexpected"): 1.0,
        key(city="none", district="none", presence="online"): 1.0,
    }


def test_devices_carry_their_halls_level_and_a_site_change_moves_them() -> None:
    fleet = fleet_of(device("a", "hall"), device("b", "town"), device("c", "unknown-site"))
    before = scrape(fleet, names.DEVICES.name)
    moved = fleet.site_facts.with_site("hall", SiteLabels("4401", "440118", "village"))
    fleet.set_site_facts(moved)
    after = scrape(fleet, names.DEVICES.name)
    districts = scrape(fleet, names.DISTRICT_DEVICES.name)

    def online_kiosks(samples: Samples) -> dict[str, float]:
        return {
            dict(k)["level"]: v
            for k, v in samples.items()
            if v and dict(k)["kind"] == "kiosk" and dict(k)["presence"] == "online"
        }

    assert len(before) == len(DeviceKind) * 4 * 4
    assert online_kiosks(before) == {"district": 1.0, "town": 1.0, "none": 1.0}
    assert online_kiosks(after) == {"village": 1.0, "town": 1.0, "none": 1.0}
    assert districts[key(city="4401", district="440118", presence="online")] == 1.0


def test_the_registry_has_the_process_collector() -> None:
    samples = scrape(FleetState(), "process_resident_memory_bytes")

    assert samples[()] > 0
