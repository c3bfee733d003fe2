"""Peripheral firmware through the agent's package manager, flashed over DFU on the simulated bus.

A terminal here has a document camera whose firmware updates over DFU 1.1 (the virtual DFU
peripheral, watched presence-only) and a review pad without DFU. Packages are real signed
firmware packages served over HTTP (test_agent_packages' server and ``Terminal``); the flasher,
the bridge, the monitor and ``update_firmware`` are the agent's own, against virtual devices.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.agent.firmware_flash import DfuFlasher, expected_release
from edge.agent.package_plan import Blocker
from edge.agent.packages import PackageManager
from edge.agent.peripherals import PeripheralMonitor
from edge.agent.startup import build_agent
from edge.aio import cancel_and_wait
from edge.content.manifest import PackageKind as ManifestKind
from edge.protocol import (
    DeviceEvent,
    InstallWhen,
    PackageKind,
    PackagePhase,
    PackageTarget,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    SessionEnded,
    SessionStarted,
)
from firmware_bridge.bridge import UPDATING_FIRMWARE, PeripheralBridge
from firmware_bridge.catalog import slot
from firmware_bridge.codecs.dfu import (
    REQUEST_TYPE_OUT,
    WILDCARD_ID,
    DfuRequest,
    DfuStatusCode,
    DfuSuffix,
    build_dfu_file,
)
from firmware_bridge.dfu import FirmwareUpdateError, UpdateStage
from firmware_bridge.errors import PeripheralError
from firmware_bridge.simulated import Setup, SimulatedBackend, VirtualReviewPad
from firmware_bridge.simulated.dfu_device import (
    DFU_PRODUCT_ID,
    RUNTIME_PRODUCT_ID,
    Mode,
    VirtualDfuPeripheral,
    firmware_image,
)
from firmware_bridge.usb_ids import UsbId
from tests.test_agent_packages import (
    KEY,
    NAME,
    Terminal,
    eventually,
    make_package,
    notice,
    stays,
    target_for,
)
from tests.test_content_download import Behaviour, serving

VENDOR = 0x1209
RUNTIME = UsbId(VENDOR, RUNTIME_PRODUCT_ID)
OLD, NEW = 0x0100, 0x0200
CAMERA, PAD = "doccam0", "pad0"


def dfu_file(
    release: int = NEW, *, image_release: int | None = None, product: int = RUNTIME_PRODUCT_ID
) -> bytes:
    """A DFU file for the virtual peripheral: 10 blocks of 64 bytes, the last one short."""
    image = firmware_image(release if image_release is None else image_release, bytes(600))
    return build_dfu_file(image, DfuSuffix(release, product, VENDOR))


@dataclass
class Rig:
    """The terminal's bus, its two peripherals, the bridge, the monitor and the flasher."""

    camera: VirtualDfuPeripheral
    pad: VirtualReviewPad
    bus: SimulatedBackend
    bridge: PeripheralBridge
    monitor: PeripheralMonitor
    flasher: DfuFlasher
    events: list[DeviceEvent]

    async def poll(self) -> dict[str, PeripheralStatus]:
        """A poll as the agent's monitor makes it, in a worker thread."""

        async def record(event: DeviceEvent) -> None:
            self.events.append(event)

        return {s.name: s for s in await self.monitor.poll_once(record)}

    def flash(self, image: bytes, peripheral: str = CAMERA) -> None:
        self.flasher.flash(peripheral, image)


@pytest.fixture
def rig() -> Iterator[Rig]:
    camera = VirtualDfuPeripheral(version=OLD, poll_timeout_ms=1, serial="CAM-1")
    pad = VirtualReviewPad(serial="PAD-1")
    bus = SimulatedBackend([camera, pad])
    slots = [
        # The camera's own software drives it: termfleet only watches it, and updates it.
        slot(CAMERA, PeripheralKind.DOCUMENT_CAMERA, [RUNTIME], presence_only=True),
        slot(PAD, PeripheralKind.REVIEW_PAD),
    ]
    bridge = PeripheralBridge(bus, slots)
    monitor = PeripheralMonitor(bridge, lambda: datetime.now(UTC))
    yield Rig(camera, pad, bus, bridge, monitor, DfuFlasher(bridge), [])
    bridge.close()


def firmware_package(tmp_path: Path, image: bytes, version: int = 2) -> bytes:
    files = {"doccam.dfu": image, "release-notes.txt": b"better focus"}
    return make_package(tmp_path, files=files, version=version, kind=ManifestKind.FIRMWARE)


