"""``termfleet config layers ls|show|set|delete`` and ``config device`` against the API in a thread.

Values typed by their key, keys set and unset on an existing layer, every refusal with the
API's message (a refused value names its key), and ``--json`` for every listing.
"""

from __future__ import annotations

import json
from typing import Any

from control_plane.auth import Role
from control_plane.cli.config_cmd import LAYER_COLUMNS
from tests.support.admin_api import admin_api_in_a_thread
from tests.support.scoped_fleet import TOWN_A
from tests.test_cli_admin import refused, run, table

TOKENS = {"admin": (Role.ADMIN, None), "ops": (Role.OPERATOR, None)}


def answered(result: Any) -> Any:  # noqa: ANN401 - JSON
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_set_creates_changes_and_unsets_keys_typed_by_the_key(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        admin = secrets["admin"]
        created = run(server, admin, "config", "layers", "set", "town-a", "--node", TOWN_A,
                      "ui.idle_timeout_s=90", "ui.language=en", "ui.home_items=a1,b2",
                      "printer.receipt_enabled=false", "ui.font_scale=1.5", "--json")  # fmt: skip
        changed = run(server, admin, "config", "layers", "set", "town-a", "ui.idle_timeout_s=120",
                      "--unset", "ui.language", "--priority", "4", "--json")  # fmt: skip
        shown = run(server, admin, "config", "layers", "show", "town-a")
        listed = run(server, admin, "config", "layers", "ls")
        listed_json = run(server, admin, "config", "layers", "ls", "--json")
        device = run(server, admin, "config", "device", "kiosk-a")
        device_json = run(server, admin, "config", "device", "kiosk-a", "--json")
        gone = run(server, admin, "config", "layers", "delete", "town-a")
        after = run(server, admin, "config", "layers", "ls", "--json")

    assert answered(created)["values"] == {
        "printer.receipt_enabled": False,
        "ui.font_scale": 1.5,
        "ui.home_items": ["a1", "b2"],
        "ui.idle_timeout_s": 90,
        "ui.language": "en",
    }
    layer = answered(changed)
    assert layer["scope"] == {"kind": "node", "node": TOWN_A}  # kept
    assert (layer["priority"], layer["values"]["ui.idle_timeout_s"]) == (4, 120)
    assert "ui.language" not in layer["values"]
    rows = table(shown)
    assert rows[0] == [column.upper() for column in LAYER_COLUMNS]
    assert rows[1] == ["town-a", f"node {TOWN_A}", "4", "4", "2", "0", "0", "2"]
    assert ["ui.idle_timeout_s", "120"] in rows
    assert table(listed)[1][0] == "town-a"
    assert [item["id"] for item in answered(listed_json)] == ["town-a"]
    device_rows = table(device)
    assert device_rows[0][0].startswith("kiosk-a (kiosk): pending; desired version")
    assert ["ui.idle_timeout_s", "120", "town-a", "-", "120"] in device_rows
    assert answered(device_json)["desired"]["sources"]["ui.idle_timeout_s"] == "town-a"
    assert gone.exit_code == 0, gone.output
    assert "deleted config layer town-a" in gone.stdout
    assert answered(after) == []


def test_refusals_come_with_the_api_message(database_url: str) -> None:
    with admin_api_in_a_thread(database_url, TOKENS) as (server, secrets):
        admin, ops = secrets["admin"], secrets["ops"]
        bad_value = run(server, admin, "config", "layers", "set", "all", "--global",
                        "ui.idle_timeout_s=5")  # fmt: skip
        unknown_key = run(server, admin, "config", "layers", "set", "all", "--global", "ui.x=1")
        no_scope = run(server, admin, "config", "layers", "set", "new", "ui.language=en")
        two_scopes = run(server, admin, "config", "layers", "set", "x", "--global", "--node", "44")
        no_equals = run(server, admin, "config", "layers", "set", "x", "--global", "ui.language")
        forbidden = run(server, ops, "config", "layers", "set", "all", "--global", "ui.language=en")
        missing = run(server, admin, "config", "layers", "show", "nope")
        no_device = run(server, admin, "config", "device", "nope")
        nothing = run(server, admin, "config", "layers", "ls", "--json")

    refused(bad_value, 400, "ui.idle_timeout_s: 5 is outside 15 to 1800")
    refused(unknown_key, 400, "ui.x: no such key")
    refused(forbidden, 403, "config.write")
    refused(missing, 404, "no config layer 'nope'")
    refused(no_device, 404, "no device 'nope'")
    for usage, text in (
        (no_scope, "layer new is new: give its scope"),
        (two_scopes, "one scope at a time"),
        (no_equals, "write it as KEY=VALUE"),
    ):
        assert usage.exit_code == 2, usage.output
        assert text in usage.stderr
    assert answered(nothing) == []
