"""A stored config layer the pure core refuses now must not stop the twin sync, on both databases.

A layer was valid when it was written; the tree or the config keys can change under it since:
an import re-zones its node under a parent whose code the node's does not extend, or a new
version drops a key or narrows a range. Refusing such a row while loading the layers would end
every twin pass, and with it the server, on every start. It reaches nobody instead (as a layer
of a deleted node does), with a warning naming it; the API still shows it as stored, and an
administrator can delete it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from control_plane.db.twin_models import ConfigLayer
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.twin_publish import TwinSync
from tests.support.admin_api import Api, admin_api
from tests.support.scoped_fleet import TOWN_A

LAYERS = "/api/v1/config/layers"
NEW_DISTRICT = "440118"
REZONED = {
    "jurisdiction": [
        {"code": NEW_DISTRICT, "name": "new district", "level": "district", "parent": "4401"},
        {"code": TOWN_A, "name": "town A", "level": "town", "parent": NEW_DISTRICT},
    ]
}
"""Town A moved under a new district of the same city: the import checks levels, not codes."""


def layer(scope: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {"scope": scope, "values": values}


def warnings_about(caplog: pytest.LogCaptureFixture, layer_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"config layer {layer_id} " in r.getMessage()
    ]


async def global_and_town_layers(api: Api, admin: str) -> dict[str, Any]:
    """A global layer, and one on town A's node (returned): the one the tests then break."""
    await api.ok("PUT", f"{LAYERS}/all", admin, layer({"kind": "global"}, {"ui.language": "en"}))
    town_a = layer({"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 100})
    await api.ok("PUT", f"{LAYERS}/town-a", admin, town_a)
    return town_a


async def test_a_layer_whose_node_an_import_moved_reaches_nobody_and_the_sync_goes_on(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="control_plane.twin_store")
    async with admin_api(database_url) as api:
        admin = await api.token()
        town_a = await global_and_town_layers(api, admin)
        before = await api.ok("GET", "/api/v1/devices/kiosk-a/config", admin)
        await import_inventory(read_json(json.dumps(REZONED), "rezoned.json"))
        await TwinSync(None).apply(None)  # the server's twin chore: it raised here
        after = await api.ok("GET", "/api/v1/devices/kiosk-a/config", admin)
        listed = await api.ok("GET", LAYERS, admin)
        shown = await api.ok("GET", f"{LAYERS}/town-a", admin)
        put_again, refused = await api.call("PUT", f"{LAYERS}/town-a", admin, town_a)
        deleted, _ = await api.call("DELETE", f"{LAYERS}/town-a", admin)

    assert before["desired"]["sources"] == {"ui.idle_timeout_s": "town-a", "ui.language": "all"}
    # The global layer still reaches the moved town; the stuck one no longer does.
    assert after["desired"]["values"] == {"ui.language": "en"}
    assert after["desired"]["version"] > before["desired"]["version"]
    assert [item["id"] for item in listed["items"]] == ["all", "town-a"]
    assert shown["node_path"] == f"/44/4401/{NEW_DISTRICT}/{TOWN_A}/"  # where the node is now
    assert shown["values"] == {"ui.idle_timeout_s": 100}
    assert shown["devices"]["targeted"] == 0
    why = f"'{TOWN_A}' does not extend its parent's code '{NEW_DISTRICT}'"
    warned = warnings_about(caplog, "town-a")  # each pass and each read warns again
    assert warned
    assert all(why in warning for warning in warned)
    assert (put_again, refused["error"]["details"]) == (400, {"field": "scope"})
    assert deleted == 204


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        ({"ui.idle_timeout_s": 100, "ui.dropped_key": 1}, "ui.dropped_key"),
        ({"ui.idle_timeout_s": 5}, "ui.idle_timeout_s: 5 is outside 15 to 1800"),
    ],
    ids=["a key this version does not know", "a value outside this version's range"],
)
async def test_a_layer_whose_values_the_config_keys_now_refuse_reaches_nobody_and_the_sync_goes_on(
    database_url: str, caplog: pytest.LogCaptureFixture, stored: dict[str, Any], why: str
) -> None:
    caplog.set_level(logging.WARNING, logger="control_plane.twin_store")
    async with admin_api(database_url) as api:
        admin = await api.token()
        await global_and_town_layers(api, admin)
        # As an older version kept it: the row is what the database holds after an upgrade.
        await ConfigLayer.filter(id="town-a").update(values=stored)
        await TwinSync(None).apply(None)
        after = await api.ok("GET", "/api/v1/devices/kiosk-a/config", admin)
        shown = await api.ok("GET", f"{LAYERS}/town-a", admin)
        deleted, _ = await api.call("DELETE", f"{LAYERS}/town-a", admin)

    assert after["desired"]["values"] == {"ui.language": "en"}
    assert (shown["values"], shown["devices"]["targeted"]) == (stored, 0)
    assert shown["node_path"] == f"/44/4401/440117/{TOWN_A}/"
    warned = warnings_about(caplog, "town-a")
    assert warned
    assert all(why in warning for warning in warned)
    assert deleted == 204
