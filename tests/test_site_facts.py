"""Sites' metric labels, districts and windows in the fleet state (``control_plane.site_facts``).

Pure tables first, then the site cache over the scoped tree (``tests/support/scoped_fleet.py``)
on SQLite and PostgreSQL: a full reload, and one site's change through the API.
"""

from __future__ import annotations

from control_plane.fleet import DeviceState, FleetState
from control_plane.site_cache import SiteCache
from control_plane.site_facts import SiteFacts, build_facts
from control_plane.site_labels import UNPLACED, SiteLabels
from tests.support.admin_api import admin_api
from tests.support.scoped_fleet import (
    DEVICES_AT,
    DISTRICT,
    NODES,
    PROVINCE,
    TOWN_B,
    TOWN_X,
    VILLAGE_A1,
)

CITY = "4401"
NODE_ROWS = [
    ("44", "province", "/44/"),
    ("4401", "city", "/44/4401/"),
    ("440117", "district", "/44/4401/440117/"),
    ("440118", "district", "/44/4401/440118/"),
    ("4490", "district", "/44/4490/"),  # 省直辖县: a county with no city above it
    ("440117001", "town", "/44/4401/440117/440117001/"),
    ("440117001001", "village", "/44/4401/440117/440117001/440117001001/"),
    ("440117002", "hamlet", "/44/4401/440117/440117002/"),  # a level this version does not know
]


def test_build_facts_labels_every_site_and_lists_every_district() -> None:
    sites = [
        ("hall", "district", "/44/4401/440117/"),
        ("station", "village", "/44/4401/440117/440117001/440117001001/"),
        ("county", "district", "/44/4490/"),
        ("odd", "town", "/44/4401/440117/440117002/"),
    ]
    facts = build_facts(sites, NODE_ROWS, [("hall", 1), ("hall", 2), ("station", 3)], {"p": 1})

    assert facts.labels == {
        "hall": SiteLabels("4401", "440117", "district"),
        "station": SiteLabels("4401", "440117", "village"),
        "county": SiteLabels("none", "4490", "district"),
        "odd": SiteLabels("4401", "440117", "town"),
    }
    assert facts.districts == {("4401", "440117"), ("4401", "440118"), ("none", "4490")}
    assert facts.windows == {"hall": frozenset({1, 2}), "station": frozenset({3})}
    assert facts.pad_windows == {"p": 1}


def test_with_site_copies_and_never_changes_the_old_facts() -> None:
    before = build_facts([("hall", "town", "/44/4401/440117/440117001/")], NODE_ROWS, [("hall", 1)])
    moved = before.with_site("hall", SiteLabels("4401", "440118", "district"), frozenset({4}))
    gone = moved.with_site("hall", None)

    assert before.labels["hall"] == SiteLabels("4401", "440117", "town")
    assert before.windows == {"hall": frozenset({1})}
    assert (moved.labels["hall"], moved.windows) == (
        SiteLabels("4401", "440118", "district"),
        {"hall": frozenset({4})},
    )
    assert (gone.labels, gone.windows, gone.districts) == ({}, {}, before.districts)


def test_fleet_site_labels_are_none_when_unplaced_or_the_site_is_unknown() -> None:
    fleet = FleetState()
    fleet.set_site_facts(SiteFacts(labels={"hall": SiteLabels("4401", "440117", "district")}))

    assert fleet.site_labels(DeviceState("a", site="hall")) == SiteLabels(
        "4401", "440117", "district"
    )
    assert fleet.site_labels(DeviceState("b", site="elsewhere")) == UNPLACED
    assert fleet.site_labels(DeviceState("c")) == UNPLACED == SiteLabels("none", "none", "none")


async def test_a_reload_labels_every_device_from_the_tree(database_url: str) -> None:
    levels = {code: level for code, level, _ in NODES}
    async with admin_api(database_url) as api:
        secret = await api.token()
        await api.ok("POST", f"/api/v1/sites/s{TOWN_B}/windows/01", secret, {})
        fleet = FleetState(
            [DeviceState(device, site=f"s{node}") for device, node in DEVICES_AT.items()]
        )
        await SiteCache(fleet).reload()

    assert {state.device_id: fleet.site_labels(state) for state in fleet} == {
        device: SiteLabels(CITY, DISTRICT, levels[node]) for device, node in DEVICES_AT.items()
    }
    assert fleet.site_facts.districts == {(CITY, DISTRICT)}
    assert set(fleet.site_facts.windows) == {f"s{TOWN_B}"}
    assert PROVINCE not in fleet.site_facts.labels


async def test_a_site_change_through_the_api_moves_its_devices_labels_at_once(
    database_url: str,
) -> None:
    async with admin_api(database_url) as api:
        await SiteCache(api.fleet).reload()  # as the server does at start
        secret = await api.token()
        before = api.fleet.site_labels(DeviceState("pad-a1", site=f"s{VILLAGE_A1}"))
        await api.ok("PATCH", f"/api/v1/sites/s{VILLAGE_A1}", secret, {
            "node": DISTRICT, "level": "district",
        })  # fmt: skip
        pad = api.fleet.get("pad-a1")
        assert pad is not None
        moved = api.fleet.site_labels(pad)
        await api.ok("POST", "/api/v1/devices/pad-a1/move", secret, {"site": f"s{TOWN_B}"})
        pad = api.fleet.get("pad-a1")
        assert pad is not None
        placed = api.fleet.site_labels(pad)
        await api.ok("POST", "/api/v1/devices/kiosk-x/move", secret, {"site": f"s{TOWN_B}"})
        await api.ok("DELETE", f"/api/v1/sites/s{TOWN_X}", secret)
        gone = api.fleet.site_labels(DeviceState("x", site=f"s{TOWN_X}"))

    assert before == SiteLabels(CITY, DISTRICT, "village")
    assert moved == SiteLabels(CITY, DISTRICT, "district")
    assert placed == SiteLabels(CITY, DISTRICT, "town")
    assert gone == UNPLACED
