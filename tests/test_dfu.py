"""Firmware update over DFU 1.1: the pure planner, then whole updates against a virtual device."""

from __future__ import annotations

import pytest

from firmware_bridge.codecs.dfu import (
    BUSY_STATES,
    REQUEST_TYPE_IN,
    REQUEST_TYPE_OUT,
    DfuRequest,
    DfuState,
    DfuStatus,
    DfuStatusCode,
    DfuSuffix,
    build_dfu_file,
    decode_status,
)
from firmware_bridge.codecs.dfu_plan import (
    Verdict,
    after_block,
    after_manifest,
    plan_blocks,
    requests_to_idle,
)
from firmware_bridge.dfu import (
    ENUMERATION_ATTEMPTS,
    FirmwareUpdateError,
    UpdateStage,
    update_firmware,
)
from firmware_bridge.errors import (
    FrameError,
    NoAnswerError,
    PeripheralError,
    PeripheralGoneError,
    StalledError,
)
from firmware_bridge.simulated import Fault, SimulatedBackend
from firmware_bridge.simulated.dfu_device import (
    DFU_PRODUCT_ID,
    RUNTIME_PRODUCT_ID,
    Mode,
    VirtualDfuPeripheral,
    firmware_image,
)
from firmware_bridge.transport import UsbTransport, find_devices
from firmware_bridge.usb_ids import UsbId

RUNTIME = UsbId(0x1209, RUNTIME_PRODUCT_ID)
DFU_MODE = UsbId(0x1209, DFU_PRODUCT_ID)
OLD, NEW = 0x0100, 0x0200
NEW_IMAGE = firmware_image(NEW, bytes(range(256)) * 2)  # 519 bytes: 8 full blocks of 64, 1 short
ERRORS = [code for code in DfuStatusCode if code is not DfuStatusCode.OK]


