"""Changing devices over the API on SQLite and PostgreSQL: labels, moves, retirement, refusals.

Every change must be audited with before and after, reach the label index and the fleet state
at once, and be refused, changing nothing, outside the token's scope or role.
"""

from __future__ import annotations

from typing import Any

import pytest

from control_plane import tokens
from control_plane.auth import Role
from control_plane.db.inventory_models import DeviceLabel
from control_plane.db.models import AuditEntry, Device, JurisdictionNode, Site
from control_plane.fleet import DeviceState
from tests.support.device_fleet import DeviceApi, device_api
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_B, VILLAGE_A1
from tests.support.tokens import TEST_ACTOR

DEVICE = "/api/v1/devices/{}"


async def issue(role: Role = Role.OPERATOR, scope: str | None = None) -> dict[str, str]:
    issued = await tokens.issue(
        f"{role}-{scope or 'all'}", role, actor=TEST_ACTOR, scope_code=scope
    )
    return {"Authorization": f"Bearer {issued.secret}"}


async def send(
    api: DeviceApi,
    method: str,
    path: str,
    headers: dict[str, str],
    body: object = None,
    data: str | None = None,
) -> tuple[int, dict[str, Any]]:
    kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": body}
    response = await api.client.request(method, path, headers=headers, **kwargs)
    return response.status, await response.json()


async def audit(action: str) -> list[AuditEntry]:
    return await AuditEntry.filter(action=action).order_by("id")


# --- labels --------------------------------------------------------------------------------------


async def test_a_merge_patch_sets_and_removes_labels_and_is_audited(database_url: str) -> None:
    async with device_api(database_url) as api:
        headers = await issue(scope=DISTRICT)
        path = DEVICE.format("kiosk-d1") + "/labels"
        status, body = await send(api, "PATCH", path, headers, {"floor": None, "zone": "b-2"})
        rows = (
            await DeviceLabel.filter(device_id="kiosk-d1")
            .order_by("key")
            .values_list("key", "value")
        )
        entries = await audit("device.label")
        status_found, found = await send(api, "GET", "/api/v1/devices?label=zone=b-2", headers)

    assert status == 200, body
    assert body["labels"] == {"vendor": "inspur", "zone": "b-2"}
    assert rows == [("vendor", "inspur"), ("zone", "b-2")]
    assert [(e.before, e.after, e.scope_path) for e in entries] == [
        (
            {"labels": {"floor": "1", "vendor": "inspur"}},
            {"labels": {"vendor": "inspur", "zone": "b-2"}},
            "/44/4401/440117/",
        )
    ]
    assert entries[0].actor_name == f"{Role.OPERATOR}-{DISTRICT}"
    assert status_found == 200
    assert [d["device_id"] for d in found["items"]] == ["kiosk-d1"]


