"""GET /api/v1/devices and /api/v1/devices/{id} on SQLite and PostgreSQL: filters, pages, scopes.

The registry is ``tests/support/device_fleet.py``; what each filter and scope must return is
written out by hand (or worked out by walking parents), not asked of the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from control_plane import tokens
from control_plane.auth import Role
from control_plane.device_filters import DeviceFilters, encode_cursor
from control_plane.fleet import DeviceState
from tests.support.device_fleet import (
    RECORDS,
    UNPLACED,
    DeviceApi,
    device_api,
    visible,
)
from tests.support.scoped_fleet import DISTRICT, NODES, TOWN_A, TOWN_B, TOWN_X, VILLAGE_A1
from tests.support.tokens import TEST_ACTOR

DEVICES = "/api/v1/devices"
SCOPES: list[str | None] = [None, *(code for code, _, _ in NODES)]


async def issue(role: Role = Role.ADMIN, scope: str | None = None) -> dict[str, str]:
    """Headers with a new token of ``role`` for ``scope``, in the database the API is open on."""
    issued = await tokens.issue(
        f"{role}-{scope or 'all'}", role, actor=TEST_ACTOR, scope_code=scope
    )
    return {"Authorization": f"Bearer {issued.secret}"}


async def listing(api: DeviceApi, query: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every item of a listing, following next_cursor, ``limit=2`` unless the query sets one."""
    items: list[dict[str, Any]] = []
    params = query if "limit=" in query else f"{query}&limit=2"
    cursor = ""
    while True:
        response = await api.client.get(f"{DEVICES}?{params}{cursor}", headers=headers)
        body = await response.json()
        assert response.status == 200, body
        items += body["items"]
        if body["next_cursor"] is None:
            return items
        cursor = f"&cursor={body['next_cursor']}"


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [str(item["device_id"]) for item in items]


# --- scopes ------------------------------------------------------------------------------------


async def test_each_scope_lists_its_subtree_in_id_order_across_pages(database_url: str) -> None:
    async with device_api(database_url) as api:
        for scope in SCOPES:
            listed = ids(await listing(api, "", await issue(Role.AUDITOR, scope)))
            assert listed == sorted(visible(scope)), f"scope {scope}"


# --- filters -----------------------------------------------------------------------------------

FILTERS = [
    ("node=440117001", {"kiosk-a", "booth-a", "station-a1"}),  # not town X, 4401170010
    (f"node={TOWN_X}", {"kiosk-x"}),
    ("node=44", visible(None) - {UNPLACED}),
    (f"site=s{DISTRICT}", {"kiosk-d1", "pad-d1", "pad-d2"}),
    ("kind=review_pad", {"pad-d1", "pad-d2"}),
    ("presence=online", {"kiosk-d1", "kiosk-a", "kiosk-b"}),
    ("presence=offline", {"pad-d1", "station-a1"}),
    ("presence=offline_expected", {"station-a1"}),  # the village station is closed at NOW
    ("presence=offline_unexpected", {"pad-d1"}),  # the district hall is open
    ("presence=unknown", {"pad-d2", "booth-a", "kiosk-x", UNPLACED}),
    ("fault=receipt_printer", {"kiosk-d1", "kiosk-b"}),
    ("fault=document_camera", {"station-a1"}),  # degraded counts
    ("fault=id_card_reader", set()),  # ok does not
    ("fault=any", {"kiosk-d1", "kiosk-b", "station-a1"}),
    ("label=vendor=inspur", {"kiosk-d1", "kiosk-a"}),
    ("label=vendor=inspur&label=floor=1", {"kiosk-d1"}),
    ("label=vendor=nobody", set()),
    ("q=sn-b", {"kiosk-b"}),  # the serial, either case
    ("q=街口", {"kiosk-a", "booth-a"}),  # the site's name
    ("q=pad-", {"pad-d1", "pad-d2"}),  # the device id
    ("q=%25", set()),  # a literal %, not LIKE's wildcard
    ("q=_", set()),  # a literal _, not LIKE's any-character
    ("lifecycle=in_service", {"kiosk-a"}),
    ("lifecycle=retired", set()),
    ("node=440117&kind=kiosk&presence=online", {"kiosk-d1", "kiosk-a", "kiosk-b"}),
    ("presence=online&fault=receipt_printer&limit=1", {"kiosk-d1", "kiosk-b"}),
    ("presence=unknown&limit=1", {"pad-d2", "booth-a", "kiosk-x", UNPLACED}),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=[q for q, _ in FILTERS])