class FakeClock:
    """The device's clock and the updater's sleep: sleeping moves time, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def dfu_file(
    image: bytes = NEW_IMAGE, vendor: int = 0x1209, product: int = RUNTIME_PRODUCT_ID
) -> bytes:
    return build_dfu_file(image, DfuSuffix(NEW, product, vendor))


def rig(**options: object) -> tuple[VirtualDfuPeripheral, SimulatedBackend, FakeClock]:
    clock = FakeClock()
    device = VirtualDfuPeripheral(clock=clock, **options)  # type: ignore[arg-type]
    return device, SimulatedBackend([device]), clock


def update(
    backend: SimulatedBackend,
    clock: FakeClock,
    image: bytes | None = None,
) -> None:
    update_firmware(
        backend,
        RUNTIME,
        dfu_file() if image is None else image,
        dfu_ids=[DFU_MODE],
        sleep=clock.sleep,
    )


def assert_runs_old_firmware(device: VirtualDfuPeripheral, backend: SimulatedBackend) -> None:
    assert device.mode is Mode.RUNTIME
    assert device.firmware.version == OLD
    assert device.staged == b""
    (found,) = find_devices(backend, [RUNTIME])
    assert found.bcdDevice == OLD


# --- the planner, without USB ------------------------------------------------------------------


def test_blocks_are_cut_at_the_transfer_size_and_numbered_from_zero() -> None:
    blocks = plan_blocks(bytes(range(10)), 4)
    assert [(b.number, b.data, b.done) for b in blocks] == [
        (0, bytes([0, 1, 2, 3]), 4),
        (1, bytes([4, 5, 6, 7]), 8),
        (2, bytes([8, 9]), 10),
    ]
    assert plan_blocks(b"", 64) == ()


def test_block_numbers_wrap_after_65535() -> None:
    blocks = plan_blocks(bytes(65538), 1)
    assert [b.number for b in blocks[65534:]] == [65534, 65535, 0, 1]


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        (DfuState.DFU_DNLOAD_IDLE, Verdict.DONE),
        (DfuState.DFU_DNBUSY, Verdict.WAIT),
        (DfuState.DFU_DNLOAD_SYNC, Verdict.WAIT),
        (DfuState.DFU_IDLE, Verdict.FAILED),
        (DfuState.DFU_ERROR, Verdict.FAILED),
    ],
)
def test_what_a_status_after_a_block_means(state: DfuState, verdict: Verdict) -> None:
    reaction = after_block(DfuStatus(DfuStatusCode.OK, 25, state))
    assert reaction.verdict is verdict
    assert reaction.wait_ms == (25 if verdict is Verdict.WAIT else 0)


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        (DfuState.DFU_IDLE, Verdict.DONE),
        (DfuState.DFU_MANIFEST_WAIT_RESET, Verdict.DONE),
        (DfuState.DFU_MANIFEST_SYNC, Verdict.WAIT),
        (DfuState.DFU_MANIFEST, Verdict.WAIT),
        (DfuState.DFU_DNLOAD_IDLE, Verdict.FAILED),
    ],
)
def test_what_a_status_during_manifestation_means(state: DfuState, verdict: Verdict) -> None:
    assert after_manifest(DfuStatus(DfuStatusCode.OK, 5, state)).verdict is verdict


@pytest.mark.parametrize("code", ERRORS)
def test_any_error_status_fails_whatever_the_state(code: DfuStatusCode) -> None:
    assert after_block(DfuStatus(code, 0, DfuState.DFU_DNLOAD_IDLE)).verdict is Verdict.FAILED
    assert after_manifest(DfuStatus(code, 0, DfuState.DFU_IDLE)).verdict is Verdict.FAILED


def test_the_way_back_to_dfu_idle_from_every_dfu_state() -> None:
    expected = {
        DfuState.DFU_ERROR: (DfuRequest.CLRSTATUS,),
        DfuState.DFU_DNLOAD_IDLE: (DfuRequest.ABORT,),
        DfuState.DFU_UPLOAD_IDLE: (DfuRequest.ABORT,),
        DfuState.DFU_IDLE: (),
        DfuState.DFU_MANIFEST_WAIT_RESET: (),
    }
    for state in DfuState:
        if state in {DfuState.APP_IDLE, DfuState.APP_DETACH}:
            continue
        wanted = None if state in BUSY_STATES else expected[state]
        assert requests_to_idle(state) == wanted, state


# --- whole updates -------------------------------------------------------------------------------


def test_an_update_installs_the_new_firmware_and_reports_progress() -> None:
    device, backend, clock = rig()
    progress: list[tuple[int, int]] = []
    result = update_firmware(
        backend,
        RUNTIME,
        dfu_file(),
        dfu_ids=DFU_MODE,
        progress=lambda done, total: progress.append((done, total)),
        sleep=clock.sleep,
        expect_version=NEW,
    )
    assert (result.old_version, result.new_version) == (OLD, NEW)
    assert (result.bytes_written, result.blocks) == (519, 9)
    assert progress == [(64 * n, 519) for n in range(1, 9)] + [(519, 519)]
    assert device.mode is Mode.RUNTIME
    assert device.firmware.image == NEW_IMAGE
    (found,) = find_devices(backend, [RUNTIME])
    assert found.bcdDevice == NEW
    # bwPollTimeout (20 ms) honoured once per block and once for manifestation.
    assert clock.sleeps == [0.02] * 10


def test_the_device_stalls_a_host_that_does_not_wait_the_poll_timeout() -> None:
    device, backend, _ = rig()
    with pytest.raises(FirmwareUpdateError) as failure:
        update_firmware(backend, RUNTIME, dfu_file(), dfu_ids=DFU_MODE, sleep=lambda _s: None)
    assert (failure.value.stage, failure.value.block) == (UpdateStage.DOWNLOAD, 0)
    assert failure.value.status is DfuStatusCode.ERR_STALLEDPKT
    assert_runs_old_firmware(device, backend)


@pytest.mark.parametrize(
    "options",
    [
        {"will_detach": True},
        {"manifestation_tolerant": False},
        {"manifestation_tolerant": False, "silent_in_manifest": True},
        {"poll_timeout_ms": 0, "transfer_size": 1024},
    ],
    ids=[
        "device-detaches-itself",
        "waits-for-reset-after-manifest",
        "falls-silent-in-manifest",
        "never-busy-one-block",
    ],
)
def test_updates_succeed_with_each_kind_of_device(options: dict[str, object]) -> None:
    device, backend, clock = rig(**options)
    update(backend, clock)
    assert (device.mode, device.firmware.version) == (Mode.RUNTIME, NEW)
    runtime_requests = [r for m, r in device.requests if m is Mode.RUNTIME]
    assert runtime_requests == [DfuRequest.DETACH]
    # The host resets after DFU_DETACH (§5.1) unless bitWillDetach, and after manifestation.
    assert device.bus_resets == (1 if options.get("will_detach") else 2)


class SameIdsPeripheral(VirtualDfuPeripheral):
    """A device whose boot loader keeps the application's ids; only the interface tells."""

    dfu_product_id = RUNTIME_PRODUCT_ID