def firmware_target(url: str, body: bytes, version: int = 2, **fields: object) -> PackageTarget:
    base: dict[str, object] = {"kind": PackageKind.FIRMWARE, "peripheral": CAMERA}
    return target_for(url, body, version=version, **(base | fields))


def assert_in_service_on(rig: Rig, release: str, status: PeripheralStatus) -> None:
    assert (status.state, status.reason, status.firmware) == (PeripheralState.OK, "", release)
    assert rig.camera.mode is Mode.RUNTIME
    rig.bridge.use(CAMERA, lambda driver: driver.status())  # the slot's driver answers again


# --- through the package manager ------------------------------------------------------------


async def test_a_firmware_package_is_verified_flashed_and_the_next_poll_has_the_release(
    tmp_path: Path, rig: Rig
) -> None:
    before = await rig.poll()  # the agent polls once before the packages start
    assert before[CAMERA].firmware == "1.00"
    assert rig.flasher.peripherals() == frozenset({CAMERA})
    body = firmware_package(tmp_path, dfu_file())
    terminal = Terminal(tmp_path / "t", flasher=rig.flasher)
    with serving(Behaviour(body=body)) as url:
        async with terminal.running():
            terminal.manager.notice(notice(firmware_target(url, body, install=InstallWhen.NOW)))
            state = await terminal.until(PackagePhase.INSTALLED)

    assert (state.installed, state.reason) == (2, "")
    assert rig.camera.firmware.version == NEW
    after = await rig.poll()
    assert_in_service_on(rig, "2.00", after[CAMERA])
    assert after[PAD].state is PeripheralState.OK
    assert rig.events == [], "an update between two polls changes no state"


async def test_a_dfu_error_mid_transfer_fails_with_its_reason_on_the_old_firmware(
    tmp_path: Path, rig: Rig
) -> None:
    await rig.poll()
    rig.camera.fail_at(block=3, status=DfuStatusCode.ERR_WRITE)
    body = firmware_package(tmp_path, dfu_file())
    terminal = Terminal(tmp_path / "t", flasher=rig.flasher)
    with serving(Behaviour(body=body)) as url:
        async with terminal.running():
            terminal.manager.notice(notice(firmware_target(url, body, install=InstallWhen.NOW)))
            state = await terminal.until(PackagePhase.FAILED)

    assert state.reason == "firmware_update_failed"
    assert "download block 3" in state.detail
    assert "ERR_WRITE" in state.detail
    assert state.installed is None, "a firmware that did not flash is not installed"
    assert rig.camera.firmware.version == OLD
    assert rig.camera.staged == b""
    assert_in_service_on(rig, "1.00", (await rig.poll())[CAMERA])


@pytest.mark.parametrize(
    ("peripheral", "why"),
    [("printer0", "the terminal has no such peripheral"), (PAD, "the pad has no DFU interface")],
)
async def test_firmware_for_a_peripheral_it_cannot_flash_is_incompatible(
    tmp_path: Path, rig: Rig, peripheral: str, why: str
) -> None:
    await rig.poll()
    terminal = Terminal(tmp_path / "t", flasher=rig.flasher)
    orders = PackageTarget(
        name=NAME,
        version=2,
        kind=PackageKind.FIRMWARE,
        peripheral=peripheral,
        install=InstallWhen.NOW,
    )
    async with terminal.running():
        terminal.manager.notice(notice(orders))
        state = await terminal.until(PackagePhase.INCOMPATIBLE)

    assert state.reason == "no_such_peripheral", why
    assert rig.camera.requests == []


async def test_never_flashed_during_a_citizen_session(tmp_path: Path, rig: Rig) -> None:
    await rig.poll()
    body = firmware_package(tmp_path, dfu_file())
    terminal = Terminal(tmp_path / "t", flasher=rig.flasher)
    with serving(Behaviour(body=body)) as url:
        async with terminal.running():
            terminal.manager.observe(SessionStarted(session_id="s-1"))
            terminal.manager.notice(notice(firmware_target(url, body, install=InstallWhen.NOW)))
            await terminal.until(PackagePhase.STAGED, detail=Blocker.IN_SESSION.value)
            await stays(lambda: rig.camera.requests == [], 0.5)

            terminal.manager.observe(SessionEnded(session_id="s-1", duration_s=60))
            await terminal.until(PackagePhase.INSTALLED)

    assert rig.camera.firmware.version == NEW


# --- the flasher and the bridge --------------------------------------------------------------


