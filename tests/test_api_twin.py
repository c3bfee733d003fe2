"""/api/v1/config/layers and /api/v1/devices/{id}/config on the scoped tree, on both databases.

A refused value is a 400 naming the key, and keeps nothing; layers merge by precedence end to
end; counts per layer; each change audited; scopes and roles as for the other admin APIs.
"""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.auth import Role
from control_plane.db.models import AuditEntry
from control_plane.db.twin_models import ConfigLayer
from tests.support.admin_api import admin_api
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_B

LAYERS = "/api/v1/config/layers"


def layer(scope: dict[str, Any], values: dict[str, Any], **more: object) -> dict[str, Any]:
    return {"scope": scope, "values": values, **more}


async def test_an_invalid_value_is_a_400_naming_the_key_and_nothing_is_kept(
    database_url: str,
) -> None:
    async with admin_api(database_url) as api:
        admin = await api.token()
        body = layer({"kind": "global"}, {"ui.language": "en", "ui.idle_timeout_s": 5})
        status, answer = await api.call("PUT", f"{LAYERS}/all", admin, body)
        kept = await ConfigLayer.all().count()
        audited = await AuditEntry.filter(target_type="config_layer").count()

    assert status == 400
    assert answer["error"]["code"] == "invalid_field"
    assert answer["error"]["details"] == {"field": "values.ui.idle_timeout_s"}
    assert "ui.idle_timeout_s: 5 is outside 15 to 1800" in answer["error"]["message"]
    assert (kept, audited) == (0, 0)


