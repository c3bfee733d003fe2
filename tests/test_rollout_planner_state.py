"""Rollout states: the transition tables, the operator actions, and a fleet driven at random."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from control_plane.rollouts import (
    DeviceProgress,
    DeviceStep,
    IllegalTransitionError,
    InstallPolicy,
    OperationError,
    PauseReason,
    RolloutError,
    RolloutPhase,
    RolloutSpec,
    RolloutState,
    apply,
    cancel,
    install_outcome,
    move,
    pause,
    percent,
    plan,
    resume,
    retry_failed,
    rollback,
    wave_order,
    wave_sizes,
)
from control_plane.rollouts.states import (
    DEVICE_TRANSITIONS,
    PHASE_TRANSITIONS,
    TERMINAL_STEPS,
    check_phase_move,
)
from control_plane.rollouts.steps import CompleteRollout, Install, Notify, RollBack

Devices = dict[str, DeviceProgress]
Outcome = tuple[RolloutState, Devices]

T0 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
S = DeviceStep
P = RolloutPhase


def progress(step: DeviceStep, **changes: Any) -> DeviceProgress:  # noqa: ANN401 - fields
    return replace(DeviceProgress(step, T0, installed_version="v1"), **changes)


def rollout_of(
    ids: tuple[str, ...] = ("term-0", "term-1", "term-2"),
    phase: RolloutPhase = P.RUNNING,
    **changes: Any,  # noqa: ANN401 - RolloutSpec fields
) -> RolloutState:
    spec = replace(RolloutSpec("r-1", "v2", ids, previous_version="v1"), **changes)
    return replace(RolloutState.start(spec), phase=phase)


# -- transition tables -------------------------------------------------------------------------


@pytest.mark.parametrize("before", list(DeviceStep))
@pytest.mark.parametrize("after", list(DeviceStep))
def test_device_moves_follow_the_table(before: DeviceStep, after: DeviceStep) -> None:
    later = T0 + timedelta(minutes=5)
    if after in DEVICE_TRANSITIONS[before]:
        moved = move(progress(before), after, later)
        assert (moved.step, moved.step_since) == (after, later)
    else:
        with pytest.raises(IllegalTransitionError) as refused:
            move(progress(before), after, later)
        assert refused.value.reason == "illegal_transition"
        assert f"a {before} device cannot become {after}" in str(refused.value)


def test_the_tables_cover_every_state_and_terminal_steps_only_reopen_by_operator() -> None:
    assert set(DEVICE_TRANSITIONS) == set(DeviceStep)
    assert set(PHASE_TRANSITIONS) == set(RolloutPhase)
    reopening = {
        step: DEVICE_TRANSITIONS[step] for step in TERMINAL_STEPS if DEVICE_TRANSITIONS[step]
    }
    # retry_failed re-queues a failed device; a rollback swaps a succeeded one back.
    assert reopening == {S.FAILED: {S.QUEUED}, S.SUCCEEDED: {S.INSTALLING}}
    terminal = {S.SUCCEEDED, S.FAILED, S.ROLLED_BACK, S.CANCELLED}
    assert terminal | {S.SKIPPED_ALREADY_INSTALLED, S.INCOMPATIBLE} == TERMINAL_STEPS


def test_requeueing_counts_an_attempt() -> None:
    assert move(progress(S.FAILED, attempts=2), S.QUEUED, T0).attempts == 3
    assert move(progress(S.QUEUED, attempts=2), S.NOTIFIED, T0).attempts == 2


@pytest.mark.parametrize("before", list(RolloutPhase))
@pytest.mark.parametrize("after", list(RolloutPhase))
def test_phase_moves_follow_the_table(before: RolloutPhase, after: RolloutPhase) -> None:
    if after in PHASE_TRANSITIONS[before]:
        assert check_phase_move(before, after) is after
    else:
        with pytest.raises(IllegalTransitionError, match=f"a {before} rollout cannot"):
            check_phase_move(before, after)


# -- operator actions --------------------------------------------------------------------------

# One device in each step, named after it: term-queued, term-notified, …
ALL_STEPS = {f"term-{step}": progress(step) for step in DeviceStep}


def test_pause_and_resume() -> None:
    paused = pause(rollout_of())
    assert (paused.phase, paused.pause_reason) == (P.PAUSED, PauseReason.OPERATOR)
    resumed = resume(paused)
    assert (resumed.phase, resumed.pause_reason, resumed.waived_wave) == (P.RUNNING, None, None)
    assert resume(replace(paused, wave=2), waive_thresholds=True).waived_wave == 2


def test_cancel_stops_devices_not_yet_installing() -> None:
    rollout = rollout_of(tuple(ALL_STEPS))
    cancelled, devices = cancel(rollout, ALL_STEPS, T0)
    assert cancelled.phase is P.CANCELLED
    before_install = {S.QUEUED, S.NOTIFIED, S.DOWNLOADING, S.DOWNLOADED, S.WAITING_FOR_WINDOW}
    for device, before in ALL_STEPS.items():
        expected = S.CANCELLED if before.step in before_install else before.step
        assert devices[device].step is expected


def test_retry_failed_requeues_only_failed_devices() -> None:
    rollout = rollout_of(tuple(ALL_STEPS), P.COMPLETED)
    again, devices = retry_failed(rollout, ALL_STEPS, T0)
    assert again.phase is P.RUNNING, "a completed rollout with retried devices runs again"
    changed = {device for device in devices if devices[device] != ALL_STEPS[device]}
    assert changed == {"term-failed"}
    assert (devices["term-failed"].step, devices["term-failed"].attempts) == (S.QUEUED, 1)
    paused = rollout_of(phase=P.PAUSED)
    assert retry_failed(paused, {}, T0)[0] == paused, "retrying does not resume"


def test_rollback_cancels_waiting_devices_then_swaps_succeeded_ones_back_in_their_window() -> None:
    def closed(_device: str, _now: datetime) -> bool:
        return True

    rolling, devices = rollback(rollout_of(tuple(ALL_STEPS)), ALL_STEPS, T0)
    assert (rolling.phase, rolling.version) == (P.ROLLING_BACK, "v1")
    cancelled = {device for device, state in devices.items() if state.step is S.CANCELLED}
    assert cancelled == {
        "term-queued",
        "term-notified",
        "term-downloading",
        "term-downloaded",
        "term-waiting_for_window",
        "term-cancelled",
    }
    in_hours = plan(rolling, devices, T0, lambda device, _now: device != "term-succeeded")
    assert in_hours.device_steps() == ()
    in_session = {**devices, "term-succeeded": replace(devices["term-succeeded"], in_session=True)}
    assert plan(rolling, in_session, T0, closed).device_steps() == ()
    result = plan(rolling, devices, T0, closed)
    assert result.device_steps() == (RollBack("term-succeeded", "v1"),)
    assert result.rollout.phase is P.ROLLING_BACK
    devices = apply(result, devices, T0)
    # The device installing v2 when the rollback began finishes, and is rolled back in turn.
    devices["term-installing"] = install_outcome(rolling, devices["term-installing"], "v2", T0)
    devices["term-succeeded"] = install_outcome(rolling, devices["term-succeeded"], "v1", T0)
    assert devices["term-succeeded"].step is S.ROLLED_BACK
    result = plan(rolling, devices, T0, closed)
    assert result.device_steps() == (RollBack("term-installing", "v1"),)
    assert result.rollout.phase is P.ROLLING_BACK
    devices = apply(result, devices, T0)
    devices["term-installing"] = install_outcome(rolling, devices["term-installing"], "v1", T0)
    done = plan(rolling, devices, T0, closed)
    assert done.steps == (CompleteRollout(P.ROLLED_BACK),)
    assert done.rollout.phase is P.ROLLED_BACK
    assert all(state.terminal for state in devices.values())
    assert {state.step for state in devices.values()} == {
        S.CANCELLED,
        S.ROLLED_BACK,
        S.FAILED,
        S.SKIPPED_ALREADY_INSTALLED,
        S.INCOMPATIBLE,
    }


@pytest.mark.parametrize(
    ("action", "phases"),
    [
        (pause, {P.RUNNING}),
        (resume, {P.PAUSED}),
        (lambda r: cancel(r, {}, T0), {P.RUNNING, P.PAUSED}),
        (lambda r: retry_failed(r, {}, T0), {P.RUNNING, P.PAUSED, P.COMPLETED}),
        (lambda r: rollback(r, {}, T0), {P.RUNNING, P.PAUSED, P.COMPLETED, P.CANCELLED}),
    ],
)
def test_actions_refused_by_phase(action: Any, phases: set[RolloutPhase]) -> None:  # noqa: ANN401
    for phase in RolloutPhase:
        if phase in phases:
            action(rollout_of(phase=phase))
        else:
            with pytest.raises(OperationError, match=f"a {phase} rollout"):
                action(rollout_of(phase=phase))


def test_rollback_needs_a_previous_version() -> None:
    with pytest.raises(OperationError) as refused:
        rollback(rollout_of(previous_version=None), {}, T0)
    assert refused.value.reason == "no_previous_version"


@pytest.mark.parametrize(
    ("phase", "reported", "expected"),
    [
        (P.RUNNING, "v2", S.SUCCEEDED),
        (P.RUNNING, None, S.FAILED),
        (P.RUNNING, "v1", S.FAILED),  # still on the old version: the install did not take
        (P.ROLLING_BACK, "v1", S.ROLLED_BACK),
        (P.ROLLING_BACK, "v2", S.SUCCEEDED),  # a forward install that ended after the rollback
        (P.ROLLING_BACK, None, S.FAILED),
    ],
)
def test_install_outcomes(phase: RolloutPhase, reported: str | None, expected: DeviceStep) -> None:
    recorded = install_outcome(rollout_of(phase=phase), progress(S.INSTALLING), reported, T0)
    assert recorded.step is expected
    assert recorded.installed_version == (reported or "v1")


def test_repeated_and_late_install_reports_keep_the_step_and_record_the_version() -> None:
    rollout = rollout_of(("term-0",))
    done = install_outcome(rollout, progress(S.INSTALLING), "v2", T0)
    assert install_outcome(rollout, done, "v2", T0 + timedelta(minutes=1)) == done  # a repeat
    timed_out = progress(S.FAILED)  # the planner gave up on it; then it reports v2 after all
    late = install_outcome(rollout, timed_out, "v2", T0)
    assert (late.step, late.installed_version) == (S.FAILED, "v2")
    rollout, devices = retry_failed(rollout, {"term-0": late}, T0)
    result = plan(rollout, devices, T0, lambda _d, _n: True)
    assert [type(step).__name__ for step in result.steps] == ["MarkSkipped", "CompleteRollout"]
    with pytest.raises(IllegalTransitionError):
        install_outcome(rollout, progress(S.NOTIFIED), "v2", T0)  # never told to install


def test_rollout_state_derives_its_waves_and_refuses_a_wave_it_does_not_have() -> None:
    spec = rollout_of(tuple(f"term-{number}" for number in range(50))).spec
    assert RolloutState(spec).members == RolloutState.start(spec).members
    assert [len(wave) for wave in RolloutState(spec).members] == [1, 4, 20, 25]
    with pytest.raises(RolloutError) as refused:
        RolloutState(spec, wave=4)
    assert refused.value.reason == "wave_out_of_range"


# -- a fleet driven at random ------------------------------------------------------------------

MAX_FLEET = 24
# What a fake agent answers, success more often than not (a choice indexes these cyclically).
AGENT_REPORTS = {
    S.NOTIFIED: [
        S.DOWNLOADED,
        S.DOWNLOADING,
        S.DOWNLOADED,
        S.FAILED,
        S.DOWNLOADED,
        S.SKIPPED_ALREADY_INSTALLED,
        S.DOWNLOADED,
        S.INCOMPATIBLE,
        S.DOWNLOADED,
        S.DOWNLOADED,
    ],
    S.DOWNLOADING: [S.DOWNLOADED, S.DOWNLOADED, S.DOWNLOADED, S.FAILED],
}
WAVE_CHOICES = [
    (percent(1), percent(10), percent(50), percent(100)),
    (percent(20), percent(50), percent(100)),
    (percent(100),),
]
SENDING = (Notify, Install, RollBack)


def _pause(rollout: RolloutState, devices: Devices, _now: datetime) -> Outcome:
    return pause(rollout), devices


def _resume(rollout: RolloutState, devices: Devices, _now: datetime) -> Outcome:
    return resume(rollout), devices


def _resume_waived(rollout: RolloutState, devices: Devices, _now: datetime) -> Outcome:
    return resume(rollout, waive_thresholds=True), devices


OPERATOR_ACTIONS = {
    "pause": (_pause, {P.RUNNING}),
    "resume": (_resume, {P.PAUSED}),
    "resume, waiving": (_resume_waived, {P.PAUSED}),
    "cancel": (cancel, {P.RUNNING, P.PAUSED}),
    "retry failed": (retry_failed, {P.RUNNING, P.PAUSED, P.COMPLETED}),
    "roll back": (rollback, {P.RUNNING, P.PAUSED, P.COMPLETED, P.CANCELLED}),
}


class FleetMachine(RuleBasedStateMachine):
    """Fake terminals answer at random; operators act at random; the planner runs in between."""

    rollout: RolloutState
    devices: dict[str, DeviceProgress]

    @initialize(
        count=st.integers(1, MAX_FLEET),
        waves=st.sampled_from(WAVE_CHOICES),
        min_finished=st.integers(1, 6),
        policy=st.sampled_from(InstallPolicy),
        failure=st.sampled_from([percent(0), percent(10), percent(50), percent(100)]),
        success=st.sampled_from([percent(50), percent(95), percent(100)]),
        night=st.sampled_from([True, True, True, False]),
        sessions=st.sets(st.integers(0, MAX_FLEET - 1)),
    )
    def start(
        self,
        count: int,
        waves: tuple[Fraction, ...],
        min_finished: int,
        policy: InstallPolicy,
        failure: Fraction,
        success: Fraction,
        *,
        night: bool,
        sessions: set[int],
    ) -> None:
        ids = tuple(f"term-{number}" for number in range(count))
        spec = RolloutSpec(
            "r-1",
            "v2",
            ids,
            previous_version="v1",
            waves=waves,
            min_finished=min_finished,
            install_policy=policy,
            failure_threshold=failure,
            success_threshold=success,
            device_timeout=timedelta(hours=1),
        )
        self.rollout = RolloutState.start(spec)
        self.devices = {
            device: progress(S.QUEUED, in_session=number in sessions)
            for number, device in enumerate(ids)
        }
        self.now = T0
        self.closed: set[str] = set(ids) if night else set()
        self.highest_wave = 0

    def windows(self, device: str, _now: datetime) -> bool:
        return device in self.closed

    def pick(self, index: int) -> str:
        return self.rollout.spec.device_ids[index % len(self.rollout.spec.device_ids)]

    @rule(minutes=st.integers(1, 40))
    def tick(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(index=st.integers(0, MAX_FLEET), is_closed=st.booleans())
    def site_hours(self, index: int, *, is_closed: bool) -> None:
        (self.closed.add if is_closed else self.closed.discard)(self.pick(index))

    @rule(index=st.integers(0, MAX_FLEET), in_session=st.booleans(), idle=st.booleans())
    def heartbeat(self, index: int, *, in_session: bool, idle: bool) -> None:
        device = self.pick(index)
        self.devices[device] = replace(
            self.devices[device], in_session=in_session, idle=idle and not in_session
        )

    @rule(rounds=st.lists(st.lists(st.integers(0, 9), max_size=MAX_FLEET), min_size=1, max_size=8))
    def agents_report_then_planner_runs(self, rounds: list[list[int]]) -> None:
        for choices in rounds:
            busy = [
                device
                for device, state in self.devices.items()
                if state.step in AGENT_REPORTS or state.step is S.INSTALLING
            ]
            for device, choice in zip(busy, choices, strict=False):
                self.report(device, choice)
            self.run_planner()

    @rule(rounds=st.integers(1, 8))
    def a_quiet_night(self, rounds: int) -> None:
        """Every site closes and every agent succeeds: runs that get through the later waves."""
        self.closed = set(self.devices)
        self.devices = {
            device: replace(state, in_session=False) for device, state in self.devices.items()
        }
        for _ in range(rounds):
            for device, state in self.devices.items():
                if state.step in AGENT_REPORTS or state.step is S.INSTALLING:
                    self.report(device, choice=0)
            self.run_planner()
            self.now += timedelta(minutes=10)

    def report(self, device: str, choice: int) -> None:
        current = self.devices[device]
        if current.step in AGENT_REPORTS:
            options = AGENT_REPORTS[current.step]
            self.devices[device] = move(current, options[choice % len(options)], self.now)
            return
        versions = [self.rollout.version] * 8 + [self.rollout.spec.target_version, None]
        reported = versions[choice % len(versions)]
        self.devices[device] = install_outcome(self.rollout, current, reported, self.now)

    @rule()
    def run_planner(self) -> None:
        before = self.rollout
        result = plan(before, self.devices, self.now, self.windows)
        eligible = result.rollout.eligible()
        for step in result.device_steps():
            if isinstance(step, SENDING):
                assert before.phase in {P.RUNNING, P.ROLLING_BACK}, "paused: nothing is sent"
            if isinstance(step, Notify):
                assert step.device_id in eligible
                assert before.phase is P.RUNNING
            if isinstance(step, Install | RollBack):
                device = self.devices[step.device_id]
                assert not device.in_session
                idle_allowed = before.spec.install_policy is InstallPolicy.WHEN_IDLE and device.idle
                assert step.device_id in self.closed or idle_allowed
        if result.rollout.phase is not before.phase:
            check_phase_move(before.phase, result.rollout.phase)
        self.devices = apply(result, self.devices, self.now)
        self.rollout = result.rollout
        # Shown by --hypothesis-show-statistics: which phases and steps the runs reached.
        event(f"phase {self.rollout.phase}, wave {self.rollout.wave}")
        for taken in result.steps:
            event(type(taken).__name__)

    @rule(action=st.sampled_from(sorted(OPERATOR_ACTIONS)), now=st.integers(0, 3))
    def operator(self, action: str, now: int) -> None:
        # Operators act now and then (one draw in four); the fleet works in between.
        if now:
            return
        do, phases = OPERATOR_ACTIONS[action]
        if self.rollout.phase not in phases:
            with pytest.raises(OperationError):
                do(self.rollout, self.devices, self.now)
            return
        self.rollout, self.devices = do(self.rollout, self.devices, self.now)
        event(f"operator: {action}")

    @invariant()
    def every_device_counted_once(self) -> None:
        counts = Counter(device.step for device in self.devices.values())
        assert sum(counts.values()) == len(self.rollout.spec.device_ids)
        assert set(self.devices) == set(self.rollout.spec.device_ids)

    @invariant()
    def no_device_touched_outside_the_current_waves(self) -> None:
        spec = self.rollout.spec
        # Computed here from the waves' definition, not by the planner's own eligible().
        reached = wave_sizes(spec.waves, len(spec.device_ids))[self.rollout.wave]
        eligible = set(wave_order(spec.rollout_id, spec.device_ids)[:reached])
        for device, state in self.devices.items():
            if device not in eligible:
                assert state.step in {S.QUEUED, S.CANCELLED}, (device, state.step)

    @invariant()
    def wave_never_goes_back(self) -> None:
        assert self.rollout.wave >= self.highest_wave
        self.highest_wave = self.rollout.wave

    @invariant()
    def finished_rollouts_leave_every_device_terminal(self) -> None:
        if self.rollout.phase in {P.COMPLETED, P.ROLLED_BACK}:
            assert all(device.terminal for device in self.devices.values())

    @invariant()
    def a_rolled_back_rollout_leaves_nobody_on_the_target(self) -> None:
        if self.rollout.phase is P.ROLLED_BACK:
            assert not any(device.step is S.SUCCEEDED for device in self.devices.values())


FleetMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=80, deadline=None)
test_fleet = FleetMachine.TestCase
