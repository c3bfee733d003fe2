"""The rollout planner: waves, spec refusals, each planning rule, wave verdicts, the scenario."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.rollouts import (
    DEFAULT_WAVES,
    DeviceProgress,
    DeviceStep,
    InstallPolicy,
    PauseReason,
    RolloutError,
    RolloutPhase,
    RolloutSpec,
    RolloutSpecError,
    RolloutState,
    apply,
    install_outcome,
    move,
    percent,
    plan,
    split_waves,
    wave_order,
    wave_sizes,
)
from control_plane.rollouts.steps import (
    AdvanceWave,
    CompleteRollout,
    Install,
    MarkIncompatible,
    MarkSkipped,
    MarkTimedOut,
    MarkWaiting,
    Notify,
    PauseRollout,
    Plan,
)
from control_plane.rollouts.verdicts import Verdict, judge

T0 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
TIMEOUT = timedelta(hours=2)
S = DeviceStep


def ids(count: int) -> tuple[str, ...]:
    return tuple(f"term-{number:02d}" for number in range(count))


def spec(count: int = 1, **changes: Any) -> RolloutSpec:  # noqa: ANN401 - RolloutSpec fields
    base = RolloutSpec("r-1", "v2", ids(count), previous_version="v1", device_timeout=TIMEOUT)
    return replace(base, **changes)


def queued(**changes: Any) -> DeviceProgress:  # noqa: ANN401 - DeviceProgress fields
    return replace(DeviceProgress(S.QUEUED, T0, installed_version="v1"), **changes)


def site_closed(_device: str, _now: datetime) -> bool:
    return True


def site_open(_device: str, _now: datetime) -> bool:
    return False


def plan_one(
    progress: DeviceProgress,
    *,
    windows: Callable[[str, datetime], bool] = site_closed,
    now: datetime = T0,
    **changes: Any,  # noqa: ANN401 - RolloutSpec fields
) -> Plan:
    rollout = RolloutState.start(spec(**changes))
    return plan(rollout, {"term-00": progress}, now, windows)


# -- waves -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fleet", "shares", "sizes"),
    [
        (50, DEFAULT_WAVES, (1, 5, 25, 50)),  # 1 % of 50 is half a device: ceil gives 1
        (1000, DEFAULT_WAVES, (10, 100, 500, 1000)),
        (10, DEFAULT_WAVES, (1, 2, 5, 10)),  # 10 % of 10 is the canary's 1 again: one more
        (3, DEFAULT_WAVES, (1, 2, 3)),  # more waves than devices: the empty ones merge
        (1, DEFAULT_WAVES, (1,)),
        (50, (percent(10), percent(100)), (5, 50)),  # exact: 10 % of 50 is 5, never 6
        (300, (percent("0.5"), percent(100)), (2, 300)),
    ],
)
def test_wave_sizes(fleet: int, shares: tuple[Fraction, ...], sizes: tuple[int, ...]) -> None:
    assert wave_sizes(shares, fleet) == sizes


@given(
    fleet=st.integers(1, 400),
    cuts=st.lists(st.integers(1, 999), unique=True, max_size=5).map(sorted),
)
def test_waves_partition_the_fleet_each_adding_a_device(fleet: int, cuts: list[int]) -> None:
    shares = (*(Fraction(cut, 1000) for cut in cuts), Fraction(1))
    waves = split_waves("r-1", ids(fleet), shares)
    members = [device for wave in waves for device in wave]
    assert sorted(members) == sorted(ids(fleet)), "each device in exactly one wave"
    assert all(waves), "every wave adds at least one device"
    # Waves merge only at the end, when the fleet has run out; the ones kept line up with shares.
    reached = 0
    for wave, share in zip(waves, shares, strict=False):
        wanted = math.ceil(share * fleet)
        assert min(fleet, wanted) <= reached + len(wave) <= max(wanted, reached + 1)
        reached += len(wave)


def test_wave_order_is_reproducible_spread_and_independent_of_input_order() -> None:
    fleet = ids(100)
    order = wave_order("r-1", fleet)
    assert wave_order("r-1", tuple(reversed(fleet))) == order
    assert sorted(order) == list(fleet)
    assert wave_order("r-2", fleet) != order, "another rollout picks another canary"
    assert order[:10] != fleet[:10], "the canary is not simply the first ids"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"waves": ()}, "no_waves"),
        ({"waves": (percent(10), percent(10), percent(100))}, "waves_not_increasing"),
        ({"waves": (percent(50), percent(10), percent(100))}, "waves_not_increasing"),
        ({"waves": (percent(0), percent(100))}, "waves_not_increasing"),
        ({"waves": (percent(10), percent(90))}, "last_wave_not_whole"),
        ({"waves": (percent(10), percent(150))}, "last_wave_not_whole"),
        ({"device_ids": ()}, "no_devices"),
        ({"device_ids": ("a", "b", "a")}, "duplicate_device"),
        ({"target_version": ""}, "missing_field"),
        ({"previous_version": "v2"}, "previous_is_target"),
        ({"success_threshold": percent(101)}, "threshold_out_of_range"),
        ({"failure_threshold": percent(-1)}, "threshold_out_of_range"),
        ({"min_finished": 0}, "min_finished_out_of_range"),
        ({"device_timeout": timedelta(0)}, "timeout_out_of_range"),
    ],
)
def test_spec_refusals(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(RolloutSpecError) as refused:
        spec(3, **changes)
    assert refused.value.reason == reason


@pytest.mark.parametrize("text", ["ten", "", "1/0"])
def test_percent_refuses_what_is_no_number(text: str) -> None:
    with pytest.raises(RolloutSpecError) as refused:
        percent(text)
    assert refused.value.reason == "invalid_share"


# -- one device, one rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "windows", "changes", "expected"),
    [
        # A queued device: notify, skip if already on the target, or mark incompatible.
        (queued(), site_closed, {}, Notify("term-00", "v2", allow_older=False)),
        (queued(), site_open, {}, Notify("term-00", "v2", allow_older=False)),  # download any time
        (queued(), site_open, {"allow_older": True}, Notify("term-00", "v2", allow_older=True)),
        (queued(installed_version="v2"), site_closed, {}, MarkSkipped("term-00")),
        (queued(installed_version="v2", compatible=False), site_closed, {}, MarkSkipped("term-00")),
        (queued(compatible=False), site_closed, {}, MarkIncompatible("term-00")),
        # A staged device installs only in its window, or when idle if the rollout allows.
        (queued(step=S.DOWNLOADED), site_closed, {}, Install("term-00", "v2")),
        (queued(step=S.DOWNLOADED), site_open, {}, MarkWaiting("term-00")),
        (queued(step=S.DOWNLOADED, idle=True), site_open, {}, MarkWaiting("term-00")),
        (
            queued(step=S.DOWNLOADED, idle=True),
            site_open,
            {"install_policy": InstallPolicy.WHEN_IDLE},
            Install("term-00", "v2"),
        ),
        (queued(step=S.WAITING_FOR_WINDOW), site_closed, {}, Install("term-00", "v2")),
        (queued(step=S.WAITING_FOR_WINDOW), site_open, {}, None),
        # Never during a citizen session, whatever the window or policy says.
        (queued(step=S.DOWNLOADED, in_session=True), site_closed, {}, MarkWaiting("term-00")),
        (queued(step=S.WAITING_FOR_WINDOW, in_session=True), site_closed, {}, None),
        (
            queued(step=S.WAITING_FOR_WINDOW, in_session=True, idle=True),
            site_closed,
            {"install_policy": InstallPolicy.WHEN_IDLE},
            None,
        ),
        # Steps the agent moves on by itself need nothing from the planner until they time out.
        (queued(step=S.NOTIFIED), site_closed, {}, None),
        (queued(step=S.DOWNLOADING), site_closed, {}, None),
        (queued(step=S.INSTALLING), site_closed, {}, None),
    ],
)
def test_device_rule(
    progress: DeviceProgress,
    windows: Callable[[str, datetime], bool],
    changes: dict[str, Any],
    expected: object,
) -> None:
    device_steps = plan_one(progress, windows=windows, **changes).device_steps()
    assert device_steps == ((expected,) if expected else ())


@pytest.mark.parametrize(
    ("step", "waited", "times_out"),
    [
        (S.NOTIFIED, TIMEOUT - timedelta(seconds=1), False),
        (S.NOTIFIED, TIMEOUT, True),
        (S.DOWNLOADING, TIMEOUT, True),
        (S.INSTALLING, TIMEOUT + timedelta(days=1), True),
        # Waiting for a window is normal all day long: a hall open until 17:30 installs at night.
        (S.WAITING_FOR_WINDOW, timedelta(days=3), False),
    ],
)
def test_timeouts(step: DeviceStep, waited: timedelta, *, times_out: bool) -> None:
    progress = queued(step=step)
    result = plan_one(progress, windows=site_open, now=T0 + waited)
    expected = (MarkTimedOut("term-00", step),) if times_out else ()
    assert result.device_steps() == expected


def test_a_timed_out_device_fails_and_counts_against_its_wave() -> None:
    result = plan_one(queued(step=S.INSTALLING), now=T0 + TIMEOUT)
    # One device, failed: 1 of 1 is above 10 %, and the canary of 1 has fully finished.
    assert result.rollout.phase is RolloutPhase.PAUSED
    pause = result.steps[-1]
    assert isinstance(pause, PauseRollout)
    assert pause.reason is PauseReason.FAILURE_THRESHOLD
    assert pause.detail == "wave 1: 1 of 1 finished devices failed (100.0% > 10.0%)"


def test_only_the_current_waves_are_notified() -> None:
    rollout = RolloutState.start(spec(50))
    devices = {device: queued() for device in ids(50)}
    result = plan(rollout, devices, T0, site_closed)
    notified = {step.device_id for step in result.device_steps()}
    assert notified == set(rollout.members[0])
    assert len(notified) == 1  # 1 % of 50, rounded up


def test_a_paused_rollout_sends_nothing_but_still_fails_devices_that_went_dark() -> None:
    rollout = replace(RolloutState.start(spec(3)), phase=RolloutPhase.PAUSED)
    devices = {
        "term-00": queued(),
        "term-01": queued(step=S.DOWNLOADED),
        "term-02": queued(step=S.NOTIFIED),
    }
    result = plan(rollout, devices, T0 + TIMEOUT, site_closed)
    assert result.steps == (MarkTimedOut("term-02", S.NOTIFIED),)
    assert result.rollout == rollout


def test_missing_progress_is_refused() -> None:
    rollout = RolloutState.start(spec(2))
    with pytest.raises(RolloutError) as refused:
        plan(rollout, {"term-00": queued()}, T0, site_closed)
    assert refused.value.reason == "missing_device"


def test_a_fleet_already_on_the_target_completes_in_one_plan() -> None:
    rollout = RolloutState.start(spec(50))
    devices = {device: queued(installed_version="v2") for device in ids(50)}
    result = plan(rollout, devices, T0, site_closed)
    assert [step for step in result.steps if not isinstance(step, MarkSkipped)] == [
        AdvanceWave(1),
        AdvanceWave(2),
        AdvanceWave(3),
        CompleteRollout(RolloutPhase.COMPLETED),
    ]
    assert result.rollout.phase is RolloutPhase.COMPLETED
    assert all(p.step is S.SKIPPED_ALREADY_INSTALLED for p in apply(result, devices, T0).values())


def test_the_last_wave_waits_for_retried_devices_of_earlier_waves() -> None:
    rollout = replace(RolloutState.start(spec(2, waves=(percent(50), percent(100)))), wave=1)
    first, last = rollout.members[0][0], rollout.members[1][0]
    devices = {first: queued(step=S.INSTALLING), last: queued(step=S.SUCCEEDED)}
    assert plan(rollout, devices, T0, site_closed).rollout.phase is RolloutPhase.RUNNING
    devices[first] = queued(step=S.SUCCEEDED)
    assert plan(rollout, devices, T0, site_closed).rollout.phase is RolloutPhase.COMPLETED


# -- wave verdicts -----------------------------------------------------------------------------


def wave_of(
    steps: list[DeviceStep],
    **changes: Any,  # noqa: ANN401 - RolloutSpec fields
) -> tuple[RolloutState, dict[str, DeviceProgress]]:
    """A rollout whose canary is exactly ``steps`` (one device each), at its canary."""
    count = len(steps)
    rollout = RolloutState.start(spec(count, waves=(Fraction(1),), **changes))
    return rollout, {
        device: queued(step=step) for device, step in zip(rollout.members[0], steps, strict=True)
    }


OK, BAD, BUSY = S.SUCCEEDED, S.FAILED, S.DOWNLOADING


@pytest.mark.parametrize(
    ("steps", "verdict"),
    [
        # A canary of 3 (below min_finished 5): one early failure waits for the rest...
        ([BAD, BUSY, BUSY], Verdict.WAIT),
        # ...and once all 3 finished, 1/3 = 33 % > 10 % pauses.
        ([BAD, OK, OK], PauseReason.FAILURE_THRESHOLD),
        # A wave of 10: four finished with one failure is below min_finished...
        ([BAD, OK, OK, OK, *[BUSY] * 6], Verdict.WAIT),
        # ...five finished with one failure is 20 % > 10 %.
        ([BAD, OK, OK, OK, OK, *[BUSY] * 5], PauseReason.FAILURE_THRESHOLD),
        # 1 of 10 failed is 10 %, not above 10 %; but 90 % succeeded is below 95 %.
        ([BAD, *[OK] * 9], PauseReason.BELOW_SUCCESS_THRESHOLD),
        # 1 of 20 failed: 5 % failed, 95 % succeeded: advance.
        ([BAD, *[OK] * 19], Verdict.ADVANCE),
        ([*[OK] * 19, BUSY], Verdict.WAIT),
        # Skipped counts as success; incompatible and cancelled are not judged.
        ([S.SKIPPED_ALREADY_INSTALLED, S.INCOMPATIBLE, S.CANCELLED, OK], Verdict.ADVANCE),
        ([S.INCOMPATIBLE, S.INCOMPATIBLE], Verdict.ADVANCE),
        ([S.INCOMPATIBLE, BAD], PauseReason.FAILURE_THRESHOLD),
        ([S.WAITING_FOR_WINDOW, *[OK] * 9], Verdict.WAIT),
    ],
)
def test_wave_verdicts(steps: list[DeviceStep], verdict: object) -> None:
    rollout, devices = wave_of(steps)
    found = judge(rollout, devices)
    if isinstance(verdict, PauseReason):
        assert isinstance(found, PauseRollout)
        assert found.reason is verdict
    else:
        assert found is verdict


def test_a_waived_wave_advances_once_finished_whatever_failed() -> None:
    rollout, devices = wave_of([BAD, BAD, OK])
    assert isinstance(judge(rollout, devices), PauseRollout)
    waived = replace(rollout, waived_wave=0)
    assert judge(waived, devices) is Verdict.ADVANCE
    assert judge(waived, {**devices, rollout.members[0][0]: queued(step=BUSY)}) is Verdict.WAIT


# -- the scenario ----------------------------------------------------------------------


def drive(
    rollout: RolloutState, devices: dict[str, DeviceProgress], failing: set[str]
) -> tuple[RolloutState, dict[str, DeviceProgress], set[str], list[PauseRollout]]:
    """A night with fake terminals: downloads at once, installs one per round in wave order.

    Rounds are 2 minutes apart, so a wave of 25 installs well inside the 2 h device timeout.
    Returns the end state, every device notified, and the pauses the planner called.
    """
    now, notified, pauses = T0, set(), []
    order = [device for wave in rollout.members for device in wave]
    for _ in range(100):
        result = plan(rollout, devices, now, site_closed)
        notified |= {step.device_id for step in result.device_steps() if isinstance(step, Notify)}
        pauses += [step for step in result.steps if isinstance(step, PauseRollout)]
        devices, rollout = apply(result, devices, now), result.rollout
        now += timedelta(minutes=2)
        for device, progress in devices.items():
            if progress.step is S.NOTIFIED:
                devices[device] = move(progress, S.DOWNLOADED, now)
        installing = [device for device in order if devices[device].step is S.INSTALLING]
        for device in installing[:1]:
            version = None if device in failing else rollout.version
            devices[device] = install_outcome(rollout, devices[device], version, now)
    return rollout, devices, notified, pauses


def test_fifty_terminals_ten_percent_failing_pause_at_the_canary() -> None:
    fleet = ids(50)
    failing = {f"term-{number:02d}" for number in range(3, 50, 10)}  # every tenth terminal
    assert len(failing) / len(fleet) == 0.10
    # Canary 20 % of 50 = 10 terminals; failure threshold 5 %, min_finished 5 (defaults else).
    rollout = RolloutState.start(
        spec(
            50,
            rollout_id="guide-cards-v2",
            waves=(percent(20), percent(50), percent(100)),
            failure_threshold=percent(5),
            min_finished=5,
        )
    )
    canary = rollout.members[0]
    assert len(canary) == math.ceil(Fraction(20, 100) * 50) == 10
    # The premise: this rollout's hash order puts one failing terminal among the canary's ten
    # (a canary of 10 from 50 with 5 failing misses them all with odds C(45,10)/C(50,10) ≈ 31 %).
    caught = [position for position, device in enumerate(canary, 1) if device in failing]
    assert len(caught) == 1
    devices = {device: queued() for device in fleet}

    rollout, devices, notified, pauses = drive(rollout, devices, failing)

    # Installs finish one by one. The failure is judged once min_finished = 5 have finished:
    # with it among k = max(5, its position) finished, 1/k ≥ 1/10 = 10 % > 5 %, so it pauses.
    judged = max(5, caught[0])
    assert [pause.detail for pause in pauses] == [
        f"wave 1: 1 of {judged} finished devices failed ({1 / judged:.1%} > 5.0%)"
    ]
    assert (rollout.phase, rollout.pause_reason) == (
        RolloutPhase.PAUSED,
        PauseReason.FAILURE_THRESHOLD,
    )
    assert rollout.wave == 0
    assert notified == set(canary), "nothing beyond the canary was sent"
    # Installs already under way run to their end while paused; the other 40 were never touched.
    steps = [devices[device].step for device in fleet]
    assert (steps.count(S.FAILED), steps.count(S.SUCCEEDED), steps.count(S.QUEUED)) == (1, 9, 40)


def test_the_same_fleet_without_failures_completes_every_wave() -> None:
    rollout = RolloutState.start(spec(50, waves=(percent(20), percent(50), percent(100))))
    rollout, devices, notified, pauses = drive(
        rollout, {device: queued() for device in ids(50)}, set()
    )
    assert pauses == []
    assert rollout.phase is RolloutPhase.COMPLETED
    assert notified == set(ids(50))
    assert all(progress.step is S.SUCCEEDED for progress in devices.values())