async def test_polls_during_an_update_go_on_and_report_it(rig: Rig) -> None:
    await rig.poll()
    seen: dict[str, PeripheralStatus] = {}
    refused: list[str] = []

    def meanwhile(block: int) -> None:  # in the flashing thread, as the device takes a block
        if block != 2:
            return
        # The monitor's poll runs in a thread of its own; it must not wait for the update.
        poller = threading.Thread(
            target=lambda: seen.update({s.name: s for s in rig.bridge.poll()})
        )
        poller.start()
        poller.join(timeout=5)
        assert not poller.is_alive(), "the poll waited for the update"
        try:
            rig.bridge.use(CAMERA, lambda driver: driver.status())
        except PeripheralError as exc:
            refused.append(exc.reason)

    rig.camera.on_block = meanwhile
    await asyncio.to_thread(rig.flash, dfu_file())

    assert (seen[CAMERA].state, seen[CAMERA].reason) == (
        PeripheralState.DEGRADED,
        UPDATING_FIRMWARE,
    )
    assert seen[PAD].state is PeripheralState.OK
    assert refused == [UPDATING_FIRMWARE]
    assert_in_service_on(rig, "2.00", (await rig.poll())[CAMERA])


def test_only_devices_with_a_dfu_interface_are_flashable_and_stay_so_while_away(
    rig: Rig,
) -> None:
    assert rig.flasher.peripherals() == frozenset(), "nothing is known before the first poll"
    rig.bridge.poll()
    assert rig.flasher.peripherals() == frozenset({CAMERA})
    rig.bus.unplug(rig.camera)
    rig.bridge.poll()
    assert rig.flasher.peripherals() == frozenset({CAMERA})
    with pytest.raises(FirmwareUpdateError, match="not on the bus") as failure:
        rig.flash(dfu_file())
    assert (failure.value.stage, failure.value.reason) == (
        UpdateStage.FIND,
        "firmware_update_failed",
    )
    rig.bus.plug(rig.camera)
    assert rig.camera.requests == []
    rig.flash(dfu_file())
    assert rig.camera.firmware.version == NEW


@pytest.mark.parametrize(
    ("image", "stage", "words"),
    [
        (firmware_image(NEW, bytes(600)), UpdateStage.FILE, "suffix"),
        (dfu_file()[:-1] + bytes([dfu_file()[-1] ^ 0xFF]), UpdateStage.FILE, "CRC"),
        (dfu_file(product=0x7E99), UpdateStage.FILE, "the file is for 1209:7e99"),
    ],
)
def test_a_bad_file_is_refused_before_the_device_is_touched(
    rig: Rig, image: bytes, stage: UpdateStage, words: str
) -> None:
    rig.bridge.poll()
    with pytest.raises(FirmwareUpdateError, match=words) as failure:
        rig.flash(image)
    assert failure.value.stage is stage
    assert rig.camera.requests == []
    statuses = {s.name: s for s in rig.bridge.poll()}
    assert_in_service_on(rig, "1.00", statuses[CAMERA])


def test_a_device_that_boots_another_release_than_the_file_names_fails_at_verify(
    rig: Rig,
) -> None:
    rig.bridge.poll()
    with pytest.raises(FirmwareUpdateError, match="runs release 0x0150, not 0x0200") as failure:
        rig.flash(dfu_file(NEW, image_release=0x0150))
    assert failure.value.stage is UpdateStage.VERIFY
    statuses = {s.name: s for s in rig.bridge.poll()}
    assert statuses[CAMERA].firmware == "1.50", "the slot opened what runs now"


def test_a_wildcard_release_is_flashed_without_the_check(rig: Rig) -> None:
    rig.bridge.poll()
    image = build_dfu_file(
        firmware_image(0x0150, bytes(100)), DfuSuffix(WILDCARD_ID, RUNTIME_PRODUCT_ID, VENDOR)
    )
    assert expected_release(image) is None
    rig.flash(image)
    assert rig.camera.firmware.version == 0x0150


def test_a_device_already_in_dfu_mode_on_the_bus_is_not_taken_for_ours(rig: Rig) -> None:
    rig.bridge.poll()
    stranger = VirtualDfuPeripheral(version=0x0300, serial="OTHER")
    rig.bus.plug(stranger)
    # Another program detached it and left it in its boot loader, enumerated as 1209:7d11.
    detach = Setup(REQUEST_TYPE_OUT, DfuRequest.DETACH, 1000, stranger.runtime_dfu_interface, 0)
    stranger.handle_control_out(detach, b"")
    stranger.reset()
    assert stranger.mode is Mode.DFU
    stranger.requests.clear()

    with pytest.raises(FirmwareUpdateError, match=f"{VENDOR:04x}:{DFU_PRODUCT_ID:04x}") as failure:
        rig.flash(dfu_file())

    assert failure.value.stage is UpdateStage.FIND
    assert rig.camera.requests == []
    assert stranger.requests == []
    assert_in_service_on(rig, "1.00", {s.name: s for s in rig.bridge.poll()}[CAMERA])