def test_a_device_keeping_its_ids_in_dfu_mode_is_told_apart_by_its_interface() -> None:
    clock = FakeClock()
    device = SameIdsPeripheral(clock=clock)
    backend = SimulatedBackend([device])
    result = update_firmware(backend, RUNTIME, dfu_file(), sleep=clock.sleep, expect_version=NEW)
    assert result.new_version == NEW
    assert [m for m, r in device.requests if r is DfuRequest.DNLOAD] == [Mode.DFU] * 10


def test_a_device_that_arrives_in_dfu_error_is_cleared_first() -> None:
    device, backend, clock = rig()
    device.enter_dfu_in_error(DfuStatusCode.ERR_POR)
    update(backend, clock)
    dfu_requests = [r for m, r in device.requests if m is Mode.DFU]
    assert dfu_requests[:3] == [DfuRequest.GETSTATUS, DfuRequest.CLRSTATUS, DfuRequest.DNLOAD]
    assert device.firmware.version == NEW


@pytest.mark.parametrize("code", ERRORS)
def test_an_error_at_a_block_leaves_the_old_firmware_running(code: DfuStatusCode) -> None:
    device, backend, clock = rig()
    device.fail_at(block=3, status=code)
    with pytest.raises(FirmwareUpdateError, match="download block 3") as failure:
        update(backend, clock)
    assert (failure.value.stage, failure.value.block, failure.value.status) == (
        UpdateStage.DOWNLOAD,
        3,
        code,
    )
    assert code.name in str(failure.value)
    assert (Mode.DFU, DfuRequest.CLRSTATUS) in device.requests
    assert_runs_old_firmware(device, backend)


@pytest.mark.parametrize("code", ERRORS)
def test_an_error_in_manifestation_leaves_the_old_firmware_running(code: DfuStatusCode) -> None:
    device, backend, clock = rig(manifestation_tolerant=False)
    device.fail_manifest(code)
    with pytest.raises(FirmwareUpdateError, match="at manifest") as failure:
        update(backend, clock)
    assert (failure.value.stage, failure.value.status) == (UpdateStage.MANIFEST, code)
    assert_runs_old_firmware(device, backend)


def test_a_device_missing_data_refuses_the_end_of_the_download() -> None:
    device, backend, clock = rig()
    device.fail_end_of_download(DfuStatusCode.ERR_NOTDONE)
    with pytest.raises(FirmwareUpdateError) as failure:
        update(backend, clock)
    assert (failure.value.stage, failure.value.status) == (
        UpdateStage.MANIFEST,
        DfuStatusCode.ERR_NOTDONE,
    )
    assert isinstance(failure.value.__cause__, StalledError)
    assert_runs_old_firmware(device, backend)


def test_a_stalled_block_is_reported_with_the_devices_status() -> None:
    device, backend, clock = rig()
    device.stall_block(5)
    with pytest.raises(FirmwareUpdateError) as failure:
        update(backend, clock)
    assert (failure.value.block, failure.value.status) == (5, DfuStatusCode.ERR_STALLEDPKT)
    assert_runs_old_firmware(device, backend)


@pytest.mark.parametrize(
    ("image", "code"),
    [
        (b"not an image of this device", DfuStatusCode.ERR_FILE),
        (firmware_image(NEW, b"body", product_id=0x7D99), DfuStatusCode.ERR_TARGET),
    ],
)
def test_the_device_checks_the_image_itself(image: bytes, code: DfuStatusCode) -> None:
    device, backend, clock = rig()
    with pytest.raises(FirmwareUpdateError) as failure:
        update(backend, clock, dfu_file(image))
    assert (failure.value.stage, failure.value.status) == (UpdateStage.MANIFEST, code)
    assert_runs_old_firmware(device, backend)


