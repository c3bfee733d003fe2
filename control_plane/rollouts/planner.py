"""The rollout planner: (rollout, devices' progress, clock, windows) → the steps to take. Pure.

``plan`` reads nothing but its arguments: time is ``now`` and maintenance windows come from
``windows(device_id, now)``, which says whether the device's site is closed (opening hours are
resolved elsewhere). The executor carries out the steps in order, records the devices' new steps
(``steps.apply`` does exactly that), stores ``Plan.rollout`` and calls ``plan`` again whenever a
device reports or the clock moves on.

Rules: only devices of the current and earlier waves are notified; downloads may run any time,
installs only in a window (or when idle, if the rollout allows) and never during a citizen
session; a device stuck in a timed step past the rollout's timeout is failed; a wave advances,
pauses or completes the rollout as ``verdicts.judge`` says; a paused rollout sends nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from .errors import RolloutError
from .spec import InstallPolicy, RolloutState
from .states import (
    DeviceProgress,
    DeviceStep,
    PauseReason,
    RolloutPhase,
    check_phase_move,
    move,
)
from .steps import (
    AdvanceWave,
    CompleteRollout,
    DeviceAction,
    Install,
    MarkIncompatible,
    MarkSkipped,
    MarkTimedOut,
    MarkWaiting,
    Notify,
    PauseRollout,
    Plan,
    RollBack,
    Step,
)
from .verdicts import Verdict, judge

Windows = Callable[[str, datetime], bool]

# Waiting for a window is not timed: a hall open all day installs at night, and that is normal.
# DOWNLOADED is not timed either: the planner moves it on in the same plan that sees it.
TIMED_STEPS = frozenset({DeviceStep.NOTIFIED, DeviceStep.DOWNLOADING, DeviceStep.INSTALLING})


class _Planning:
    """One planning pass: the devices as the steps so far leave them, and the steps."""

    def __init__(
        self,
        rollout: RolloutState,
        devices: Mapping[str, DeviceProgress],
        now: datetime,
        windows: Windows,
    ) -> None:
        self.rollout = rollout
        self.devices = dict(devices)
        self.now = now
        self.windows = windows
        self.steps: list[Step] = []

    def record(self, action: DeviceAction) -> None:
        self.steps.append(action)
        device = self.devices[action.device_id]
        self.devices[action.device_id] = move(device, action.becomes, self.now)

    def timed_out(self, progress: DeviceProgress) -> bool:
        return (
            progress.step in TIMED_STEPS
            and self.now - progress.step_since >= self.rollout.spec.device_timeout
        )

    def may_install(self, device_id: str, progress: DeviceProgress) -> bool:
        if progress.in_session:
            return False
        if self.rollout.spec.install_policy is InstallPolicy.WHEN_IDLE and progress.idle:
            return True
        return self.windows(device_id, self.now)

    def expire(self, device_ids: Iterable[str]) -> None:
        """Fail every device among ``device_ids`` that stayed in a timed step too long."""
        for device_id in device_ids:
            progress = self.devices[device_id]
            if self.timed_out(progress):
                self.record(MarkTimedOut(device_id, progress.step))

    def forward(self, device_ids: Iterable[str]) -> None:
        """Move each device of a running rollout one step towards the target version."""
        version = self.rollout.version
        for device_id in device_ids:
            progress = self.devices[device_id]
            action = self.next_forward(device_id, progress, version)
            if action is not None:
                self.record(action)

    def next_forward(
        self, device_id: str, progress: DeviceProgress, version: str
    ) -> DeviceAction | None:
        if self.timed_out(progress):
            return MarkTimedOut(device_id, progress.step)
        match progress.step:
            case DeviceStep.QUEUED:
                return self.first_step(device_id, progress, version)
            case DeviceStep.DOWNLOADED | DeviceStep.WAITING_FOR_WINDOW if self.may_install(
                device_id, progress
            ):
                return Install(device_id, version)
            case DeviceStep.DOWNLOADED:
                return MarkWaiting(device_id)
            case _:
                return None

    def first_step(self, device_id: str, progress: DeviceProgress, version: str) -> DeviceAction:
        # A device already on the version is done even if the package would not fit it now.
        if progress.installed_version == version:
            return MarkSkipped(device_id)
        if not progress.compatible:
            return MarkIncompatible(device_id)
        return Notify(device_id, version, self.rollout.spec.allow_older)

    def run_waves(self) -> None:
        """Step the eligible devices, then judge the wave; a wave that advances steps its own."""
        self.forward(sorted(self.rollout.eligible()))
        while True:
            verdict = judge(self.rollout, self.devices)
            if isinstance(verdict, PauseRollout):
                self.set_phase(RolloutPhase.PAUSED, pause_reason=verdict.reason)
                self.steps.append(verdict)
                return
            if verdict is Verdict.WAIT:
                return
            if self.rollout.wave < self.rollout.last_wave:
                wave = self.rollout.wave + 1
                self.rollout = dataclasses.replace(self.rollout, wave=wave)
                self.steps.append(AdvanceWave(wave))
                self.forward(self.rollout.members[wave])
                continue
            # The last wave is done; retried devices of earlier waves may still be under way.
            if all(progress.terminal for progress in self.targeted()):
                self.set_phase(RolloutPhase.COMPLETED)
                self.steps.append(CompleteRollout(RolloutPhase.COMPLETED))
            return

    def roll_back(self) -> None:
        """Swap devices on the target version back, each in its window; finish when none is."""
        version = self.rollout.version
        self.expire(self.rollout.spec.device_ids)
        for device_id in self.rollout.spec.device_ids:
            progress = self.devices[device_id]
            if progress.step is DeviceStep.SUCCEEDED and self.may_install(device_id, progress):
                self.record(RollBack(device_id, version))
        if not any(progress.step in _STILL_ON_TARGET for progress in self.targeted()):
            self.set_phase(RolloutPhase.ROLLED_BACK)
            self.steps.append(CompleteRollout(RolloutPhase.ROLLED_BACK))

    def targeted(self) -> Iterable[DeviceProgress]:
        return (self.devices[device_id] for device_id in self.rollout.spec.device_ids)

    def set_phase(self, phase: RolloutPhase, pause_reason: PauseReason | None = None) -> None:
        check_phase_move(self.rollout.phase, phase)
        self.rollout = dataclasses.replace(self.rollout, phase=phase, pause_reason=pause_reason)


# Anything a rollback still has to wait for: a device on the target, or one mid-install.
_STILL_ON_TARGET = frozenset({DeviceStep.SUCCEEDED, DeviceStep.INSTALLING})


def plan(
    rollout: RolloutState,
    devices: Mapping[str, DeviceProgress],
    now: datetime,
    windows: Windows,
) -> Plan:
    """The steps that move ``rollout`` on from ``devices`` at ``now``, and its state after them."""
    missing = [device for device in rollout.spec.device_ids if device not in devices]
    if missing:
        msg = f"no progress recorded for {len(missing)} targeted devices, e.g. {missing[0]!r}"
        raise RolloutError(msg, reason="missing_device")
    planning = _Planning(rollout, devices, now, windows)
    match rollout.phase:
        case RolloutPhase.RUNNING:
            planning.run_waves()
        case RolloutPhase.ROLLING_BACK:
            planning.roll_back()
        case RolloutPhase.PAUSED | RolloutPhase.CANCELLED:
            # Nothing is sent, but a device that went dark mid-step still ends as failed.
            planning.expire(rollout.spec.device_ids)
        case RolloutPhase.COMPLETED | RolloutPhase.ROLLED_BACK:
            pass
    return Plan(tuple(planning.steps), planning.rollout)