def test_a_peripheral_this_terminal_does_not_have_is_named(rig: Rig) -> None:
    with pytest.raises(FirmwareUpdateError, match="no peripheral named 'printer0'") as failure:
        rig.flash(dfu_file(), peripheral="printer0")
    assert failure.value.stage is UpdateStage.FIND


def test_a_second_update_waits_for_the_first_instead_of_failing(rig: Rig) -> None:
    rig.bridge.poll()
    inside, go_on = threading.Event(), threading.Event()
    releases: list[int] = []

    def hold_first_block(block: int) -> None:
        if block == 0 and not inside.is_set():
            inside.set()
            go_on.wait(5)

    def first() -> None:
        rig.flash(dfu_file())
        releases.append(rig.camera.firmware.version)

    rig.camera.on_block = hold_first_block
    flashing = threading.Thread(target=first)
    flashing.start()
    assert inside.wait(5)
    # Without the turn-taking the second would find the slot lent and fail at once.
    second = threading.Thread(target=lambda: rig.flash(dfu_file(0x0300)))
    second.start()
    time.sleep(0.2)
    assert second.is_alive(), "the second update waits its turn"
    go_on.set()
    flashing.join(5)
    second.join(5)
    assert not flashing.is_alive()
    assert not second.is_alive()
    assert releases == [NEW]
    assert rig.camera.firmware.version == 0x0300


# --- start-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peripherals", "reason"),
    [("none", "no_peripherals"), ("simulated", "no_such_peripheral")],
)
async def test_start_up_gives_the_manager_a_flasher_when_it_drives_peripherals(
    tmp_path: Path, peripherals: str, reason: str
) -> None:
    public = base64.b64encode(bytes(KEY.verify_key)).decode()
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "kiosk-1"\nkind = "kiosk"\nstate_dir = "state"\n'
        f'peripherals = "{peripherals}"\ncontent_keys = ["{public}"]\n'
    )
    agent = build_agent(config)
    try:
        manager = agent.packages
        assert manager is not None
        if agent.peripherals is not None:
            await agent.peripherals.poll_once(_ignore)
        # The kiosk's simulated printer is on the bus, but no simulated printer speaks DFU.
        orders = PackageTarget(
            name=NAME, version=1, kind=PackageKind.FIRMWARE, peripheral="printer0"
        )
        task = asyncio.create_task(manager.run())
        try:
            manager.notice(notice(orders))
            await eventually(lambda: _phase(manager) is PackagePhase.INCOMPATIBLE)
        finally:
            await cancel_and_wait([task])
        (state,) = manager.report().packages
        assert state.reason == reason
    finally:
        agent.close()


async def _ignore(_event: DeviceEvent) -> None:
    return None


def _phase(manager: PackageManager) -> PackagePhase | None:
    packages = manager.report().packages
    return packages[0].phase if packages else None


async def test_a_rollback_flashes_the_kept_firmware_again(tmp_path: Path, rig: Rig) -> None:
    await rig.poll()
    first, second = dfu_file(OLD), dfu_file(NEW)
    terminal = Terminal(tmp_path / "t", flasher=rig.flasher)
    bodies = {1: firmware_package(tmp_path, first, version=1),
              2: firmware_package(tmp_path, second, version=2)}  # fmt: skip
    async with terminal.running():
        for version in (1, 2):
            with serving(Behaviour(body=bodies[version])) as url:
                target = firmware_target(url, bodies[version], version=version,
                                         install=InstallWhen.NOW)  # fmt: skip
                terminal.manager.notice(notice(target))
                await terminal.until(PackagePhase.INSTALLED, target=version)
        assert rig.camera.firmware.version == NEW
        # The rollback: version 1 again, older, from what the store kept; no download at all.
        back = firmware_target("http://127.0.0.1:9/gone", bodies[1], version=1,
                               allow_older=True, install=InstallWhen.NOW)  # fmt: skip
        terminal.manager.notice(notice(back))
        state = await terminal.until(PackagePhase.INSTALLED, target=1)

    assert (state.installed, state.previous) == (1, 2)
    assert rig.camera.firmware.version == OLD
    assert_in_service_on(rig, "1.00", (await rig.poll())[CAMERA])