async def test_a_filter_finds_what_it_says(
    database_url: str, query: str, expected: set[str]
) -> None:
    async with device_api(database_url) as api:
        listed = ids(await listing(api, query, await issue()))

    assert listed == sorted(expected)


async def test_a_node_above_the_scope_is_cut_down_to_it(database_url: str) -> None:
    async with device_api(database_url) as api:
        town_a = await issue(Role.OPERATOR, TOWN_A)
        listed = ids(await listing(api, f"node={DISTRICT}", town_a))

    assert listed == sorted(visible(TOWN_A))


@pytest.mark.parametrize(
    "query", [f"node={TOWN_B}", "node=999999", f"site=s{TOWN_B}", "site=nowhere"]
)
async def test_a_node_or_site_outside_the_scope_is_refused_as_unknown(
    database_url: str, query: str
) -> None:
    async with device_api(database_url) as api:
        response = await api.client.get(f"{DEVICES}?{query}", headers=await issue(scope=TOWN_A))
        body = await response.json()

    parameter, _, value = query.partition("=")
    assert response.status == 400
    assert body["error"] == {
        "code": "invalid_parameter",
        "message": f"{parameter} {value!r} is no {parameter} in this token's scope",
        "details": {"parameter": parameter},
    }


BAD = [
    ("limit=0", "limit"),
    ("limit=501", "limit"),
    ("limit=ten", "limit"),
    ("limit=-1", "limit"),
    ("cursor=not-a-cursor", "cursor"),
    ("colour=red", "colour"),
    ("kind=toaster", "kind"),
    ("kind=kiosk&kind=booth", "kind"),
    ("presence=asleep", "presence"),
    ("fault=coffee", "fault"),
    ("label=Vendor=inspur", "label"),
    ("label=vendor", "label"),
    ("q=", "q"),
    ("q=" + "x" * 65, "q"),
    ("node=44a", "node"),
    ("site=a%20b", "site"),
    ("lifecycle=dead", "lifecycle"),
]


@pytest.mark.parametrize(("query", "parameter"), BAD, ids=[q[:30] for q, _ in BAD])
async def test_a_bad_parameter_is_a_400_naming_it(
    sqlite_url: str, query: str, parameter: str
) -> None:
    async with device_api(sqlite_url) as api:
        response = await api.client.get(f"{DEVICES}?{query}", headers=await issue())
        body = await response.json()

    assert response.status == 400, body
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["message"].startswith(f"{parameter} ")
    assert body["error"]["details"] == {"parameter": parameter}