def test_a_device_that_never_comes_back_in_dfu_mode_times_out_untouched() -> None:
    device, backend, clock = rig()
    device.ignore_detach()
    with pytest.raises(FirmwareUpdateError, match="did not come back in DFU mode") as failure:
        update(backend, clock)
    assert failure.value.stage is UpdateStage.DETACH
    assert len(clock.sleeps) == ENUMERATION_ATTEMPTS - 1
    assert not [r for m, r in device.requests if m is Mode.DFU]
    assert device.state is DfuState.APP_IDLE
    assert_runs_old_firmware(device, backend)


def test_a_stalled_detach_leaves_the_device_alone() -> None:
    device, backend, clock = rig()
    device.inject(Fault.STALL, times=1)
    with pytest.raises(FirmwareUpdateError, match="at detach"):
        update(backend, clock)
    assert device.requests == []
    assert_runs_old_firmware(device, backend)


def test_a_device_unplugged_mid_download_boots_its_old_firmware_when_replugged() -> None:
    device, backend, clock = rig()

    def unplug_at_block_2(block: int) -> None:
        if block == 2:
            backend.unplug(device)

    device.on_block = unplug_at_block_2
    with pytest.raises(FirmwareUpdateError, match="download block 2") as failure:
        update(backend, clock)
    assert failure.value.stage is UpdateStage.DOWNLOAD
    assert isinstance(failure.value.__cause__, PeripheralGoneError)
    assert find_devices(backend, [RUNTIME, DFU_MODE]) == []
    device.on_block = None
    backend.plug(device)
    assert_runs_old_firmware(device, backend)


@pytest.mark.parametrize(
    ("fault", "cause"), [(Fault.TIMEOUT, NoAnswerError), (Fault.GARBAGE, FrameError)]
)
def test_a_status_answer_lost_or_garbled_mid_download_is_recovered_from(
    fault: Fault, cause: type[PeripheralError]
) -> None:
    device, backend, clock = rig()

    def spoil_the_status_of_block_4(block: int) -> None:
        if block == 4:
            device.inject(fault, times=1)

    device.on_block = spoil_the_status_of_block_4
    with pytest.raises(FirmwareUpdateError, match="download block 4") as failure:
        update(backend, clock)
    assert isinstance(failure.value.__cause__, cause)
    assert failure.value.status is None  # the device itself never reported an error
    assert (Mode.DFU, DfuRequest.ABORT) in device.requests
    assert_runs_old_firmware(device, backend)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (dfu_file()[:-1] + b"\x00", "CRC"),
        (dfu_file()[:10] + b"X" + dfu_file()[11:], "CRC"),
        (NEW_IMAGE, "no DFU suffix"),
        (dfu_file(vendor=0x0483), "the file is for 0483:7d10"),
        (dfu_file(product=0x1234), "the file is for 1209:1234"),
    ],
    ids=["crc-field", "tampered-payload", "no-suffix", "other-vendor", "other-product"],
)
def test_bad_or_foreign_files_are_refused_before_the_device_is_touched(
    image: bytes, words: str
) -> None:
    device, backend, clock = rig()
    with pytest.raises(FirmwareUpdateError, match=words) as failure:
        update(backend, clock, image)
    assert failure.value.stage is UpdateStage.FILE
    assert device.requests == []
    assert_runs_old_firmware(device, backend)


@pytest.mark.parametrize(
    ("vendor", "product"), [(0xFFFF, 0xFFFF), (0x1209, 0xFFFF), (0x1209, DFU_PRODUCT_ID)]
)
def test_files_for_any_device_or_for_its_dfu_mode_ids_are_accepted(
    vendor: int, product: int
) -> None:
    device, backend, clock = rig()
    update(backend, clock, dfu_file(vendor=vendor, product=product))
    assert device.firmware.version == NEW


def test_a_progress_callback_that_raises_still_leaves_the_old_firmware_running() -> None:
    device, backend, clock = rig()

    class CancelledError(Exception):
        pass

    def cancel_after_three_blocks(done: int, _total: int) -> None:
        if done >= 192:
            raise CancelledError

    with pytest.raises(CancelledError):
        update_firmware(
            backend,
            RUNTIME,
            dfu_file(),
            dfu_ids=DFU_MODE,
            progress=cancel_after_three_blocks,
            sleep=clock.sleep,
        )
    assert (Mode.DFU, DfuRequest.ABORT) in device.requests
    assert_runs_old_firmware(device, backend)