async def test_a_patch_that_changes_nothing_writes_no_audit_entry(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        path = DEVICE.format("kiosk-d1") + "/labels"
        status, _ = await send(api, "PATCH", path, await issue(), {"vendor": "inspur", "x": None})
        assert status == 200
        assert await audit("device.label") == []


@pytest.mark.parametrize(
    ("body", "data", "needle"),
    [
        ({"Bad Key": "x"}, None, "is not a label key"),
        ({"-edge": "x"}, None, "is not a label key"),
        ({"k": "x" * 64}, None, "up to 63 characters"),
        ({"k": 3}, None, "up to 63 characters"),
        ({"k": "a\nb"}, None, "control characters"),
        ({f"k{i}": "v" for i in range(33)}, None, "at most 32 labels"),
        (["k", "v"], None, "JSON object of labels"),
        (None, "{not json", "not JSON"),
        (None, "", "needs a JSON body"),
    ],
)
async def test_bad_labels_are_a_400_and_change_nothing(
    sqlite_url: str, body: object, data: str | None, needle: str
) -> None:
    async with device_api(sqlite_url) as api:
        path = DEVICE.format("kiosk-d1") + "/labels"
        status, answer = await send(api, "PATCH", path, await issue(), body, data)
        device = await Device.get(device_id="kiosk-d1")

    assert status == 400, answer
    assert needle in answer["error"]["message"]
    assert device.labels == {"floor": "1", "vendor": "inspur"}


# --- moves ---------------------------------------------------------------------------------------


async def test_a_move_places_the_device_at_once_and_is_audited(database_url: str) -> None:
    async with device_api(database_url) as api:
        headers = await issue(scope=TOWN_A)
        station = api.fleet.get("station-a1")
        assert station is not None
        before = api.fleet.effective(station, None)
        status, body = await send(
            api, "POST", DEVICE.format("station-a1") + "/move", headers, {"site": f"s{TOWN_A}"}
        )
        live = api.fleet.get("station-a1")
        _, listed = await send(api, "GET", "/api/v1/devices?presence=offline_unexpected", headers)
        entries = await audit("device.move")

    assert before.state.value == "offline"
    assert status == 200, body
    assert (body["site"], body["window"], body["site_path"]) == (
        f"s{TOWN_A}",
        None,
        "/44/4401/440117/440117001/",
    )
    # Town A is open 24/7: the station's silence is now a problem, from this request on.
    assert live is not None
    assert live.site == f"s{TOWN_A}"
    assert body["availability"] == "offline_unexpected"
    assert [d["device_id"] for d in listed["items"]] == ["station-a1"]
    assert [(e.before, e.after, e.scope_path) for e in entries] == [
        (
            {"site": f"s{VILLAGE_A1}", "window": None},
            {"site": f"s{TOWN_A}", "window": None},
            "/44/4401/440117/440117001/",
        )
    ]


async def test_a_move_to_a_site_made_elsewhere_reads_that_site_into_the_fleet(
    database_url: str,
) -> None:
    """A site imported (or made by another replica) after the server last re-read its sites."""
    async with device_api(database_url) as api:
        town = await JurisdictionNode.get(code=TOWN_A)
        await Site.create(
            code="s-new-hall", name="New hall", level="town", node=town, hours="mon-sun closed"
        )
        assert api.fleet.site_path(DeviceState("probe", site="s-new-hall")) is None
        status, body = await send(
            api,
            "POST",
            DEVICE.format("station-a1") + "/move",
            await issue(),
            {"site": "s-new-hall"},
        )
        path = api.fleet.site_path(DeviceState("probe", site="s-new-hall"))

    assert status == 200, body
    assert path == "/44/4401/440117/440117001/"
    # Its hours came with it: a silent station at a closed hall is expected to be offline.
    assert body["availability"] == "offline_expected"


async def test_a_move_between_towns_is_audited_where_both_lie(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        status, _ = await send(
            api, "POST", DEVICE.format("kiosk-a") + "/move", await issue(), {"site": f"s{TOWN_B}"}
        )
        entries = await audit("device.move")

    assert status == 200
    assert [e.scope_path for e in entries] == ["/44/4401/440117/"]


async def test_a_pad_moves_to_a_window_of_its_new_site(database_url: str) -> None:
    async with device_api(database_url) as api:
        status, body = await send(
            api,
            "POST",
            DEVICE.format("pad-d1") + "/move",
            await issue(),
            {"site": f"s{DISTRICT}", "window": "02"},
        )
        entries = await audit("device.move")

    assert status == 200, body
    assert (body["site"], body["window"]) == (f"s{DISTRICT}", "02")
    assert [(e.before, e.after) for e in entries] == [
        ({"site": f"s{DISTRICT}", "window": "01"}, {"site": f"s{DISTRICT}", "window": "02"})
    ]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"site": f"s{TOWN_A}", "window": "01"}, f"site s{TOWN_A} has no window '01'"),
        ({"site": "nowhere"}, "site: no site 'nowhere'"),
        ({"window": "01"}, "site: the code of the site"),
        ({"site": f"s{TOWN_A}", "window": 1}, "window: a window number"),
        ({"site": f"s{TOWN_A}", "floor": 2}, "unknown field(s) floor"),
    ],
)
async def test_a_bad_move_is_a_400_and_moves_nothing(
    sqlite_url: str, body: dict[str, object], needle: str
) -> None:
    async with device_api(sqlite_url) as api:
        status, answer = await send(api, "POST", DEVICE.format("pad-d1") + "/move", await issue(),
                                    body)  # fmt: skip
        device = await Device.get(device_id="pad-d1")

    assert status == 400, answer
    assert needle in answer["error"]["message"]
    assert device.window_id is not None


@pytest.mark.parametrize("site", [f"s{TOWN_B}", "nowhere"])
async def test_a_scoped_token_cannot_move_to_a_site_beyond_its_scope(
    database_url: str, site: str
) -> None:
    """A site outside the scope and one that does not exist get the same 403."""
    async with device_api(database_url) as api:
        headers = await issue(scope=TOWN_A)
        status, body = await send(
            api, "POST", DEVICE.format("kiosk-a") + "/move", headers, {"site": site}
        )
        device = await Device.get(device_id="kiosk-a")

    assert status == 403, body
    assert body["error"] == {
        "code": "out_of_scope",
        "message": f"site: no site {site!r} within this token's scope ({TOWN_A})",
        "details": {},
    }
    assert device.site_id is not None
    live = api.fleet.get("kiosk-a")
    assert live is not None
    assert live.site == f"s{TOWN_A}"


# --- retirement ----------------------------------------------------------------------------------


