"""The demo district's terminals, and the simulated health readings they report."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from edge import __version__
from edge.protocol import (
    Channel,
    DeviceKind,
    Heartbeat,
    NetworkType,
    PeripheralKind,
    PeripheralState,
    decode,
    encode,
)
from edge.protocol.topics import parse, uplink
from edge.simulator import district
from edge.simulator.district import (
    DistrictError,
    SimulatedTerminal,
    available_districts,
    load_district,
    terminals,
)
from edge.simulator.health import PERIPHERALS, SimulatedHealth

KINDS = [k for k in DeviceKind if k is not DeviceKind.UNKNOWN]
TROUBLE = {
    PeripheralKind.RECEIPT_PRINTER: (PeripheralState.DEGRADED, "paper_near_end"),
    PeripheralKind.A4_PRINTER: (PeripheralState.FAULT, "paper_jam"),
    PeripheralKind.ID_CARD_READER: (PeripheralState.FAULT, "no_answer"),
}


@pytest.fixture(scope="module")
def conghua() -> dict[str, Any]:
    return load_district("conghua")


@pytest.fixture(scope="module")
def fleet() -> list[SimulatedTerminal]:
    return terminals("conghua")


def test_conghua_is_available() -> None:
    assert "conghua" in available_districts()


def test_conghua_has_the_fifteen_kiosks_of_the_seeds(fleet: list[SimulatedTerminal]) -> None:
    assert sum(t.kind is DeviceKind.KIOSK for t in fleet) == 15


def test_one_review_pad_per_window(conghua: dict[str, Any], fleet: list[SimulatedTerminal]) -> None:
    windows = sum(site.get("windows", 0) for site in conghua["sites"])
    pads = [t for t in fleet if t.kind is DeviceKind.REVIEW_PAD]

    assert conghua["review_pad_per_window"] is True
    assert windows == 112
    assert len(pads) == windows
    assert all(t.window for t in pads)
    for site in conghua["sites"]:
        site_windows = sorted(t.window for t in pads if t.site_code == site["code"])
        assert site_windows == [f"{w:02d}" for w in range(1, site.get("windows", 0) + 1)]


def test_counts_per_kind_follow_the_site_list(
    conghua: dict[str, Any], fleet: list[SimulatedTerminal]
) -> None:
    declared: Counter[str] = Counter()
    for site in conghua["sites"]:
        declared.update(site.get("terminals", {}))
    built = Counter(t.kind.value for t in fleet if t.kind is not DeviceKind.REVIEW_PAD)

    assert built == declared
    assert len(fleet) == sum(declared.values()) + 112


def test_device_ids_are_unique_and_valid_topic_ids(fleet: list[SimulatedTerminal]) -> None:
    ids = [t.device_id for t in fleet]

    assert len(set(ids)) == len(ids)
    for device_id in ids:
        for channel in (Channel.PRESENCE, Channel.HEALTH):
            topic = parse(uplink(device_id, channel))
            assert topic.subject == device_id


def test_device_ids_name_kind_and_site(fleet: list[SimulatedTerminal]) -> None:
    prefix = {
        DeviceKind.KIOSK: "kiosk",
        DeviceKind.REVIEW_PAD: "pad",
        DeviceKind.STATION_PC: "station",
        DeviceKind.BOOTH: "booth",
    }
    for t in fleet:
        assert t.device_id.startswith(f"{prefix[t.kind]}-{t.site_code}-")


def test_every_terminal_belongs_to_a_listed_site(
    conghua: dict[str, Any], fleet: list[SimulatedTerminal]
) -> None:
    levels = {site["code"]: site["level"] for site in conghua["sites"]}

    for t in fleet:
        assert levels[t.site_code] == t.site_level


def test_every_site_parent_exists(conghua: dict[str, Any]) -> None:
    jurisdiction = {j["code"] for j in conghua["jurisdiction"]}
    sites = {s["code"] for s in conghua["sites"]}

    assert len(sites) == len(conghua["sites"]), "duplicate site codes"
    missing = [s["code"] for s in conghua["sites"] if s["parent"] not in jurisdiction | sites]
    assert missing == []


def test_jurisdiction_is_one_tree(conghua: dict[str, Any]) -> None:
    codes = {j["code"] for j in conghua["jurisdiction"]}
    roots = [j["code"] for j in conghua["jurisdiction"] if j["parent"] is None]

    assert roots == ["44"]
    assert all(j["parent"] in codes for j in conghua["jurisdiction"] if j["parent"] is not None)


def test_terminals_are_listed_in_a_stable_order() -> None:
    assert terminals("conghua") == terminals("conghua")


def test_unknown_district_lists_the_known_ones() -> None:
    with pytest.raises(DistrictError, match=r"unknown district 'atlantis'; known: .*conghua"):
        terminals("atlantis")


def test_unknown_district_from_load_district_too() -> None:
    with pytest.raises(DistrictError, match=r"conghua"):
        load_district("../conghua")


def test_unknown_terminal_kind_in_a_dataset_is_a_district_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A malformed dataset must fail as DistrictError, which `termfleet simulate` reports cleanly;
    # an unknown kind reads as DeviceKind.UNKNOWN, which has no id prefix.
    data = {
        "name": "broken",
        "review_pad_per_window": False,
        "sites": [{"code": "1", "level": "town", "terminals": {"kiosks": 1}}],
    }
    monkeypatch.setattr(district, "load_district", lambda _name: data)

    with pytest.raises(DistrictError, match=r"kiosks"):
        terminals("broken")


# --- simulated health -------------------------------------------------------------------------


def readings(kind: DeviceKind, seed: int, count: int) -> list[Heartbeat]:
    health = SimulatedHealth(kind, random.Random(seed))
    return [health.read() for _ in range(count)]


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_readings(kind: DeviceKind) -> None:
    assert readings(kind, 7, 200) == readings(kind, 7, 200)


def test_different_seeds_differ() -> None:
    assert readings(DeviceKind.KIOSK, 7, 5) != readings(DeviceKind.KIOSK, 8, 5)


@pytest.mark.parametrize("kind", KINDS)
def test_values_stay_in_range(kind: DeviceKind) -> None:
    series = readings(kind, 11, 2000)
    expected_network = {
        DeviceKind.STATION_PC: NetworkType.CELLULAR_4G,
        DeviceKind.REVIEW_PAD: NetworkType.WIFI,
    }.get(kind, NetworkType.ETHERNET)

    for previous, current in itertools.pairwise(series):
        assert current.uptime_s is not None
        assert previous.uptime_s is not None
        assert current.uptime_s == previous.uptime_s + 30
    for hb in series:
        assert hb.full is True
        assert hb.cpu_percent is not None
        assert 0.5 <= hb.cpu_percent <= 100.0
        assert hb.memory_percent is not None
        assert 35.0 <= hb.memory_percent <= 60.0
        assert hb.disk_percent == 42.0
        assert hb.temperature_c is not None
        assert 38.0 <= hb.temperature_c <= 55.0
        assert hb.uptime_s is not None
        assert hb.uptime_s >= 600
        assert hb.agent_version == __version__
        assert hb.outbox_backlog == 0
        assert hb.network is not None
        assert hb.network.type is expected_network
        if expected_network is NetworkType.CELLULAR_4G:
            assert hb.network.signal_dbm is not None
            assert -105 <= hb.network.signal_dbm <= -70
        else:
            assert hb.network.signal_dbm is None


@pytest.mark.parametrize("kind", KINDS)
def test_peripherals_per_kind(kind: DeviceKind) -> None:
    first = readings(kind, 3, 1)[0]

    assert first.peripherals is not None
    assert [(p.name, p.kind) for p in first.peripherals] == list(PERIPHERALS[kind])
    assert {p.state for p in first.peripherals} == {PeripheralState.OK}
    assert {p.model for p in first.peripherals} == {"sim"}


def test_every_kind_has_peripherals_with_unique_names() -> None:
    assert set(PERIPHERALS) == set(KINDS)
    for kind, peripherals in PERIPHERALS.items():
        names = [name for name, _ in peripherals]
        assert len(set(names)) == len(names), kind


def test_unknown_kind_has_no_peripherals() -> None:
    assert readings(DeviceKind.UNKNOWN, 1, 1)[0].peripherals == ()


@pytest.mark.parametrize("kind", [DeviceKind.KIOSK, DeviceKind.STATION_PC])
def test_peripherals_leave_ok_and_come_back(kind: DeviceKind) -> None:
    left: set[str] = set()
    recovered: set[str] = set()
    last: dict[str, PeripheralState] = {}
    for hb in readings(kind, 0, 5000):
        assert hb.peripherals is not None
        assert [p.name for p in hb.peripherals] == [name for name, _ in PERIPHERALS[kind]]
        for p in hb.peripherals:
            if p.state is PeripheralState.OK:
                assert p.reason == ""
                if last.get(p.name, PeripheralState.OK) is not PeripheralState.OK:
                    recovered.add(p.name)
            else:
                assert (p.state, p.reason) == TROUBLE[p.kind]
                left.add(p.name)
            last[p.name] = p.state

    troubled = {name for name, pkind in PERIPHERALS[kind] if pkind in TROUBLE}
    assert left
    assert left <= troubled
    assert recovered & left


@pytest.mark.parametrize("kind", KINDS)
def test_simulated_readings_round_trip_on_the_health_channel(kind: DeviceKind) -> None:
    for seq, hb in enumerate(readings(kind, 5, 20), start=1):
        message = msgspec.structs.replace(hb, seq=seq)

        assert decode(Channel.HEALTH, encode(message)) == message
