"""/api/v1/rollouts over a real aiohttp server with the executor, on both databases.

The scoped tree's six kiosks run version 2 of the package ``guide``; the repository holds
versions 2 and 3. The broker is the executor tests' list of retained notices, and devices report
through ``executor.report`` as the ingest would hand their ``packages`` messages over.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import test_utils

from control_plane.auth import Role
from control_plane.db import database
from control_plane.db.content_models import ContentPackage
from control_plane.db.models import AuditEntry
from control_plane.db.rollout_models import DevicePackage, Rollout
from control_plane.http.app import make_app
from control_plane.http.rollouts import STANDALONE
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from control_plane.rollout_executor import RolloutExecutor
from control_plane.rollout_notices import DownloadSettings, NoticeMaker
from edge.protocol import PackagePhase
from tests.support.admin_api import Api, admin_api
from tests.support.scoped_fleet import DEVICES_AT, TOWN_A, UNPLACED, document, load_fleet
from tests.test_rollout_executor import Broker, Clock, report

ROLLOUTS = "/api/v1/rollouts"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SHA_2, SHA_3, SHA_NEW = "2" * 64, "3" * 64, "a" * 64
DEVICES = sorted([*DEVICES_AT, UNPLACED])


@dataclass(frozen=True)
class World:
    api: Api
    executor: RolloutExecutor
    broker: Broker
    clock: Clock
    metrics: ControlPlaneMetrics

    @property
    def base(self) -> str:
        return str(self.api.client.make_url("")).rstrip("/")

    async def create(self, secret: str, **body: Any) -> tuple[int, Any]:  # noqa: ANN401 - JSON
        asked = {"package": SHA_3, "target": {}, **body}
        return await self.api.call("POST", ROLLOUTS, secret, asked)

    async def started(self, secret: str, **body: Any) -> dict[str, Any]:  # noqa: ANN401 - JSON
        status, view = await self.create(secret, **body)
        assert status == 201, view
        return dict(view)

    def steps(self, rollout_id: str) -> dict[str, str]:
        devices = self.executor.rollouts[rollout_id].devices
        return {device: progress.step.value for device, progress in devices.items()}

    def notified(self, rollout_id: str) -> list[str]:
        return sorted(d for d, step in self.steps(rollout_id).items() if step == "notified")


async def add_package(
    sha256: str, version: int, name: str = "guide", kind: str = "content"
) -> None:
    await ContentPackage.create(
        sha256=sha256, size=1000 + version, kind=kind, name=name, version=version, key_id="k1",
        signature="c2ln", manifest={}, uploaded_at=NOW, uploaded_by="t",
    )  # fmt: skip


@contextlib.asynccontextmanager
async def rollout_api(database_url: str) -> AsyncIterator[World]:
    """The API on the scoped tree with a rollout executor, as ``server run`` serves it."""
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        fleet = await load_fleet()
        metrics = ControlPlaneMetrics(fleet)
        clock = Clock(NOW)
        app = make_app(fleet, metrics, Ingest(fleet, metrics), clock=clock)
        await add_package(SHA_2, 2)
        await add_package(SHA_3, 3)
        await add_package(SHA_NEW, 1, name="notice")
        await DevicePackage.bulk_create(
            [DevicePackage(device_id=d, name="guide", installed=2, phase="installed",
                           reported_at=NOW) for d in DEVICES]
        )  # fmt: skip
        broker = Broker()
        downloads = DownloadSettings("http://cp.example:8080", b"k" * 32)
        executor = RolloutExecutor(
            NoticeMaker(downloads, fleet.hours_of), fleet.hours_of, broker.publish, clock=clock
        )
        await executor.load()
        app[STANDALONE].executor = executor
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield World(Api(client, fleet), executor, broker, clock, metrics)


# --- creating, reading ----------------------------------------------------------------------


async def test_a_rollout_is_created_shown_listed_and_its_devices_paged(database_url: str) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        view = await world.started(
            admin, package={"name": "guide", "version": 3}, waves=["50", 100], id="guide-3"
        )
        shown = await world.api.ok("GET", f"{ROLLOUTS}/guide-3", admin)
        listed = await world.api.listing(ROLLOUTS, admin)
        devices = await world.api.listing(f"{ROLLOUTS}/guide-3/devices", admin)
        notified = await world.api.listing(f"{ROLLOUTS}/guide-3/devices?step=notified", admin)
        second = await world.api.listing(f"{ROLLOUTS}/guide-3/devices?wave=2", admin)

    assert shown == view
    assert (view["id"], view["phase"], view["final"], view["wave"]) == (
        "guide-3",
        "running",
        False,
        1,
    )
    assert view["package"] == {
        "kind": "content", "name": "guide", "version": 3, "sha256": SHA_3,
        "previous_version": 2, "previous_sha256": SHA_2,
    }  # fmt: skip
    assert view["target"] == {"node": None, "kinds": [], "labels": {}, "device_ids": []}
    assert view["device_count"] == len(DEVICES) == 6
    assert [(w["number"], w["percent"], w["size"], w["reached"]) for w in view["waves"]] == [
        (1, 50, 3, 3),
        (2, 100, 3, 6),
    ]
    assert view["waves"][0]["steps"]["notified"] == 3
    assert view["waves"][1]["steps"]["queued"] == 3
    assert view["waves"][0]["succeeded_share"] is None  # nothing judged yet
    assert (view["success_threshold"], view["failure_threshold"], view["min_finished"]) == (
        95, 10, 5
    )  # fmt: skip
    assert (view["device_timeout_s"], view["install_policy"]) == (7200, "outside_opening_hours")
    assert view["created_by"].startswith("admin-all")
    assert [item["id"] for item in listed] == ["guide-3"]
    assert [d["device_id"] for d in devices] == DEVICES  # paged two by two, in id order
    assert {d["step"] for d in notified} == {"notified"}
    assert len(notified) == 3
    assert {d["wave"] for d in second} == {2}
    assert {d["installed_version"] for d in devices} == {2}
    assert set(notified[0]) == {
        "device_id", "wave", "step", "since", "attempts", "reason", "detail", "installed_version"
    }  # fmt: skip


async def test_listing_filters_by_phase_and_package_newest_first(database_url: str) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        for index, device in enumerate(DEVICES[:3]):
            world.clock.now = NOW.replace(minute=index)
            await world.started(admin, target={"device_ids": [device]}, id=f"r{index}")
        world.clock.now = NOW.replace(minute=5)
        await world.started(admin, package=SHA_NEW, id="notice-1")
        await world.api.ok("POST", f"{ROLLOUTS}/r1/pause", admin)

        everything = await world.api.listing(ROLLOUTS, admin)
        paused = await world.api.listing(f"{ROLLOUTS}?phase=paused", admin)
        guides = await world.api.listing(f"{ROLLOUTS}?package=guide", admin)
        bad_phase = await world.api.call("GET", f"{ROLLOUTS}?phase=sleeping", admin)
        bad_cursor = await world.api.call("GET", f"{ROLLOUTS}?cursor=nonsense", admin)

    assert [item["id"] for item in everything] == ["notice-1", "r2", "r1", "r0"]
    assert [item["id"] for item in paused] == ["r1"]
    assert [item["id"] for item in guides] == ["r2", "r1", "r0"]
    assert bad_phase[0] == 400
    assert bad_phase[1]["error"]["details"]["parameter"] == "phase"
    assert bad_cursor[0] == 400


# --- refusals -------------------------------------------------------------------------------


REFUSED_SPECS = [
    ({"waves": ["10", "5", "100"]}, "waves", "waves_not_increasing"),
    ({"waves": ["10", "50"]}, "waves", "last_wave_not_whole"),
    ({"waves": []}, "waves", "no_waves"),
    ({"waves": ["ten", "100"]}, "waves", "invalid_share"),
    ({"waves": [0, 100]}, "waves", "waves_not_increasing"),
    ({"success_threshold": 150}, "success_threshold", "out_of_range"),
    ({"failure_threshold": "-1"}, "failure_threshold", "out_of_range"),
    ({"min_finished": 0}, "min_finished", "min_finished_out_of_range"),
    ({"device_timeout_s": 0}, "device_timeout_s", "timeout_out_of_range"),
    ({"target": {"node": "99"}}, "target.node", "unknown_node"),
    ({"target": {"node": "town"}}, "target.node", "unknown_node"),
    ({"target": {"kinds": ["toaster"]}}, "target.kinds", "unknown_kind"),
    ({"target": {"kinds": ["booth"]}}, "target", "no_devices"),
    ({"target": {"labels": {"floor": "9"}}}, "target", "no_devices"),
    ({"target": {"labels": {"Bad Key": "x"}}}, "target.labels", "invalid_label"),
    (
        {"target": {"device_ids": ["kiosk-a", "kiosk-nowhere"]}},
        "target.device_ids",
        "unknown_device",
    ),
    ({"target": {"node": "44", "device_ids": ["kiosk-a"]}}, "target.device_ids", "mixed_targeting"),
]


@pytest.mark.parametrize(("body", "field", "reason"), REFUSED_SPECS, ids=str)
async def test_a_rollout_that_cannot_be_made_is_a_422_naming_the_field_and_keeps_nothing(
    database_url: str, body: dict[str, Any], field: str, reason: str
) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        status, answer = await world.create(admin, **body)
        assert (
            await Rollout.all().count(),
            await AuditEntry.filter(action="rollout.create").count(),
        ) == (0, 0)

    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_rollout"
    assert answer["error"]["details"] == {"reason": reason, "field": field}
    assert world.executor.rollouts == {}
    assert world.broker.retained == {}


MALFORMED = [
    ({"target": None}, "target"),
    ({"waves": "1,10,100"}, "waves"),
    ({"colour": "red"}, "colour"),
    ({"package": 3}, "package"),
    ({"package": "not-a-sha"}, "package"),
    ({"package": {"name": "guide"}}, "package.version"),
    ({"target": {"kinds": "kiosk"}}, "target.kinds"),
    ({"target": {"sites": ["x"]}}, "target.sites"),
    ({"min_finished": "5"}, "min_finished"),
    ({"install_policy": "whenever"}, "install_policy"),
    ({"id": "no spaces"}, "id"),
]


@pytest.mark.parametrize(("body", "field"), MALFORMED, ids=str)
async def test_a_body_of_the_wrong_shape_is_a_400_naming_the_field(
    database_url: str, body: dict[str, Any], field: str
) -> None:
    async with rollout_api(database_url) as world:
        status, answer = await world.create(await world.api.token(), **body)

    assert status == 400, answer
    assert (answer["error"]["code"], answer["error"]["details"]["field"]) == (
        "invalid_field",
        field,
    )
    assert world.executor.rollouts == {}


async def test_unknown_packages_are_404_and_busy_devices_or_a_taken_id_409(
    database_url: str,
) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        by_sha = await world.create(admin, package="f" * 64)
        by_name = await world.create(admin, package={"name": "guide", "version": 9})
        first = await world.started(admin, target={"device_ids": ["kiosk-a", "kiosk-b"]})
        busy = await world.create(admin, target={"node": TOWN_A})
        taken = await world.create(admin, package=SHA_NEW, id=first["id"])
        not_json = await world.api.call("POST", ROLLOUTS, admin, raw=b"waves=1")

    assert by_sha[0] == by_name[0] == 404
    assert "version 9" in by_name[1]["error"]["message"]
    assert busy[0] == 409
    assert busy[1]["error"]["code"] == "devices_busy"
    assert "kiosk-a" in busy[1]["error"]["message"]
    assert taken[0] == 409
    assert taken[1]["error"]["code"] == "already_exists"
    assert not_json[0] == 400
    assert list(world.executor.rollouts) == [first["id"]]


# --- actions --------------------------------------------------------------------------------


async def test_actions_move_the_phase_and_a_refused_one_is_a_409_with_its_reason(
    database_url: str,
) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        rollout_id = (await world.started(admin, id="g3"))["id"]
        path = f"{ROLLOUTS}/{rollout_id}"

        paused = await world.api.ok("POST", f"{path}/pause", admin)
        again = await world.api.call("POST", f"{path}/pause", admin)
        resumed = await world.api.ok("POST", f"{path}/resume", admin, {"waive_thresholds": False})
        bad_resume = await world.api.call("POST", f"{path}/resume", admin, {"waive": True})
        body_on_pause = await world.api.call("POST", f"{path}/pause", admin, {"now": True})
        cancelled = await world.api.ok("POST", f"{path}/cancel", admin)
        retry = await world.api.call("POST", f"{path}/retry", admin)
        unknown = await world.api.call("POST", f"{ROLLOUTS}/nope/cancel", admin)
        rolled = await world.api.ok("POST", f"{path}/rollback", admin)
        entries = await AuditEntry.filter(target_type="rollout").order_by("id")

    assert (paused["phase"], paused["pause_reason"]) == ("paused", "operator")
    assert again[0] == 409
    assert again[1]["error"]["code"] == "cannot_pause"
    assert again[1]["error"]["details"] == {"reason": "cannot_pause", "phase": "paused"}
    assert resumed["phase"] == "running"
    assert bad_resume[0] == body_on_pause[0] == 400
    assert bad_resume[1]["error"]["details"]["field"] == "waive"
    assert (cancelled["phase"], cancelled["final"]) == ("cancelled", True)
    assert set(cancelled["steps"].items()) >= {("cancelled", 6)}
    assert (retry[0], retry[1]["error"]["code"]) == (409, "cannot_retry")
    assert unknown[0] == 404
    assert rolled["phase"] in {"rolling_back", "rolled_back"}
    assert [e.action for e in entries] == [
        "rollout.create", "rollout.pause", "rollout.resume", "rollout.cancel", "rollout.rollback"
    ]  # fmt: skip
    assert entries[1].before is not None
    assert entries[1].after is not None
    assert (entries[1].before["phase"], entries[1].after["phase"]) == ("running", "paused")
    assert entries[0].after is not None
    assert entries[0].after["package"] == {
        "kind": "content", "name": "guide", "version": 3, "sha256": SHA_3,
        "previous_version": 2, "previous_sha256": SHA_2,
    }  # fmt: skip
    assert {e.actor_name for e in entries} == {entries[0].actor_name}


async def test_a_rollout_without_a_previous_version_cannot_be_rolled_back(
    database_url: str,
) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        view = await world.started(admin, package=SHA_NEW)
        status, answer = await world.api.call("POST", f"{ROLLOUTS}/{view['id']}/rollback", admin)

    assert view["package"]["previous_version"] is None
    assert (status, answer["error"]["code"]) == (409, "no_previous_version")


async def test_failures_in_the_first_wave_pause_it_and_show_where_each_device_stands(
    database_url: str,
) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        rollout_id = (
            await world.started(admin, waves=[50, 100], min_finished=1, install_policy="when_idle")
        )["id"]
        good, bad, _ = world.notified(rollout_id)
        await world.executor.report(
            good, report(PackagePhase.INSTALLED, installed=3, rollout_id=rollout_id)
        )
        await world.executor.report(bad, report(PackagePhase.FAILED, rollout_id=rollout_id,
                                                reason="no_space", detail="disk full"))  # fmt: skip
        await world.executor.tick()
        view = await world.api.ok("GET", f"{ROLLOUTS}/{rollout_id}", admin)
        failed = await world.api.ok("GET", f"{ROLLOUTS}/{rollout_id}/devices?step=failed", admin)
        retried = await world.api.ok("POST", f"{ROLLOUTS}/{rollout_id}/retry", admin)
        queued = await world.api.ok("GET", f"{ROLLOUTS}/{rollout_id}/devices?step=queued", admin)
        waived = await world.api.ok(
            "POST", f"{ROLLOUTS}/{rollout_id}/resume", admin, {"waive_thresholds": True}
        )

    assert (view["phase"], view["pause_reason"]) == ("paused", "failure_threshold")
    assert "1 of 2 finished devices failed" in view["pause_detail"]
    first = view["waves"][0]
    assert (first["succeeded"], first["failed"], first["finished"]) == (1, 1, 2)
    assert (first["succeeded_share"], first["failed_share"]) == (50, 50)
    assert [(d["device_id"], d["reason"], d["detail"]) for d in failed["items"]] == [
        (bad, "no_space", "disk full")
    ]
    assert retried["phase"] == "paused"  # retrying is not resuming
    assert [(d["device_id"], d["attempts"]) for d in queued["items"] if d["wave"] == 1] == [
        (bad, 1)
    ]
    assert (waived["phase"], waived["waived_wave"]) == ("running", 1)


# --- who may -------------------------------------------------------------------------------


async def test_every_role_reads_only_an_admin_for_the_whole_tree_writes(database_url: str) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        rollout_id = (await world.started(admin))["id"]
        readers = [await world.api.token(role) for role in Role]
        scoped_admin = await world.api.token(Role.ADMIN, TOWN_A)
        operator = await world.api.token(Role.OPERATOR)
        scoped_reader = await world.api.token(Role.AUDITOR, TOWN_A)

        reads = [
            (await world.api.call("GET", f"{ROLLOUTS}/{rollout_id}", secret))[0]
            for secret in readers
        ]
        by_operator = await world.create(operator, id="x")
        pause_by_operator = await world.api.call("POST", f"{ROLLOUTS}/{rollout_id}/pause", operator)
        by_scoped = await world.create(scoped_admin, id="y")
        pause_by_scoped = await world.api.call(
            "POST", f"{ROLLOUTS}/{rollout_id}/pause", scoped_admin
        )
        seen = await world.api.listing(f"{ROLLOUTS}/{rollout_id}/devices", scoped_reader)
        phase = world.executor.rollouts[rollout_id].state.phase.value

    assert reads == [200] * len(Role)
    assert (by_operator[0], by_operator[1]["error"]["code"]) == (403, "forbidden")
    assert by_operator[1]["error"]["details"]["permission"] == "rollout.write"
    assert pause_by_operator[0] == 403
    assert (by_scoped[0], by_scoped[1]["error"]["code"]) == (403, "out_of_scope")
    assert (pause_by_scoped[0], pause_by_scoped[1]["error"]["code"]) == (403, "out_of_scope")
    assert phase == "running"
    assert {d["device_id"] for d in seen} == {"kiosk-a", "pad-a1"}  # town A and its village


# --- metrics, and an API without the server's executor --------------------------------------


async def test_progress_is_exposed_as_metrics_for_unfinished_rollouts_only(
    database_url: str,
) -> None:
    async with rollout_api(database_url) as world:
        admin = await world.api.token()
        rollout_id = (await world.started(admin, waves=[50, 100]))["id"]
        running = world.metrics.registry.get_sample_value
        before = {
            "running": running("termfleet_rollouts", {"phase": "running"}),
            "notified": running(
                "termfleet_rollout_devices", {"rollout": rollout_id, "step": "notified"}
            ),
            "queued": running(
                "termfleet_rollout_devices", {"rollout": rollout_id, "step": "queued"}
            ),
            "wave": running("termfleet_rollout_wave", {"rollout": rollout_id}),
        }
        scraped = await (await world.api.client.get("/metrics")).text()
        await world.api.ok("POST", f"{ROLLOUTS}/{rollout_id}/cancel", admin)
        after = await (await world.api.client.get("/metrics")).text()

    assert before == {"running": 1, "notified": 3, "queued": 3, "wave": 1}
    assert f'termfleet_rollout_wave{{rollout="{rollout_id}"}} 1.0' in scraped
    assert 'termfleet_rollouts{phase="cancelled"} 1.0' in after
    assert rollout_id not in after  # a finished rollout's series are gone


async def test_an_api_without_the_servers_executor_keeps_rollouts_all_the_same(
    database_url: str,
) -> None:
    async with admin_api(database_url) as api:
        await add_package(SHA_3, 3)
        admin = await api.token()
        status, view = await api.call(
            "POST", ROLLOUTS, admin, {"package": SHA_3, "target": {"node": TOWN_A}}
        )
        listed = await api.listing(ROLLOUTS, admin)
        stored = await Rollout.all().values_list("id", flat=True)

    assert status == 201, view
    assert view["steps"]["notified"] == 1  # 1 % of 2 devices: one, notified at once
    assert [item["id"] for item in listed] == [view["id"]] == stored