async def test_retiring_is_audited_with_its_note_and_happens_once(database_url: str) -> None:
    async with device_api(database_url) as api:
        headers = await issue(scope=TOWN_A)
        path = DEVICE.format("kiosk-a") + "/retire"
        first, body = await send(api, "POST", path, headers, {"note": "water damage"})
        second, again = await send(api, "POST", path, headers)
        moved, refused = await send(
            api, "POST", DEVICE.format("kiosk-a") + "/move", headers, {"site": f"s{TOWN_A}"}
        )
        entries = await audit("device.retire")

    assert first == 200, body
    assert body["lifecycle"] == "retired"
    assert [(e.before, e.after, e.note) for e in entries] == [
        ({"lifecycle": "in_service"}, {"lifecycle": "retired"}, "water damage")
    ]
    assert (second, again["error"]["code"]) == (409, "conflict")
    assert "cannot become retired" in again["error"]["message"]
    assert (moved, refused["error"]["code"]) == (409, "conflict")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"note": "x" * 501}, "note: printable text of up to 500"),
        ({"note": "a\x00b"}, "note: printable text"),
        ({"why": "x"}, "unknown field(s) why"),
    ],
)
async def test_a_bad_retirement_is_a_400(
    sqlite_url: str, body: dict[str, object], needle: str
) -> None:
    async with device_api(sqlite_url) as api:
        path = DEVICE.format("kiosk-b") + "/retire"
        status, answer = await send(api, "POST", path, await issue(), body)
        device = await Device.get(device_id="kiosk-b")

    assert status == 400
    assert needle in answer["error"]["message"]
    assert device.lifecycle == "registered"


async def test_an_unknown_retirement_field_is_named_in_the_details(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        path = DEVICE.format("kiosk-b") + "/retire"
        status, answer = await send(api, "POST", path, await issue(), {"why": "x", "note": "y"})

    assert status == 400
    assert answer["error"]["code"] == "invalid_field"
    assert answer["error"]["details"] == {"field": "why", "unknown": ["why"], "allowed": ["note"]}


# --- scope and role, through every change --------------------------------------------------------

CHANGES = [
    ("PATCH", "labels", {"zone": "x"}),
    ("POST", "move", {"site": f"s{TOWN_B}"}),
    ("POST", "retire", {}),
]


@pytest.mark.parametrize(("method", "change", "body"), CHANGES, ids=[c for _, c, _ in CHANGES])
async def test_a_device_outside_the_scope_cannot_be_changed_and_is_not_revealed(
    database_url: str, method: str, change: str, body: dict[str, object]
) -> None:
    async with device_api(database_url) as api:
        town_b = await issue(scope=TOWN_B)
        answers = [
            await send(api, method, DEVICE.format(device_id) + f"/{change}", town_b, body)
            for device_id in ("kiosk-a", "kiosk-unplaced", "no-such-device")
        ]
        devices = {d.device_id: d for d in await Device.filter(device_id__in=["kiosk-a"])}
        entries = await AuditEntry.filter(target_type="device").count()

    assert [status for status, _ in answers] == [404, 404, 404]
    assert [a["error"]["message"] for _, a in answers] == [
        "no device 'kiosk-a'",
        "no device 'kiosk-unplaced'",
        "no device 'no-such-device'",
    ]
    kiosk = devices["kiosk-a"]
    assert (kiosk.labels, kiosk.lifecycle) == ({"vendor": "inspur"}, "in_service")
    assert entries == 0


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.TECHNICIAN])
@pytest.mark.parametrize(("method", "change", "body"), CHANGES, ids=[c for _, c, _ in CHANGES])
async def test_a_role_without_devices_write_changes_nothing(
    sqlite_url: str, role: Role, method: str, change: str, body: dict[str, object]
) -> None:
    async with device_api(sqlite_url) as api:
        headers = await issue(role)
        status, answer = await send(api, method, DEVICE.format("kiosk-b") + f"/{change}", headers,
                                    body)  # fmt: skip
        kiosk = await Device.get(device_id="kiosk-b")

    assert (status, answer["error"]["code"]) == (403, "forbidden")
    assert (kiosk.labels, kiosk.lifecycle) == ({}, "registered")


# --- hostile input: a 400 or a 404, never a 500, on PostgreSQL too -------------------------------

HOSTILE = [
    ("GET", "/api/v1/devices/kiosk%00a", None, 404),
    ("GET", "/api/v1/devices/%ED%A0%80", None, 404),
    ("PATCH", "/api/v1/devices/kiosk%00a/labels", b'{"k": "v"}', 404),
    ("PATCH", "/api/v1/devices/kiosk-a/labels", b'{"k": "\\ud800"}', 400),
    ("PATCH", "/api/v1/devices/kiosk-a/labels", b'{"k": "a\\u0000b"}', 400),
    ("PATCH", "/api/v1/devices/kiosk-a/labels", b"\xff\xfe{}", 400),
    ("PATCH", "/api/v1/devices/kiosk-a/labels", b"[" * 100_000, 400),
    ("POST", "/api/v1/devices/kiosk-a/move", b'{"site": "s\\ud800"}', 400),
    ("POST", "/api/v1/devices/kiosk-a/move", b'{"site": "s440117001", "window": "\\u0000"}', 400),
    ("POST", "/api/v1/devices/kiosk-a/retire", b'{"note": "\\ud800"}', 400),
    ("GET", "/api/v1/devices?label=k%3D%00", None, 400),
]


@pytest.mark.parametrize(("method", "path", "data", "status"), HOSTILE)
async def test_hostile_input_is_refused_cleanly(
    database_url: str, method: str, path: str, data: bytes | None, status: int
) -> None:
    async with device_api(database_url) as api:
        response = await api.client.request(method, path, headers=await issue(), data=data)
        body = await response.json()

    assert response.status == status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