def test_a_release_other_than_expected_fails_verification() -> None:
    device, backend, clock = rig()
    with pytest.raises(FirmwareUpdateError, match="runs release 0x0200, not 0x0300") as failure:
        update_firmware(
            backend, RUNTIME, dfu_file(), dfu_ids=DFU_MODE, sleep=clock.sleep, expect_version=0x0300
        )
    assert failure.value.stage is UpdateStage.VERIFY
    # Manifestation succeeded, so the device runs what was flashed; nothing is left to undo.
    assert (device.mode, device.firmware.version) == (Mode.RUNTIME, NEW)


def test_no_device_or_two_devices_are_refused_at_find() -> None:
    backend = SimulatedBackend([])
    with pytest.raises(FirmwareUpdateError, match="0 devices") as failure:
        update_firmware(backend, RUNTIME, dfu_file())
    assert failure.value.stage is UpdateStage.FIND
    first, second = VirtualDfuPeripheral(serial="A"), VirtualDfuPeripheral(serial="B")
    with pytest.raises(FirmwareUpdateError, match="2 devices"):
        update_firmware(SimulatedBackend([first, second]), RUNTIME, dfu_file())
    assert first.requests == second.requests == []


# --- the virtual device's state diagram, request by request ----------------------------------


def _in_dfu_mode(backend: SimulatedBackend, device: VirtualDfuPeripheral) -> UsbTransport:
    runtime = UsbTransport.open(find_devices(backend, [RUNTIME])[0], 1)
    runtime.control_out(REQUEST_TYPE_OUT, DfuRequest.DETACH, 1000, 1)
    with pytest.raises(PeripheralGoneError):
        runtime.reset()
    runtime.close()
    assert device.state is DfuState.DFU_IDLE
    return UsbTransport.open(find_devices(backend, [DFU_MODE])[0], 0)


def _status(transport: UsbTransport) -> DfuStatus:
    return decode_status(transport.control_in(REQUEST_TYPE_IN, DfuRequest.GETSTATUS, 0, 0, 6))


@pytest.mark.parametrize(
    ("request_code", "value", "data"),
    [
        (DfuRequest.DNLOAD, 0, b""),
        (DfuRequest.DNLOAD, 1, b"block one first"),
        (DfuRequest.DNLOAD, 0, bytes(65)),
        (DfuRequest.CLRSTATUS, 0, b""),
        (DfuRequest.DETACH, 0, b""),
    ],
    ids=[
        "zero-length-in-idle",
        "wrong-block-number",
        "over-transfer-size",
        "clear-no-error",
        "detach",
    ],
)
def test_requests_the_diagram_forbids_stall_into_dfu_error(
    request_code: DfuRequest, value: int, data: bytes
) -> None:
    device, backend, _ = rig()
    transport = _in_dfu_mode(backend, device)
    with pytest.raises(StalledError):
        transport.control_out(REQUEST_TYPE_OUT, request_code, value, 0, data)
    assert _status(transport) == DfuStatus(DfuStatusCode.ERR_STALLEDPKT, 0, DfuState.DFU_ERROR)
    transport.control_out(REQUEST_TYPE_OUT, DfuRequest.CLRSTATUS, 0, 0)
    assert _status(transport).state is DfuState.DFU_IDLE


def test_the_device_keeps_its_old_firmware_until_manifestation() -> None:
    device, backend, clock = rig()
    transport = _in_dfu_mode(backend, device)
    transport.control_out(REQUEST_TYPE_OUT, DfuRequest.DNLOAD, 0, 0, NEW_IMAGE[:64])
    assert _status(transport) == DfuStatus(DfuStatusCode.OK, 20, DfuState.DFU_DNBUSY)
    clock.sleep(0.02)
    assert _status(transport).state is DfuState.DFU_DNLOAD_IDLE
    assert device.staged == NEW_IMAGE[:64]
    assert device.firmware.version == OLD
    transport.control_out(REQUEST_TYPE_OUT, DfuRequest.ABORT, 0, 0)
    assert (_status(transport).state, device.staged) == (DfuState.DFU_IDLE, b"")