async def test_a_cursor_is_refused_when_edited_or_used_with_other_filters(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        headers = await issue()
        first = await (await api.client.get(f"{DEVICES}?limit=2", headers=headers)).json()
        cursor = first["next_cursor"]
        edited = cursor[:5] + ("A" if cursor[5] != "A" else "B") + cursor[6:]
        forged = encode_cursor("kiosk-a", DeviceFilters(kind="booth"))
        for query in (f"cursor={edited}", f"cursor={cursor[:-3]}", f"kind=kiosk&cursor={cursor}",
                      f"cursor={forged}"):  # fmt: skip
            response = await api.client.get(f"{DEVICES}?limit=2&{query}", headers=headers)
            body = await response.json()
            assert response.status == 400, (query, body)
            assert body["error"]["message"].startswith("cursor "), body
            assert body["error"]["details"] == {"parameter": "cursor"}, body
        # A cursor made for the same filters is fine, even if this API did not hand it out:
        # it carries no authority, the scope is applied again.
        again = encode_cursor("kiosk-a", DeviceFilters())
        response = await api.client.get(f"{DEVICES}?cursor={again}", headers=headers)
        assert ids((await response.json())["items"])[0] > "kiosk-a"


async def test_a_listing_row_has_the_registry_and_live_fields(database_url: str) -> None:
    async with device_api(database_url) as api:
        items = await listing(api, f"site=s{DISTRICT}", await issue())

    pad = next(item for item in items if item["device_id"] == "pad-d1")
    kiosk = next(item for item in items if item["device_id"] == "kiosk-d1")
    assert pad["window"] == "01"
    assert pad["availability"] == "offline_unexpected"
    assert kiosk == kiosk | {
        "kind": "kiosk",
        "serial": "SN-D1",
        "labels": {"floor": "1", "vendor": "inspur"},
        "lifecycle": "registered",
        "presence": "online",
        "availability": "online",
        "site": f"s{DISTRICT}",
        "site_name": "从化区政务服务中心",
        "site_path": "/44/4401/440117/",
        "window": None,
        "agent_version": "0.3.0",
    }
    assert kiosk["health"]["peripherals"][0]["reason"] == "paper_out"


# --- one device --------------------------------------------------------------------------------


async def test_a_device_shows_its_inventory_health_and_latest_records(database_url: str) -> None:
    async with device_api(database_url) as api:
        response = await api.client.get(f"{DEVICES}/kiosk-d1?records=5", headers=await issue())
        body = await response.json()

    assert response.status == 200, body
    assert body["site_path"] == "/44/4401/440117/"
    assert body["agent"]["agent_version"] == "0.3.0"
    assert [(p["name"], p["kind"], p["status"], p["reason"]) for p in body["peripherals"]] == [
        ("idreader0", "id_card_reader", "ok", ""),
        ("printer0", "receipt_printer", "fault", "paper_out"),
    ]
    assert all(p["status_since"] for p in body["peripherals"])
    assert [r["seq"] for r in body["recent_records"]] == list(range(RECORDS, RECORDS - 5, -1))
    assert body["recent_records"][0]["payload"] == {"v": 1, "seq": RECORDS, "type": "paper_out"}
    assert body["health"]["agent_version"] == "0.3.0"


async def test_records_default_to_twenty_and_can_be_left_out(sqlite_url: str) -> None:
    async with device_api(sqlite_url) as api:
        headers = await issue()
        default = await (await api.client.get(f"{DEVICES}/kiosk-d1", headers=headers)).json()
        none = await (await api.client.get(f"{DEVICES}/kiosk-d1?records=0", headers=headers)).json()

    assert len(default["recent_records"]) == 20  # the documented default
    assert none["recent_records"] == []


UNKNOWN_LIMIT = {"unknown": ["limit"], "allowed": ["records"]}


@pytest.mark.parametrize(
    ("query", "details"),
    [
        ("records=101", {}),
        ("records=-1", {}),
        ("records=x", {}),
        ("limit=1", UNKNOWN_LIMIT),
    ],
)
async def test_a_bad_detail_parameter_is_a_400(
    sqlite_url: str, query: str, details: dict[str, list[str]]
) -> None:
    async with device_api(sqlite_url) as api:
        response = await api.client.get(f"{DEVICES}/kiosk-d1?{query}", headers=await issue())
        body = await response.json()

    parameter = query.partition("=")[0]
    assert response.status == 400
    assert body["error"]["message"].startswith(parameter + " ")
    assert body["error"]["details"] == {"parameter": parameter, **details}


async def test_a_device_outside_the_scope_is_a_404_like_one_that_does_not_exist(
    database_url: str,
) -> None:
    async with device_api(database_url) as api:
        town_a = await issue(Role.AUDITOR, TOWN_A)
        for device_id in sorted(visible(None) | {"no-such-device"}):
            response = await api.client.get(f"{DEVICES}/{device_id}", headers=town_a)
            body = await response.json()
            if device_id in visible(TOWN_A):
                assert response.status == 200, body
            else:
                assert response.status == 404, (device_id, body)
                assert body["error"] == {
                    "code": "not_found",
                    "message": f"no device {device_id!r}",
                    "details": {},
                }


async def test_a_device_heard_of_before_this_start_shows_its_stored_health(
    sqlite_url: str,
) -> None:
    async with device_api(sqlite_url) as api:
        api.fleet.put(DeviceState("station-a1"))  # as if this server had not heard from it
        response = await api.client.get(f"{DEVICES}/station-a1", headers=await issue())
        body = await response.json()

    assert body["health"]["peripherals"][0]["kind"] == "document_camera"
    assert VILLAGE_A1 in body["site_path"]
