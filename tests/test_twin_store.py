"""The device twin's storage on both databases: layers in, desired config issued, reports kept.

Runs on the scoped tree of ``tests/support/scoped_fleet.py`` (every device a kiosk): layers of
every scope kind, merged for every device; versions issued only when values change; reports
counted only when newer; per-layer counts; devices moved, relabelled or retired.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control_plane import twin_devices, twin_store
from control_plane.admin_errors import InvalidFieldError, NotFoundError
from control_plane.db import database
from control_plane.db.models import AuditEntry, Device, Site
from control_plane.db.twin_models import ConfigLayer, DeviceTwin
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.twin import LayerCounts
from control_plane.twin_store import LayerInput, LayerRefusedError
from edge.protocol import ReportedConfig
from edge.protocol.config import ApplyStatus
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_X, UNPLACED, document, load_fleet

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GLOBAL = {"kind": "global"}


@contextlib.asynccontextmanager
async def scoped_db(database_url: str) -> AsyncIterator[None]:
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        await load_fleet()  # stores the device placed nowhere, as the ingest would
        yield


async def put(
    layer_id: str, scope: dict[str, Any], values: dict[str, Any], priority: object = 0
) -> None:
    await twin_store.put_layer(None, LayerInput(layer_id, scope, values, priority), NOW)


async def desired() -> dict[str, tuple[int, dict[str, Any], dict[str, str]]]:
    rows = await DeviceTwin.all()
    return {r.device_id: (r.desired_version, r.desired_values, r.desired_sources) for r in rows}


async def precedence_layers() -> None:
    await Device.filter(device_id="kiosk-a").update(labels={"hall": "main"})
    await put("all", GLOBAL, {"ui.idle_timeout_s": 60, "ui.language": "en"})
    await put("district", {"kind": "node", "node": DISTRICT}, {"ui.idle_timeout_s": 90})
    await put("town-a", {"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 100})
    await put(
        "main-hall",
        {"kind": "labels", "labels": {"hall": "main"}},
        {"ui.idle_timeout_s": 110, "ui.font_scale": 1.5},
        priority=5,
    )
    await put("kiosk-a-own", {"kind": "device", "device": "kiosk-a"}, {"ui.idle_timeout_s": 200})


async def test_layers_merge_by_precedence_for_every_device(database_url: str) -> None:
    async with scoped_db(database_url):
        await precedence_layers()
        done = await twin_devices.reconcile(None, NOW)
        issued = await desired()

    assert done.issued == 6
    values = {device: row[1] for device, row in issued.items()}
    sources = {device: row[2] for device, row in issued.items()}
    # The device's own layer beats the label layer, which beats the nodes, which beat global.
    assert values["kiosk-a"] == {
        "ui.font_scale": 1.5,
        "ui.idle_timeout_s": 200,
        "ui.language": "en",
    }
    assert sources["kiosk-a"] == {
        "ui.font_scale": "main-hall",
        "ui.idle_timeout_s": "kiosk-a-own",
        "ui.language": "all",
    }
    assert values["pad-a1"]["ui.idle_timeout_s"] == 100  # in town A's subtree: the deeper node
    assert values["kiosk-b"]["ui.idle_timeout_s"] == 90
    # Town X's code starts with town A's, but it is not below it.
    assert sources["kiosk-x"]["ui.idle_timeout_s"] == "district"
    assert values[UNPLACED] == {"ui.idle_timeout_s": 60, "ui.language": "en"}
    assert {row[0] for row in issued.values()} == {5}  # the revision of the fifth change


async def test_versions_change_only_with_the_values_and_only_go_up(database_url: str) -> None:
    async with scoped_db(database_url):
        await put("all", GLOBAL, {"ui.idle_timeout_s": 60})
        await twin_devices.reconcile(None, NOW)
        first = await desired()
        again = await twin_devices.reconcile(None, NOW)
        # The same value from another layer: where it comes from changes, the version does not.
        await put("town-a", {"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 60})
        await twin_devices.reconcile(None, NOW)
        moved_source = await desired()
        await put("town-a", {"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 61})
        await twin_devices.reconcile(None, NOW)
        changed = await desired()

    assert again == twin_devices.Reconciled(issued=0, changed=0)
    assert moved_source["kiosk-a"][0] == first["kiosk-a"][0] == 1
    assert moved_source["kiosk-a"][2] == {"ui.idle_timeout_s": "town-a"}
    assert changed["kiosk-a"][0] == 3
    assert changed["kiosk-b"][0] == 1  # outside town A: untouched


@pytest.mark.parametrize(
    ("values", "field", "named"),
    [
        ({"ui.idle_timeout_s": 5}, "values.ui.idle_timeout_s", "outside 15 to 1800"),
        ({"ui.idle_timeout_s": True}, "values.ui.idle_timeout_s", "is not an integer"),
        ({"ui.language": "fr"}, "values.ui.language", "is not one of"),
        ({"ui.no_such_key": 1}, "values.ui.no_such_key", "no such key"),
        ({"ui.opening_hours_text": "a\nb"}, "values.ui.opening_hours_text", "control char"),
    ],
)
async def test_an_invalid_value_is_refused_naming_the_key_and_nothing_is_kept(
    database_url: str, values: dict[str, Any], field: str, named: str
) -> None:
    async with scoped_db(database_url):
        await put("all", GLOBAL, {"ui.idle_timeout_s": 60})
        with pytest.raises(LayerRefusedError) as refused:
            await put("all", GLOBAL, {"ui.language": "en", **values})
        kept = await ConfigLayer.get(id="all")
        audited = await AuditEntry.filter(target_type="config_layer").count()

    assert refused.value.field == field
    assert field.removeprefix("values.") in refused.value.message
    assert named in refused.value.message
    assert kept.values == {"ui.idle_timeout_s": 60}
    assert kept.revision == 1
    assert audited == 1


@pytest.mark.parametrize(
    ("layer_id", "scope", "priority", "field"),
    [
        ("bad id!", GLOBAL, 0, "id"),
        ("x", {"kind": "planet"}, 0, "scope.kind"),
        ("x", {"kind": "node"}, 0, "scope.node"),
        ("x", {"kind": "node", "node": "999999"}, 0, "scope.node"),
        ("x", {"kind": "device", "device": "nobody"}, 0, "scope.device"),
        ("x", {"kind": "labels", "labels": {}}, 0, "scope"),
        ("x", {"kind": "labels", "labels": ["a"]}, 0, "scope.labels"),
        ("x", {"kind": "global", "node": "44"}, 0, "scope.node"),
        ("x", GLOBAL, 10_000, "priority"),
        ("x", GLOBAL, "1", "priority"),
    ],
)
async def test_a_bad_layer_is_refused_naming_the_field(
    database_url: str, layer_id: str, scope: dict[str, Any], priority: object, field: str
) -> None:
    async with scoped_db(database_url):
        with pytest.raises(InvalidFieldError) as refused:
            await put(layer_id, scope, {"ui.language": "en"}, priority=priority)
        assert await ConfigLayer.all().count() == 0

    assert refused.value.field == field


async def test_a_deleted_layer_falls_back_with_a_new_version_and_is_audited(
    database_url: str,
) -> None:
    async with scoped_db(database_url):
        await put("all", GLOBAL, {"ui.idle_timeout_s": 60})
        await put("town-a", {"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 100})
        await twin_devices.reconcile(None, NOW)
        change = await twin_store.delete_layer(None, "town-a", NOW)
        reached = twin_devices.affected(
            change.before, change.after, await twin_devices.device_contexts()
        )
        await twin_devices.reconcile(reached, NOW)
        after = await desired()
        actions = await AuditEntry.filter(target_type="config_layer").order_by("id")
        with pytest.raises(NotFoundError):
            await twin_store.delete_layer(None, "town-a", NOW)

    assert reached == {"kiosk-a", "pad-a1"}
    assert after["kiosk-a"][:2] == (3, {"ui.idle_timeout_s": 60})
    assert after["kiosk-b"][0] == 2  # issued when town A's layer came, untouched since
    assert [a.action for a in actions] == [
        "config.layer.create",
        "config.layer.create",
        "config.layer.delete",
    ]
    assert actions[-1].before is not None
    assert actions[-1].before["values"] == {"ui.idle_timeout_s": 100}


async def test_moved_relabelled_and_retired_devices_follow_at_the_next_reconcile(
    database_url: str,
) -> None:
    async with scoped_db(database_url):
        await put("town-a", {"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 100})
        await put("blue", {"kind": "labels", "labels": {"colour": "blue"}}, {"ui.language": "en"})
        await twin_devices.reconcile(None, NOW)
        before = await desired()
        town_a_site = await Site.get(code=f"s{TOWN_A}")
        await Device.filter(device_id="kiosk-x").update(site_id=town_a_site.id)
        await Device.filter(device_id="kiosk-b").update(labels={"colour": "blue"})
        await Device.filter(device_id="kiosk-a").update(lifecycle="retired")
        await twin_devices.reconcile(None, NOW)
        after = await desired()
        counts = await twin_devices.layer_counts()

    assert "kiosk-x" not in before
    assert "kiosk-b" not in before
    assert after["kiosk-x"][1] == {"ui.idle_timeout_s": 100}
    assert after["kiosk-b"][1] == {"ui.language": "en"}
    assert counts["town-a"].targeted == 2  # pad-a1 and kiosk-x; the retired kiosk-a no more


async def test_reports_count_only_when_newer_and_counts_follow_per_layer(
    database_url: str,
) -> None:
    def report(version: int, status: ApplyStatus, error: str = "") -> ReportedConfig:
        return ReportedConfig(version=version, status=status, error=error, values={})

    async with scoped_db(database_url):
        await put("all", GLOBAL, {"ui.language": "en"})
        await twin_devices.reconcile(None, NOW)
        await put("town-a", {"kind": "node", "node": TOWN_A}, {"ui.idle_timeout_s": 100})
        await twin_devices.reconcile(None, NOW)
        later = NOW + timedelta(minutes=1)
        stored = [
            await twin_devices.record_reported("kiosk-a", report(2, ApplyStatus.APPLIED), later),
            await twin_devices.record_reported("kiosk-a", report(2, ApplyStatus.APPLIED), later),
            await twin_devices.record_reported("kiosk-a", report(1, ApplyStatus.FAILED), later),
            await twin_devices.record_reported("pad-a1", report(2, ApplyStatus.FAILED, "x"), later),
            # the same version, applied after a retry: it counts
            await twin_devices.record_reported("kiosk-b", report(1, ApplyStatus.FAILED), later),
            await twin_devices.record_reported("kiosk-b", report(1, ApplyStatus.APPLIED), later),
        ]
        counts = await twin_devices.layer_counts()
        shown = await twin_devices.device_config(None, "kiosk-a")
        pad = await twin_devices.device_config(None, "pad-a1")

    assert stored == [True, False, False, True, True, True]
    # "all" went out in version 1 to every device, town A's part in version 2.
    assert counts["all"] == LayerCounts(targeted=6, applied=2, failed=1)
    assert counts["town-a"] == LayerCounts(targeted=2, applied=1, failed=1)
    assert shown["state"] == "applied"
    assert shown["desired"]["sources"] == {"ui.idle_timeout_s": "town-a", "ui.language": "all"}
    assert shown["effective"]["ui.idle_timeout_s"] == 100
    assert shown["effective"]["ui.font_scale"] == 1.0  # the key's default
    assert (pad["state"], pad["reported"]["error"]) == ("failed", "x")


async def test_a_device_ahead_of_the_database_gets_a_version_above_its_own(
    database_url: str,
) -> None:
    async with scoped_db(database_url):
        # A database restored from a backup: the device applied version 40 from the lost one.
        report = ReportedConfig(version=40, status=ApplyStatus.APPLIED)
        await twin_devices.record_reported("kiosk-a", report, NOW)
        await put("all", GLOBAL, {"ui.language": "en"})
        await twin_devices.reconcile(None, NOW)
        issued = await desired()

    assert issued["kiosk-a"][0] == 41
    assert issued["kiosk-b"][0] == 1


async def test_to_publish_lists_the_unpublished_then_after_a_reconnect_the_unconfirmed(
    database_url: str,
) -> None:
    async with scoped_db(database_url):
        await put("town-a", {"kind": "node", "node": TOWN_A}, {"ui.language": "en"})
        await twin_devices.reconcile(None, NOW)
        first = await twin_devices.to_publish(unconfirmed_too=False)
        await twin_devices.mark_published(first)
        none_left = await twin_devices.to_publish(unconfirmed_too=False)
        applied = ReportedConfig(version=1, status=ApplyStatus.APPLIED)
        await twin_devices.record_reported("kiosk-a", applied, NOW)
        unconfirmed = await twin_devices.to_publish(unconfirmed_too=True)

    assert sorted(row.device_id for row in first) == ["kiosk-a", "pad-a1"]
    assert none_left == []
    assert [row.device_id for row in unconfirmed] == ["pad-a1"]
    assert twin_devices.desired_message(unconfirmed[0]).values == {"ui.language": "en"}


async def test_a_layer_of_a_deleted_node_reaches_nobody(database_url: str) -> None:
    async with scoped_db(database_url):
        await put("town-x", {"kind": "node", "node": TOWN_X}, {"ui.language": "en"})
        await ConfigLayer.filter(id="town-x").update(scope={"node": "4401179999"})
        await twin_devices.reconcile(None, NOW)
        layers = await twin_store.load_layers()

    assert [(s.row.id, s.layer, s.node_path) for s in layers] == [("town-x", None, None)]
