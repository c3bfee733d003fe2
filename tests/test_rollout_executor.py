"""The rollout executor against a real database: notices out, reports in, waves, windows.

The broker is replaced by a list of published messages and the agents by reports written
here; tests/test_rollout_e2e.py runs the same path with real agents and a real Mosquitto.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control_plane import rollout_create
from control_plane.db import database
from control_plane.db.content_models import ContentPackage
from control_plane.db.models import Device
from control_plane.db.rollout_models import DevicePackage, RolloutDevice
from control_plane.rollout_create import RolloutRequest, Targeting
from control_plane.rollout_executor import RolloutExecutor
from control_plane.rollout_notices import DownloadSettings, NoticeMaker
from control_plane.rollouts import DeviceStep, OperationError, RolloutPhase, percent
from control_plane.rollouts.spec import InstallPolicy
from edge import mqtt, schedule
from edge.protocol import (
    Channel,
    ContentNotice,
    InstallWhen,
    PackagePhase,
    PackageReport,
    PackageState,
    PackageTarget,
    decode_message,
)

HOURS = schedule.parse("mon-fri 08:30-17:30")  # Asia/Shanghai
OPEN = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # Monday 11:00 in Guangzhou
CLOSED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # Monday 20:00
DEVICES = [f"kiosk-{n:02d}" for n in range(50)]
SHA_2, SHA_3 = "2" * 64, "3" * 64


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Broker:
    """The retained content notice of each device, as the broker would hold it."""

    def __init__(self) -> None:
        self.connected = True
        self.retained: dict[str, ContentNotice] = {}
        self.published = 0

    def publish(self, message: mqtt.Outgoing) -> bool:
        if not self.connected:
            return False
        decoded = decode_message(message.topic, message.payload)
        assert decoded.topic.channel is Channel.CONTENT
        assert message.retain
        assert isinstance(decoded.payload, ContentNotice)
        self.retained[decoded.topic.subject] = decoded.payload
        self.published += 1
        return True

    def target(self, device_id: str, name: str = "guide") -> PackageTarget | None:
        notice = self.retained.get(device_id)
        found = [t for t in notice.targets if t.name == name] if notice else []
        return found[0] if found else None

    def told(self, device_id: str) -> PackageTarget:
        target = self.target(device_id)
        assert target is not None, f"{device_id} has no target"
        return target


World = tuple[RolloutExecutor, Broker, Clock]


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    async with database(database_url):
        await Device.bulk_create([Device(device_id=d, kind="kiosk") for d in DEVICES])
        for version, sha in ((2, SHA_2), (3, SHA_3)):
            await ContentPackage.create(
                sha256=sha, size=1000 + version, kind="content", name="guide", version=version,
                key_id="k1", signature="c2ln", manifest={}, uploaded_at=OPEN, uploaded_by="t",
            )  # fmt: skip
        await DevicePackage.bulk_create(
            [
                DevicePackage(device_id=d, name="guide", installed=2, phase="installed",
                              reported_at=OPEN)
                for d in DEVICES
            ]
        )  # fmt: skip
        broker, clock = Broker(), Clock(OPEN)
        downloads = DownloadSettings("http://cp.example:8080", b"k" * 32)
        executor = RolloutExecutor(
            NoticeMaker(downloads, lambda _d: HOURS), lambda _d: HOURS, broker.publish, clock=clock
        )
        await executor.load()
        yield executor, broker, clock


async def start(executor: RolloutExecutor, clock: Clock, **spec: Any) -> str:  # noqa: ANN401 - RolloutRequest fields
    request = RolloutRequest(
        package_sha256=SHA_3, targeting=Targeting(device_ids=tuple(DEVICES)), **spec
    )
    tracked = await rollout_create.prepare(request, created_by="ops", scope_path=None, now=clock())
    await executor.create(tracked)
    return tracked.rollout_id


def report(
    phase: PackagePhase,
    *,
    installed: int = 2,
    rollout_id: str,
    **extra: Any,  # noqa: ANN401
) -> PackageReport:
    state = PackageState(
        name="guide",
        installed=installed,
        previous=None,
        target=3,
        rollout_id=rollout_id,
        phase=phase,
        **extra,
    )
    return PackageReport(packages=[state])


def steps(executor: RolloutExecutor, rollout_id: str) -> dict[str, DeviceStep]:
    return {d: p.step for d, p in executor.rollouts[rollout_id].devices.items()}


async def stage_notified(executor: RolloutExecutor, broker: Broker, rollout_id: str) -> list[str]:
    """Every notified device reports its download, then the package staged."""
    notified = [d for d, s in steps(executor, rollout_id).items() if s is DeviceStep.NOTIFIED]
    for device_id in notified:
        assert broker.told(device_id).version == 3
        await executor.report(device_id, report(PackagePhase.DOWNLOADING, rollout_id=rollout_id,
                                                bytes_done=10, bytes_total=1003))  # fmt: skip
        await executor.report(device_id, report(PackagePhase.STAGED, rollout_id=rollout_id))
    return notified


async def test_the_canary_is_notified_first_and_installs_only_once_the_site_closes(
    world: World,
) -> None:
    executor, broker, clock = world
    rollout_id = await start(executor, clock)
    notified = [d for d, s in steps(executor, rollout_id).items() if s is DeviceStep.NOTIFIED]
    assert len(notified) == 1  # 1 % of 50, rounded up to one device
    target = broker.told(notified[0])
    assert target.install is InstallWhen.NOT_YET
    assert f"device={notified[0]}" in target.artifact.url
    assert target.artifact.sha256 == SHA_3
    assert set(broker.retained) == set(notified)  # nobody else is told anything

    await stage_notified(executor, broker, rollout_id)
    await executor.tick()
    assert steps(executor, rollout_id)[notified[0]] is DeviceStep.WAITING_FOR_WINDOW
    assert broker.told(notified[0]).install is InstallWhen.NOT_YET

    clock.now = CLOSED
    await executor.tick()
    target = broker.told(notified[0])
    assert target.install is InstallWhen.NOW
    # The window ends when the hall opens on Tuesday at 08:30 local time.
    assert target.install_until == datetime(2026, 3, 3, 0, 30, tzinfo=UTC)

    await executor.report(
        notified[0], report(PackagePhase.INSTALLED, installed=3, rollout_id=rollout_id)
    )
    await executor.tick()
    assert steps(executor, rollout_id)[notified[0]] is DeviceStep.SUCCEEDED
    tracked = executor.rollouts[rollout_id]
    assert tracked.state.wave == 1  # the canary passed: the 10 % wave is notified
    assert sum(s is DeviceStep.NOTIFIED for s in steps(executor, rollout_id).values()) == 4


async def test_failures_in_the_canary_pause_the_rollout_and_nothing_more_is_sent(
    world: World,
) -> None:
    executor, broker, clock = world
    clock.now = CLOSED
    # A canary of 10 (20 %), judged after 5: 1 of 5 failed is 20 %, above the 10 % threshold.
    rollout_id = await start(executor, clock, waves=(percent(20), percent(100)))
    notified = await stage_notified(executor, broker, rollout_id)
    assert len(notified) == 10
    await executor.tick()
    for device_id in notified[:4]:
        await executor.report(
            device_id, report(PackagePhase.INSTALLED, installed=3, rollout_id=rollout_id)
        )
    await executor.report(notified[4], report(PackagePhase.FAILED, rollout_id=rollout_id,
                                              reason="no_space", detail="disk full"))  # fmt: skip
    await executor.tick()
    tracked = executor.rollouts[rollout_id]
    assert tracked.state.phase is RolloutPhase.PAUSED
    assert tracked.notes[notified[4]] == ("no_space", "disk full")
    assert broker.target(notified[4]) is None  # a failed device is no longer held to it
    told = set(broker.retained)
    await executor.tick()
    assert set(broker.retained) == told  # the next wave is not notified while paused
    row = await RolloutDevice.get(rollout_id=rollout_id, device_id=notified[4])
    assert (row.step, row.reason) == ("failed", "no_space")


async def test_a_coalesced_report_walks_the_steps_it_skipped(world: World) -> None:
    executor, broker, clock = world
    clock.now = CLOSED
    rollout_id = await start(
        executor, clock, waves=(percent(100),), install_policy=InstallPolicy.WHEN_IDLE
    )
    device_id = DEVICES[0]
    assert broker.told(device_id).install is InstallWhen.WHEN_IDLE
    # Latest-wins: the control plane never saw downloading or staged.
    await executor.report(
        device_id, report(PackagePhase.INSTALLED, installed=3, rollout_id=rollout_id)
    )
    assert steps(executor, rollout_id)[device_id] is DeviceStep.SUCCEEDED


async def test_an_older_report_about_another_target_moves_nothing(world: World) -> None:
    executor, _, clock = world
    rollout_id = await start(executor, clock, waves=(percent(100),))
    device_id = DEVICES[0]
    stale = PackageReport(packages=[PackageState(name="guide", installed=2, target=2,
                                                 phase=PackagePhase.FAILED)])  # fmt: skip
    await executor.report(device_id, stale)
    assert steps(executor, rollout_id)[device_id] is DeviceStep.NOTIFIED


async def test_a_silent_device_times_out_and_a_retry_notifies_it_again(world: World) -> None:
    executor, broker, clock = world
    rollout_id = await start(
        executor, clock, waves=(percent(100),), device_timeout=timedelta(hours=1)
    )
    clock.now = OPEN + timedelta(hours=1)
    await executor.tick()
    assert set(steps(executor, rollout_id).values()) == {DeviceStep.FAILED}
    assert executor.rollouts[rollout_id].state.phase is RolloutPhase.PAUSED
    assert executor.rollouts[rollout_id].notes[DEVICES[0]][0] == "timeout"
    await executor.operate(rollout_id, "retry")
    assert set(steps(executor, rollout_id).values()) == {DeviceStep.FAILED, DeviceStep.QUEUED} - {
        DeviceStep.FAILED
    }
    await executor.operate(rollout_id, "resume")
    assert set(steps(executor, rollout_id).values()) == {DeviceStep.NOTIFIED}
    assert broker.told(DEVICES[0]).version == 3


async def test_cancel_withdraws_the_target_and_rollback_sends_the_previous_version(
    world: World,
) -> None:
    executor, broker, clock = world
    rollout_id = await start(executor, clock, waves=(percent(10), percent(100)))
    notified = await stage_notified(executor, broker, rollout_id)
    await executor.tick()  # open: all five wait for the window
    done = notified[0]
    await executor.report(done, report(PackagePhase.INSTALLED, installed=3, rollout_id=rollout_id))
    assert steps(executor, rollout_id)[done] is DeviceStep.SUCCEEDED
    clock.now = CLOSED
    await executor.operate(rollout_id, "pause")
    with pytest.raises(OperationError, match="cannot pause a paused rollout"):
        await executor.operate(rollout_id, "pause")
    await executor.operate(rollout_id, "rollback")
    tracked = executor.rollouts[rollout_id]
    assert tracked.row.previous_version == 2
    target = broker.told(done)
    assert (target.version, target.allow_older, target.install) == (2, True, InstallWhen.NOW)
    for other in notified[1:]:
        assert broker.target(other) is None  # cancelled before installing: nothing to undo
    await executor.report(done, PackageReport(packages=[PackageState(
        name="guide", installed=2, previous=3, target=2, rollout_id=rollout_id,
        phase=PackagePhase.INSTALLED)]))  # fmt: skip
    await executor.tick()
    assert steps(executor, rollout_id)[done] is DeviceStep.ROLLED_BACK
    assert tracked.state.phase is RolloutPhase.ROLLED_BACK


async def test_devices_in_an_unfinished_rollout_of_the_package_cannot_be_targeted_again(
    world: World,
) -> None:
    executor, _, clock = world
    await start(executor, clock)
    with pytest.raises(OperationError, match="unfinished rollout") as refused:
        await start(executor, clock)
    assert refused.value.reason == "devices_busy"


async def test_a_restarted_executor_continues_where_the_database_says(world: World) -> None:
    executor, broker, clock = world
    rollout_id = await start(executor, clock, waves=(percent(20), percent(100)))
    await stage_notified(executor, broker, rollout_id)
    before = steps(executor, rollout_id)
    again = RolloutExecutor(
        NoticeMaker(None, lambda _d: HOURS), lambda _d: HOURS, broker.publish, clock=clock
    )
    await again.load()
    assert steps(again, rollout_id) == before
    assert again.rollouts[rollout_id].state == executor.rollouts[rollout_id].state


async def test_notices_wait_for_the_broker_and_go_out_once_it_is_back(world: World) -> None:
    executor, broker, clock = world
    broker.connected = False
    rollout_id = await start(executor, clock, waves=(percent(100),))
    assert broker.retained == {}
    assert set(steps(executor, rollout_id).values()) == {DeviceStep.NOTIFIED}
    broker.connected = True
    await executor.tick()
    assert set(broker.retained) == set(DEVICES)


async def test_a_new_broker_connection_gets_every_notice_again(world: World) -> None:
    _, broker, clock = world
    sessions = iter([object(), object()])
    session = next(sessions)
    executor = RolloutExecutor(
        NoticeMaker(None, lambda _d: HOURS),
        lambda _d: HOURS,
        broker.publish,
        clock=clock,
        connection=lambda: session,
    )
    await executor.load()
    rollout_id = await start(executor, clock, waves=(percent(100),))
    await executor.tick()  # the first connection seen: everything is sent on it once more
    published = broker.published
    await executor.tick()
    assert broker.published == published  # the same connection: nothing new to send
    broker.retained.clear()  # as if the notices in flight when the link broke were lost
    session = next(sessions)
    await executor.tick()
    assert set(broker.retained) == set(executor.rollouts[rollout_id].devices)