async def test_layers_merge_by_precedence_end_to_end_and_are_counted(database_url: str) -> None:
    async with admin_api(database_url) as api:
        admin = await api.token()
        everyone = layer({"kind": "global"}, {"ui.language": "en"})
        await api.ok("PUT", f"{LAYERS}/all", admin, everyone)
        district = layer({"kind": "node", "node": DISTRICT}, {"ui.idle_timeout_s": 90})
        await api.ok("PUT", f"{LAYERS}/district", admin, district)
        town_a = layer({"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 100}, priority=3)
        status, created = await api.call("PUT", f"{LAYERS}/town-a", admin, town_a)
        own = layer({"kind": "device", "device": "kiosk-a"}, {"ui.idle_timeout_s": 200})
        await api.ok("PUT", f"{LAYERS}/kiosk-a", admin, own)
        kiosk_a = await api.ok("GET", "/api/v1/devices/kiosk-a/config", admin)
        pad = await api.ok("GET", "/api/v1/devices/pad-a1/config", admin)
        listed = await api.ok("GET", LAYERS, admin)
        shown = await api.ok("GET", f"{LAYERS}/town-a", admin)

    assert status == 201
    assert created["priority"] == 3
    assert created["node_path"] == f"/44/4401/{DISTRICT}/{TOWN_A}/"
    assert kiosk_a["desired"]["values"] == {"ui.idle_timeout_s": 200, "ui.language": "en"}
    assert kiosk_a["desired"]["sources"] == {"ui.idle_timeout_s": "kiosk-a", "ui.language": "all"}
    assert kiosk_a["state"] == "pending"  # nothing reported yet
    assert kiosk_a["desired"]["published"] is False  # no broker behind this API
    assert pad["desired"]["sources"]["ui.idle_timeout_s"] == "town-a"
    assert [item["id"] for item in listed["items"]] == ["all", "district", "kiosk-a", "town-a"]
    counts = {item["id"]: item["devices"]["targeted"] for item in listed["items"]}
    # 6 devices; town A's kiosk-a takes its idle timeout from its own layer.
    assert counts == {"all": 6, "district": 3, "kiosk-a": 1, "town-a": 1}
    assert shown["devices"] == {"targeted": 1, "applied": 0, "failed": 0, "pending": 1}


async def test_a_replaced_and_deleted_layer_is_audited_and_its_devices_fall_back(
    database_url: str,
) -> None:
    async with admin_api(database_url) as api:
        admin = await api.token()
        body = layer({"kind": "node", "node": TOWN_A}, {"ui.language": "en"})
        await api.ok("PUT", f"{LAYERS}/town-a", admin, body)
        status, replaced = await api.call(
            "PUT", f"{LAYERS}/town-a", admin, {**body, "values": {"ui.language": "zh-HK"}}
        )
        before = await api.ok("GET", "/api/v1/devices/kiosk-a/config", admin)
        deleted, _ = await api.call("DELETE", f"{LAYERS}/town-a", admin)
        after = await api.ok("GET", "/api/v1/devices/kiosk-a/config", admin)
        gone, missing = await api.call("GET", f"{LAYERS}/town-a", admin)
        audit = await api.ok("GET", "/api/v1/audit", admin)

    assert (status, replaced["values"], replaced["revision"]) == (200, {"ui.language": "zh-HK"}, 2)
    assert (deleted, gone) == (204, 404)
    assert missing["error"]["code"] == "not_found"
    assert after["desired"]["values"] == {}
    assert after["desired"]["version"] > before["desired"]["version"]
    actions = [e["action"] for e in audit["items"] if e["target_type"] == "config_layer"]
    assert actions == ["config.layer.delete", "config.layer.update", "config.layer.create"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("town-a", {"values": {}}, "scope"),
        ("town-a", {"scope": {"kind": "global"}}, "values"),
        ("town-a", {"scope": {"kind": "global"}, "values": {}, "colour": 1}, "colour"),
        ("town-a", {"scope": {"kind": "global"}, "values": []}, "values"),
        ("town-a", {"scope": "global", "values": {}}, "scope"),
        ("town-a", {"scope": {"kind": "node", "node": "12"}, "values": {}}, "scope.node"),
        ("town-a", {"scope": {"kind": "global"}, "values": {}, "priority": -1}, "priority"),
        ("town-a", {"scope": {"kind": "global"}, "values": {}, "description": 1}, "description"),
        ("bad%20id", {"scope": {"kind": "global"}, "values": {}}, "id"),
    ],
)
async def test_a_bad_body_or_id_is_a_400_naming_the_field(
    database_url: str, path: str, body: dict[str, Any], field: str
) -> None:
    async with admin_api(database_url) as api:
        status, answer = await api.call("PUT", f"{LAYERS}/{path}", await api.token(), body)
        assert await ConfigLayer.all().count() == 0

    assert status == 400, answer
    assert answer["error"]["details"]["field"] == field


async def test_roles_and_scopes_as_for_the_other_admin_apis(database_url: str) -> None:
    async with admin_api(database_url) as api:
        operator = await api.token(Role.OPERATOR)
        town_admin = await api.token(Role.ADMIN, TOWN_A)
        town_a = layer({"kind": "node", "node": TOWN_A}, {"ui.language": "en"})
        labelled = layer({"kind": "labels", "labels": {"a": "b"}}, {})
        calls = {
            "operator writes": await api.call("PUT", f"{LAYERS}/x", operator, town_a),
            "operator reads": await api.call("GET", LAYERS, operator),
            "town admin, own town": await api.call("PUT", f"{LAYERS}/town-a", town_admin, town_a),
            "town admin, global": await api.call(
                "PUT", f"{LAYERS}/g", town_admin, layer({"kind": "global"}, {})
            ),
            "town admin, labels": await api.call("PUT", f"{LAYERS}/l", town_admin, labelled),
            "town admin, town B": await api.call(
                "PUT", f"{LAYERS}/b", town_admin, layer({"kind": "node", "node": TOWN_B}, {})
            ),
            "town admin, kiosk-b": await api.call(
                "PUT", f"{LAYERS}/d", town_admin, layer({"kind": "device", "device": "kiosk-b"}, {})
            ),
            "town admin, own device": await api.call(
                "PUT", f"{LAYERS}/d", town_admin, layer({"kind": "device", "device": "kiosk-a"}, {})
            ),
            "town admin reads kiosk-b": await api.call(
                "GET", "/api/v1/devices/kiosk-b/config", town_admin
            ),
        }
        admin = await api.token()
        await api.ok("PUT", f"{LAYERS}/all", admin, layer({"kind": "global"}, {}))
        calls["town admin deletes global"] = await api.call("DELETE", f"{LAYERS}/all", town_admin)

    statuses = {name: status for name, (status, _) in calls.items()}
    assert statuses == {
        "operator writes": 403,
        "operator reads": 200,
        "town admin, own town": 201,
        "town admin, global": 403,
        "town admin, labels": 403,
        "town admin, town B": 403,
        "town admin, kiosk-b": 403,
        "town admin, own device": 201,
        "town admin reads kiosk-b": 404,
        "town admin deletes global": 403,
    }
    assert calls["operator writes"][1]["error"]["details"]["permission"] == "config.write"
    assert calls["town admin, global"][1]["error"]["code"] == "out_of_scope"
