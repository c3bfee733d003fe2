"""/api/v1/sites, their windows and /api/v1/departments, on SQLite and PostgreSQL.

The tree is ``tests/support/scoped_fleet.py``'s; every site there (``s<node code>``) has one
kiosk, hours 24/7 and no windows.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.auth import Role
from control_plane.db import database
from control_plane.db.models import AuditEntry, Device, ServiceWindow, Site, WindowDepartment
from control_plane.fleet import Availability, DeviceState, FleetState
from control_plane.http.admin import encode_cursor
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.services.broker import BrokerSettings
from control_plane.site_cache import SiteCache
from edge.protocol import PresenceState
from tests.support.admin_api import admin_api, audit_count
from tests.support.control_plane import running_control_plane
from tests.support.scoped_fleet import (
    ANCESTORS,
    DEVICES_AT,
    DISTRICT,
    TOWN_A,
    TOWN_B,
    TOWN_X,
    VILLAGE_A1,
    document,
)

HALL = {
    "code": "hall-b2",
    "name": "太平镇政务服务中心",
    "level": "town",
    "node": TOWN_B,
    "hours": "mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00",
    "address": "太平镇府前路 1 号",
    "holidays": {"2026-10-01..2026-10-03": "closed", "2026-09-27": "08:30-17:30"},
}
SITES = sorted(f"s{node}" for node in set(DEVICES_AT.values()))
SUNDAY_NOON = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", SITES),
        (f"?node={TOWN_A}", [f"s{TOWN_A}", f"s{VILLAGE_A1}"]),
        (f"?node={TOWN_X}", [f"s{TOWN_X}"]),
        ("?level=town", [f"s{TOWN_A}", f"s{TOWN_X}", f"s{TOWN_B}"]),
        ("?q=SITE 440117002", [f"s{TOWN_B}"]),  # in names, whatever the case
        (f"?node={TOWN_A}&level=village", [f"s{VILLAGE_A1}"]),
        ("?q=no such", []),
        ("?q=%25", []),  # LIKE's wildcard is matched as itself
    ],
)
async def test_sites_are_listed_by_code_with_filters(
    database_url: str, query: str, expected: list[str]
) -> None:
    async with admin_api(database_url) as api:
        items = await api.listing(f"/api/v1/sites{query}", await api.token(Role.AUDITOR))

    assert [site["code"] for site in items] == sorted(expected)


LEVELS = {"allowed": ["city", "district", "province", "town", "village"]}
UNKNOWN_NODES = {"unknown": ["nodes"], "allowed": ["cursor", "level", "limit", "node", "q"]}


@pytest.mark.parametrize(
    ("query", "message", "details"),
    [
        ("?level=hall", "level must be one of", {"parameter": "level", **LEVELS}),
        ("?q=" + "x" * 101, "q must be 1 to 100 characters", {"parameter": "q"}),
        ("?q=", "q must be 1 to 100 characters", {"parameter": "q"}),
        ("?nodes=44", "unknown parameter(s) nodes", {"parameter": "nodes", **UNKNOWN_NODES}),
        ("?limit=0", "limit must be between 1 and 500", {"parameter": "limit"}),
        ("?limit=x", "limit must be an integer", {"parameter": "limit"}),
        ("?cursor=abc", "cursor: not a cursor of this listing", {"parameter": "cursor"}),
        ("?cursor=eyJhZnRlciI6IDF9", "cursor: not a cursor", {"parameter": "cursor"}),  # after 1
        ("?node=%00", "node: text with NUL", {"parameter": "node"}),
        ("?cursor=" + encode_cursor("\x00"), "cursor: not a cursor", {"parameter": "cursor"}),
        ("?cursor=" + encode_cursor(3), "cursor: not a cursor", {"parameter": "cursor"}),
    ],
)
async def test_bad_listing_parameters_are_400s_naming_them(
    sqlite_url: str, query: str, message: str, details: dict[str, object]
) -> None:
    async with admin_api(sqlite_url) as api:
        status, body = await api.call("GET", f"/api/v1/sites{query}", await api.token())

    assert (status, body["error"]["code"]) == (400, "invalid_parameter")
    assert message in body["error"]["message"]
    assert body["error"]["details"] == details


async def test_a_site_shows_its_windows_departments_and_hours(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token()
        await api.ok("POST", "/api/v1/sites", secret, HALL)
        window = {"name": "综合窗口", "departments": ["shebao", "gongan"]}
        await api.ok("POST", "/api/v1/sites/hall-b2/windows/01", secret, window)
        await api.ok("POST", "/api/v1/sites/hall-b2/windows/A12", secret, {})
        shown = await api.ok("GET", "/api/v1/sites/hall-b2", await api.token(Role.OPERATOR, TOWN_B))

    assert shown["hours"] == HALL["hours"]
    assert shown["holidays"] == {
        "2026-09-27": "08:30-17:30",
        "2026-10-01": "closed",
        "2026-10-02": "closed",
        "2026-10-03": "closed",
    }
    assert shown["windows"] == [
        {"number": "01", "name": "综合窗口", "departments": ["gongan", "shebao"]},
        {"number": "A12", "name": "", "departments": []},
    ]
    assert shown["departments"] == [
        {"code": "gongan", "name": "dept gongan"},
        {"code": "shebao", "name": "dept shebao"},
    ]
    assert (shown["node"], shown["node_name"], shown["path"][-1]) == (TOWN_B, f"n{TOWN_B}", TOWN_B)
    assert (shown["devices"], shown["staff"]) == (0, 0)


# --- changing --------------------------------------------------------------------------------


async def test_a_created_site_is_audited_and_listed(database_url: str) -> None:
    async with admin_api(database_url) as api:
        created = await api.ok("POST", "/api/v1/sites", await api.token(Role.ADMIN, TOWN_B), HALL)
        listed = await api.listing(f"/api/v1/sites?node={TOWN_B}", await api.token())
        entry = await AuditEntry.get(action="site.create")

    assert created["code"] == "hall-b2"
    assert created["address"] == HALL["address"]
    assert [site["code"] for site in listed] == ["hall-b2", f"s{TOWN_B}"]
    assert (entry.target_id, entry.scope_path, entry.after) == (
        "hall-b2",
        f"/44/4401/{DISTRICT}/{TOWN_B}/",
        created,
    )


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"hours": "8:30-17:30"}, 400, "hours: '8:30-17:30' has no hours"),
        ({"hours": "mon-fri 17:30-08:30"}, 400, "hours: '17:30-08:30' ends before it starts"),
        ({"holidays": {"2026-13-01": "closed"}}, 400, "holidays: '2026-13-01' is not a date"),
        ({"holidays": {"2026-10-01": "9-5"}}, 400, "holidays: 2026-10-01: '9-5' is not HH:MM"),
        ({"level": "district"}, 400, "level: a district site cannot hang off the town"),
        ({"node": "440199"}, 400, "node: no node has the code '440199'"),
        ({"code": "s440117002"}, 409, "a site with the code s440117002 exists"),
        ({"code": "a b"}, 400, "code: 'a b' is not a site code"),
        ({"windows": []}, 400, "unknown field(s) windows"),
        ({"hours": None}, 400, "hours: missing"),
    ],
)
async def test_a_bad_site_is_refused_naming_the_field(
    database_url: str, change: dict[str, object], status: int, message: str
) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token()
        before = await audit_count()
        got, body = await api.call("POST", "/api/v1/sites", secret, {**HALL, **change})

        assert got == status, body
        assert message in body["error"]["message"]
        assert await audit_count() == before
        assert not await Site.exists(code="hall-b2")


async def test_changed_hours_reach_the_fleet_state_at_once(database_url: str) -> None:
    """A kiosk offline at noon on a Sunday: unexpected while open 24/7, expected once closed."""
    async with admin_api(database_url) as api:
        kiosk = api.fleet.get("kiosk-b")
        assert kiosk is not None
        api.fleet.put(dataclasses.replace(kiosk, presence=PresenceState.OFFLINE))
        offline = api.fleet.get("kiosk-b")
        assert offline is not None
        was = api.fleet.effective(offline, SUNDAY_NOON).availability

        weekdays = {"hours": "mon-fri 08:30-17:30"}
        await api.ok("PATCH", f"/api/v1/sites/s{TOWN_B}", await api.token(), weekdays)
        now = api.fleet.effective(offline, SUNDAY_NOON).availability

    assert (was, now) == (Availability.OFFLINE_UNEXPECTED, Availability.OFFLINE_EXPECTED)


async def test_a_site_moved_to_another_town_changes_scope_at_once(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret_a = await api.token(Role.ADMIN, TOWN_A)
        moved = await api.ok("PATCH", f"/api/v1/sites/s{VILLAGE_A1}", await api.token(), {
            "node": TOWN_B, "level": "village", "name": "moved",
        })  # fmt: skip
        kiosk = api.fleet.get("pad-a1")
        assert kiosk is not None
        path = api.fleet.site_path(kiosk)
        gone = await api.call("GET", f"/api/v1/sites/s{VILLAGE_A1}", secret_a)
        entry = await AuditEntry.get(action="site.update")

    assert (moved["node"], moved["name"]) == (TOWN_B, "moved")
    assert path == f"/44/4401/{DISTRICT}/{TOWN_B}/"
    assert gone[0] == 404
    # Audited where both ends lie, so that the district's auditors read it.
    assert entry.scope_path == f"/44/4401/{DISTRICT}/"
    assert entry.before is not None
    assert (entry.before["node"], entry.before["name"]) == (VILLAGE_A1, f"site {VILLAGE_A1}")


async def test_a_created_site_is_known_to_the_fleet_state_and_forgotten_when_deleted(
    database_url: str,
) -> None:
    somewhere = DeviceState("kiosk-new", site="hall-b2")
    async with admin_api(database_url) as api:
        secret = await api.token()
        await api.ok("POST", "/api/v1/sites", secret, HALL)
        known = (
            api.fleet.site_path(somewhere),
            api.fleet.effective(
                dataclasses.replace(somewhere, presence=PresenceState.OFFLINE), SUNDAY_NOON
            ).availability,
        )
        await api.ok("DELETE", "/api/v1/sites/hall-b2", secret)
        forgotten = api.fleet.site_path(somewhere)

    assert known == (f"/44/4401/{DISTRICT}/{TOWN_B}/", Availability.OFFLINE_EXPECTED)
    assert forgotten is None


async def test_a_patch_that_changes_nothing_writes_nothing(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token()
        before = await audit_count()
        same = await api.ok("PATCH", f"/api/v1/sites/s{TOWN_B}", secret, {"hours": "24/7"})

        assert same["hours"] == "24/7"
        assert await audit_count() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [({"code": "x"}, "code"), ({}, None), ({"hours": "never"}, "hours"), ({"node": "1"}, "node")],
)
async def test_a_bad_patch_is_refused(
    database_url: str, change: dict[str, object], field: str | None
) -> None:
    async with admin_api(database_url) as api:
        status, body = await api.call(
            "PATCH", f"/api/v1/sites/s{TOWN_B}", await api.token(), change
        )

    assert status == 400, body
    assert body["error"]["message"].startswith(f"{field}: " if field else "the body changes")
    assert body["error"]["details"] == ({"field": field} if field else {})


async def test_a_site_with_devices_or_staff_stays_and_an_empty_one_goes(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token()
        with_device = await api.call("DELETE", f"/api/v1/sites/s{TOWN_B}", secret)
        await api.ok("POST", "/api/v1/sites", secret, HALL)
        await api.ok(
            "POST", "/api/v1/sites/hall-b2/windows/01", secret, {"departments": ["gongan"]}
        )
        staff = {"number": "B001", "name": "王五", "department": "gongan", "site": "hall-b2"}
        await api.ok("POST", "/api/v1/staff", secret, staff)
        with_staff = await api.call("DELETE", "/api/v1/sites/hall-b2", secret)
        await api.ok("POST", "/api/v1/sites", secret, {**HALL, "code": "hall-b3"})
        await api.ok(
            "POST", "/api/v1/sites/hall-b3/windows/01", secret, {"departments": ["gongan"]}
        )
        deleted = await api.call("DELETE", "/api/v1/sites/hall-b3", secret)
        entry = await AuditEntry.get(action="site.delete")
        windows = await ServiceWindow.all().count()
        links = await WindowDepartment.all().count()

    assert (with_device[0], with_device[1]["error"]["code"]) == (409, "in_use")
    assert "1 device(s) and 0 member(s) of staff" in with_device[1]["error"]["message"]
    assert "0 device(s) and 1 member(s) of staff" in with_staff[1]["error"]["message"]
    assert deleted == (204, None)
    assert entry.before is not None
    assert (entry.target_id, entry.before["windows"]) == ("hall-b3", ["01"])
    assert (windows, links) == (1, 1)  # hall-b2's; hall-b3's went with it


# --- what the running server knows ----------------------------------------------------------


async def test_the_real_server_knows_changed_hours_at_once(
    own_broker: tuple[BrokerSettings, object], database_url: str
) -> None:
    """Through ``termfleet server``'s own fleet state, as its metrics show it."""
    # A broker of its own: the metrics count every kiosk the server hears of, and presence that
    # other tests left retained on the shared broker would count too.
    broker, _ = own_broker
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        await Device.all().update(presence=PresenceState.OFFLINE.value)
    async with running_control_plane(broker, database_url) as cp:
        before = offline_kiosks(await cp.metrics())
        path = f"/api/v1/sites/s{TOWN_B}"
        async with cp.http.patch(cp.url + path, json={"hours": "mon-sun closed"}) as response:
            assert response.status == 200, await response.text()
        after = offline_kiosks(await cp.metrics())

    assert before == {"offline_expected": 0.0, "offline_unexpected": 5.0}
    assert after == {"offline_expected": 1.0, "offline_unexpected": 4.0}


def offline_kiosks(exposition: str) -> dict[str, float]:
    """The gauge of offline kiosks, by availability (summed over levels), as Prometheus reads it."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            presence = sample.labels.get("presence", "")
            kiosk = sample.labels.get("kind") == "kiosk"
            if sample.name == "termfleet_devices" and kiosk and presence.startswith("offline"):
                counts[presence] = counts.get(presence, 0.0) + sample.value  # over hall levels
    return counts


async def test_a_full_reload_reads_every_site(database_url: str) -> None:
    """What ``server.py``'s periodic refresh calls (``SiteCache.reload``)."""
    async with admin_api(database_url):
        fleet = FleetState(
            [DeviceState(device, site=f"s{node}") for device, node in DEVICES_AT.items()]
        )
        await SiteCache(fleet).reload()
        paths = {state.device_id: fleet.site_path(state) for state in fleet}

    assert paths == {device: f"/{'/'.join(path_to(node))}/" for device, node in DEVICES_AT.items()}


def path_to(node: str) -> list[str]:
    codes = [node]
    while ANCESTORS[codes[0]]:
        codes.insert(0, ANCESTORS[codes[0]])
    return codes
