"""Provisioning's pure rules: who may enroll, under which id, how often; commissioning's checks.

Milliseconds: no broker, no database. The database half (tokens, enrollments, sign-off) is in
``test_claim_store.py``; the whole path on a real broker in ``test_provisioning.py``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import mqtt
from edge.agent.commissioning import (
    NO_PERIPHERALS,
    REPORTED_MARK,
    SelfTests,
    check_name,
    no_peripherals,
    result_of,
)
from edge.protocol import (
    Channel,
    Command,
    CommandName,
    CommandResult,
    CommandStatus,
    DeviceKind,
    Payload,
    PeripheralKind,
    decode,
    encode,
)
from edge.protocol.commands import CHECK_PASSED, SELF_TEST_AFTER_ENROLLMENT
from edge.protocol.common import ID_PATTERN
from provisioning import rate_limit
from provisioning.claims import DeviceView, Refusal, TokenView, device_id_for, refusal
from provisioning.dynsec import SERVICE_PREFIX
from provisioning.rate_limit import ClaimLimits

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LATER = NOW + timedelta(days=1)
GOOD_TOKEN = TokenView(uses=0, max_uses=1, expires_at=LATER, revoked=False)
ENROLLED = DeviceView("kiosk-sn1", "enrolled", broker_generation=1, reenroll_until=None)
ANY_ID = re.compile(rf"{ID_PATTERN}\Z")
KINDS = ["", *(kind.value for kind in DeviceKind)]


def judged(
    token: TokenView | None, device: DeviceView | None = None, *, serial: str = "SN1"
) -> Refusal | None:
    kind = "kiosk"
    return refusal(token, serial=serial, kind=kind, device=device, now=NOW)


# --- refusal: each reason with the least input that causes it -------------------------------


LEAST_CAUSES = [
    (None, None, "SN1", Refusal.UNKNOWN),
    (replace(GOOD_TOKEN, revoked=True), None, "SN1", Refusal.UNKNOWN),
    (replace(GOOD_TOKEN, expires_at=NOW), None, "SN1", Refusal.EXPIRED),
    (replace(GOOD_TOKEN, uses=1), None, "SN1", Refusal.USED),
    (GOOD_TOKEN, None, "", Refusal.INVALID),
    (GOOD_TOKEN, None, "S" * 65, Refusal.INVALID),
    (replace(GOOD_TOKEN, serial="SN2"), None, "SN1", Refusal.WRONG_SERIAL),
    (replace(GOOD_TOKEN, kind="review_pad"), None, "SN1", Refusal.WRONG_KIND),
    (GOOD_TOKEN, replace(ENROLLED, lifecycle="retired"), "SN1", Refusal.RETIRED),
    (GOOD_TOKEN, ENROLLED, "SN1", Refusal.ALREADY_ENROLLED),
]


@pytest.mark.parametrize(
    ("token", "device", "serial", "expected"),
    LEAST_CAUSES,
    ids=[f"{row[-1]}-{n}" for n, row in enumerate(LEAST_CAUSES)],
)
def test_each_refusal_and_the_least_that_causes_it(
    token: TokenView | None,
    device: DeviceView | None,
    serial: str,
    expected: Refusal,
) -> None:
    assert judged(token, device, serial=serial) is expected


def test_a_good_request_goes_on_and_limits_are_inclusive() -> None:
    assert judged(GOOD_TOKEN) is None
    assert judged(GOOD_TOKEN, serial="S" * 64) is None
    assert judged(replace(GOOD_TOKEN, expires_at=None, uses=4, max_uses=5)) is None
    assert judged(replace(GOOD_TOKEN, serial="SN1", kind="kiosk")) is None
    pre_registered = replace(ENROLLED, lifecycle="registered", broker_generation=0)
    assert judged(GOOD_TOKEN, pre_registered) is None


def test_the_service_refusals_are_the_only_ones_the_rules_never_give() -> None:
    # RATE_LIMITED and UNAVAILABLE are the claim service's: the limiter and the broker.
    reachable = {row[-1] for row in LEAST_CAUSES}
    assert set(Refusal) - reachable == {Refusal.RATE_LIMITED, Refusal.UNAVAILABLE}


def test_the_token_is_judged_first_and_in_order() -> None:
    """Mend one fault at a time of a request that has them all: each next reason shows."""
    token = TokenView(
        uses=1, max_uses=1, expires_at=NOW, revoked=True, kind="review_pad", serial="SN2"
    )
    device = replace(ENROLLED, lifecycle="retired")
    steps: list[tuple[dict[str, Any], Refusal]] = [
        ({}, Refusal.UNKNOWN),
        ({"revoked": False}, Refusal.EXPIRED),
        ({"expires_at": LATER}, Refusal.USED),
        ({"uses": 0}, Refusal.WRONG_SERIAL),
        ({"serial": ""}, Refusal.WRONG_KIND),
        ({"kind": ""}, Refusal.RETIRED),
    ]
    for changes, expected in steps:
        token = replace(token, **changes)
        assert judged(token, device, serial="SN1") is expected, changes
    assert judged(token, device, serial="") is Refusal.INVALID, "before any device reason"


@pytest.mark.parametrize("lifecycle", ["retired", "enrolled", "in_service"])
def test_a_stranger_with_a_wrong_code_learns_nothing_about_devices(lifecycle: str) -> None:
    device = replace(ENROLLED, lifecycle=lifecycle)
    assert judged(None, device) is Refusal.UNKNOWN
    assert judged(replace(GOOD_TOKEN, revoked=True), device) is Refusal.UNKNOWN


@pytest.mark.parametrize(
    ("reenroll_until", "expected"),
    [
        (None, Refusal.ALREADY_ENROLLED),
        (NOW - timedelta(seconds=1), Refusal.ALREADY_ENROLLED),
        (NOW, Refusal.ALREADY_ENROLLED),
        (NOW + timedelta(seconds=1), None),
    ],
)
def test_reenrollment_only_within_the_window_an_administrator_opened(
    reenroll_until: datetime | None, expected: Refusal | None
) -> None:
    assert judged(GOOD_TOKEN, replace(ENROLLED, reenroll_until=reenroll_until)) is expected


def test_an_open_reenrollment_window_does_not_bring_back_a_retired_terminal() -> None:
    retired = replace(ENROLLED, lifecycle="retired", reenroll_until=LATER)
    assert judged(GOOD_TOKEN, retired) is Refusal.RETIRED


# --- device_id_for -----------------------------------------------------------------------------


def test_an_id_reads_as_kind_and_serial() -> None:
    assert device_id_for("kiosk", "SN2024X0042") == "kiosk-sn2024x0042"
    assert device_id_for("review_pad", " 粤 A/01 ") == "review_pad-a-01"
    assert device_id_for("", "...") == "device-x"
    assert device_id_for("kiosk", "SN1", {"kiosk-sn1", "kiosk-sn1-2"}) == "kiosk-sn1-3"


def test_an_id_never_takes_the_services_prefix() -> None:
    assert device_id_for("termfleet", "ingest") == "d-termfleet-ingest"
    assert device_id_for(SERVICE_PREFIX.rstrip("-"), "x" * 80).startswith("d-")


@given(serial=st.text(max_size=100), kind=st.sampled_from(KINDS), extra=st.integers(0, 4))
def test_any_serial_gives_a_valid_stable_free_id(serial: str, kind: str, extra: int) -> None:
    taken: set[str] = set()
    for _ in range(extra + 1):
        device_id = device_id_for(kind, serial, taken)
        assert ANY_ID.match(device_id), device_id
        assert len(device_id) <= 64
        assert not device_id.startswith(SERVICE_PREFIX)
        assert device_id not in taken
        assert device_id_for(kind, serial, set(taken)) == device_id, "stable"
        taken.add(device_id)


@given(serial=st.text(min_size=60, max_size=100, alphabet="ab-"), n=st.integers(2, 12))
def test_a_long_serial_keeps_its_suffix_within_64_characters(serial: str, n: int) -> None:
    taken: set[str] = set()
    for _ in range(n):
        taken.add(device_id_for("station_pc", serial, taken))
    assert len(taken) == n
    assert all(len(device_id) <= 64 and ANY_ID.match(device_id) for device_id in taken)


# --- ClaimLimits -------------------------------------------------------------------------------


def allowed(limits: ClaimLimits, serial: str, now: float, attempts: int) -> int:
    return sum(limits.allow(serial, now) for _ in range(attempts))


def test_one_serial_gets_its_burst_then_one_attempt_per_interval() -> None:
    limits = ClaimLimits(per_serial=5, per_serial_every_s=60)
    assert allowed(limits, "SN1", 0, 10) == 5
    assert allowed(limits, "SN1", 59, 3) == 0
    assert allowed(limits, "SN1", 60, 3) == 1
    assert allowed(limits, "SN1", 10_000, 10) == 5, "refilled to the burst, never beyond"
    assert allowed(limits, "SN2", 10_000, 10) == 5, "another serial has its own bucket"


def test_every_terminal_together_gets_the_fleet_wide_limit() -> None:
    limits = ClaimLimits(per_serial=5, fleet_wide=3, fleet_wide_per_s=1)
    assert [limits.allow(f"SN{n}", 0) for n in range(5)] == [True, True, True, False, False]
    assert [limits.allow(f"SN{n}", 1) for n in range(5, 8)] == [True, False, False]


def test_a_refused_attempt_uses_nothing_up() -> None:
    limits = ClaimLimits(per_serial=1, per_serial_every_s=60, fleet_wide=2, fleet_wide_per_s=1e-6)
    assert allowed(limits, "busy", 0, 10) == 1
    assert allowed(limits, "busy", 30, 1) == 0
    assert allowed(limits, "busy", 60, 1) == 1, "refusals at 0 and 30 took none of its refill"
    assert allowed(limits, "other", 60, 1) == 0, "the fleet's two were used by the two allowed"

    fleet_bound = ClaimLimits(per_serial=1, per_serial_every_s=3600, fleet_wide=1)
    assert fleet_bound.allow("A", 0)
    assert not fleet_bound.allow("B", 0)
    assert fleet_bound.allow("B", 1), "B's own attempt was given back when the fleet refused"


@pytest.mark.parametrize("step_s", [0.0, 0.1, 1.0])
def test_memory_stays_bounded_whatever_the_serials(step_s: float) -> None:
    limits = ClaimLimits(fleet_wide=10**9)
    for n in range(50_000):
        limits.allow(f"SN{n}", n * step_s)
    assert len(limits._serials) <= rate_limit.MAX_KEYS  # noqa: SLF001 - its size is the point


def test_full_buckets_are_forgotten_before_a_busy_one() -> None:
    limits = ClaimLimits(per_serial=2, per_serial_every_s=1000, fleet_wide=10**9)
    assert allowed(limits, "hot", 0, 2) == 2
    for n in range(rate_limit.MAX_KEYS - 1):
        limits.allow(f"SN{n}", 0)
    # At 1000 s every other bucket is full again; "hot" has one of its two back.
    assert limits.allow("new", 1000)
    assert len(limits._serials) == 2  # noqa: SLF001 - "hot" and "new" are all that carry state
    assert allowed(limits, "hot", 1000, 3) == 1


# --- commissioning self-tests ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        (PeripheralKind.RECEIPT_PRINTER, "p0.test_print"),
        (PeripheralKind.ID_CARD_READER, "p0.card_read"),
        (PeripheralKind.REVIEW_PAD, "p0.keys"),
        (PeripheralKind.CAMERA, "p0.present"),
        (PeripheralKind.CITIZEN_CARD_READER, "p0.present"),
        (PeripheralKind.UNKNOWN, "p0.present"),
    ],
)
def test_each_peripheral_gets_the_check_of_its_kind(kind: PeripheralKind, check: str) -> None:
    assert check_name("p0", kind) == check


def test_no_peripherals_is_one_failing_check() -> None:
    ((name, outcome),) = no_peripherals().items()
    assert (name, outcome.startswith("fail: ")) == (NO_PERIPHERALS, True)
    assert result_of("c1", no_peripherals(), NOW).status is CommandStatus.FAILED


def test_a_self_test_succeeds_only_when_every_check_passes() -> None:
    passed = result_of("c1", {"pad0.keys": CHECK_PASSED, "p0.test_print": CHECK_PASSED}, NOW)
    assert (passed.status, passed.detail, passed.command_id, passed.at) == (
        CommandStatus.SUCCEEDED, "all checks passed", "c1", NOW,
    )  # fmt: skip
    failed = result_of("c1", {"pad0.keys": CHECK_PASSED, "p0.test_print": "fail: x"}, NOW)
    assert (failed.status, failed.detail) == (CommandStatus.FAILED, "1 of 2 checks failed")
    assert failed.checks == {"pad0.keys": CHECK_PASSED, "p0.test_print": "fail: x"}


class FakeConnection:
    """Records what would have been published; fails on demand, as a lost connection does."""

    def __init__(self, *, fail: bool = False) -> None:
        self.published: list[mqtt.Outgoing] = []
        self.fail = fail

    async def publish(self, message: mqtt.Outgoing) -> None:
        if self.fail:
            msg = "connection lost"
            raise mqtt.MqttError(msg)
        self.published.append(message)


def outgoing(channel: Channel, payload: Payload) -> mqtt.Outgoing:
    return mqtt.Outgoing(f"up/{channel.value}", encode(payload))


def self_tests(state_dir: Path, checks: dict[str, str] | None) -> SelfTests:
    return SelfTests(
        state_dir, lambda: checks if checks is not None else no_peripherals(), lambda: NOW
    )


PRINTED = {"p0.test_print": CHECK_PASSED}


async def test_a_self_test_command_is_answered_and_other_commands_are_not(
    tmp_path: Path,
) -> None:
    tests = self_tests(tmp_path, PRINTED)
    result = await tests.answer(Command(command_id="self-test:7", name=CommandName.SELF_TEST))
    assert result == result_of("self-test:7", PRINTED, NOW)
    for name in (CommandName.REBOOT, CommandName.PRINT_TEST_PAGE, CommandName.UNKNOWN):
        assert await tests.answer(Command(command_id="c2", name=name)) is None
    no_health = await self_tests(tmp_path, None).answer(
        Command(command_id="c3", name=CommandName.SELF_TEST)
    )
    assert no_health is not None
    assert set(no_health.checks) == {NO_PERIPHERALS}


async def test_the_self_test_after_enrolling_is_reported_once_ever(tmp_path: Path) -> None:
    first = FakeConnection()
    tests = self_tests(tmp_path, {"p0.test_print": "fail: cover_open"})
    await tests.after_connect(cast("mqtt.Connection", first), outgoing)
    (message,) = first.published
    assert message.topic == f"up/{Channel.RESULT.value}"
    result = decode(Channel.RESULT, message.payload)
    assert isinstance(result, CommandResult)
    assert (result.command_id, result.status) == (SELF_TEST_AFTER_ENROLLMENT, CommandStatus.FAILED)
    assert result.checks == {"p0.test_print": "fail: cover_open"}
    assert (tmp_path / REPORTED_MARK).exists()

    again = FakeConnection()
    await tests.after_connect(cast("mqtt.Connection", again), outgoing)
    restarted = self_tests(tmp_path, PRINTED)
    await restarted.after_connect(cast("mqtt.Connection", again), outgoing)
    assert again.published == [], "neither a reconnect nor a restarted agent reports it again"


async def test_checks_that_block_run_off_the_event_loop(tmp_path: Path) -> None:
    loop_thread = threading.get_ident()
    ran_in: list[int] = []

    def checks() -> dict[str, str]:
        ran_in.append(threading.get_ident())
        return {"printer0.test_print": CHECK_PASSED}

    tests = SelfTests(tmp_path, checks, lambda: NOW)
    result = await tests.answer(Command(command_id="self-test:8", name=CommandName.SELF_TEST))
    assert result is not None
    assert (result.status, result.checks) == (
        CommandStatus.SUCCEEDED,
        {"printer0.test_print": CHECK_PASSED},
    )
    assert ran_in
    assert ran_in[0] != loop_thread


async def test_a_report_that_was_not_published_is_tried_at_the_next_connection(
    tmp_path: Path,
) -> None:
    tests = self_tests(tmp_path, PRINTED)
    with pytest.raises(mqtt.MqttError):
        await tests.after_connect(cast("mqtt.Connection", FakeConnection(fail=True)), outgoing)
    assert not (tmp_path / REPORTED_MARK).exists()
    working = FakeConnection()
    await tests.after_connect(cast("mqtt.Connection", working), outgoing)
    assert len(working.published) == 1
