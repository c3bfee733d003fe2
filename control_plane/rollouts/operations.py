"""Operator actions on a rollout, and the record of an install's outcome. Pure.

Each returns new values and changes nothing in place. Actions that touch devices take and return
the devices' progress; a refused action raises ``OperationError`` naming the phase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from .errors import OperationError
from .spec import RolloutState
from .states import (
    NOT_YET_INSTALLING,
    DeviceProgress,
    DeviceStep,
    PauseReason,
    RolloutPhase,
    move,
)

Devices = dict[str, DeviceProgress]
_P = RolloutPhase


def _require(rollout: RolloutState, action: str, *phases: RolloutPhase) -> None:
    if rollout.phase not in phases:
        names = ", ".join(phases)
        msg = f"cannot {action} a {rollout.phase} rollout (only when {names})"
        raise OperationError(msg, reason=f"cannot_{action.replace(' ', '_')}")


def _cancel_waiting(devices: Mapping[str, DeviceProgress], now: datetime) -> Devices:
    """Devices that have not begun installing cancelled; the others as they are."""
    return {
        device_id: move(progress, DeviceStep.CANCELLED, now)
        if progress.step in NOT_YET_INSTALLING
        else progress
        for device_id, progress in devices.items()
    }


def pause(rollout: RolloutState) -> RolloutState:
    """The rollout paused by an operator: nothing more is sent until it is resumed."""
    _require(rollout, "pause", _P.RUNNING)
    return dataclasses.replace(rollout, phase=_P.PAUSED, pause_reason=PauseReason.OPERATOR)


def resume(rollout: RolloutState, *, waive_thresholds: bool = False) -> RolloutState:
    """The rollout running again; waiving lets the current wave advance once all finished.

    Without a waiver the planner judges the wave again, so a rollout paused on failures pauses
    again unless the failures were retried; with it, the operator accepts them.
    """
    _require(rollout, "resume", _P.PAUSED)
    waived = rollout.wave if waive_thresholds else rollout.waived_wave
    return dataclasses.replace(rollout, phase=_P.RUNNING, pause_reason=None, waived_wave=waived)


def cancel(
    rollout: RolloutState, devices: Mapping[str, DeviceProgress], now: datetime
) -> tuple[RolloutState, Devices]:
    """The rollout cancelled: devices not yet installing are cancelled, installs run to the end."""
    _require(rollout, "cancel", _P.RUNNING, _P.PAUSED)
    cancelled = dataclasses.replace(rollout, phase=_P.CANCELLED, pause_reason=None)
    return cancelled, _cancel_waiting(devices, now)


def retry_failed(
    rollout: RolloutState, devices: Mapping[str, DeviceProgress], now: datetime
) -> tuple[RolloutState, Devices]:
    """Failed devices queued again (one more attempt each); a completed rollout runs again.

    A paused rollout stays paused: retrying is not resuming.
    """
    _require(rollout, "retry", _P.RUNNING, _P.PAUSED, _P.COMPLETED)
    retried = {
        device_id: move(progress, DeviceStep.QUEUED, now)
        if progress.step is DeviceStep.FAILED
        else progress
        for device_id, progress in devices.items()
    }
    if rollout.phase is _P.COMPLETED and retried != devices:
        rollout = dataclasses.replace(rollout, phase=_P.RUNNING)
    return rollout, retried


def rollback(
    rollout: RolloutState, devices: Mapping[str, DeviceProgress], now: datetime
) -> tuple[RolloutState, Devices]:
    """The rollout turned back to the previous version.

    Devices not yet installing are cancelled (they never left the previous version); the planner
    then sends each succeeded device a rollback step, in its window. Failed devices kept the
    previous version, and skipped ones were on the target before the rollout: both stay.
    """
    _require(rollout, "roll back", _P.RUNNING, _P.PAUSED, _P.COMPLETED, _P.CANCELLED)
    if rollout.spec.previous_version is None:
        msg = f"rollout {rollout.spec.rollout_id} has no previous version to roll back to"
        raise OperationError(msg, reason="no_previous_version")
    rolling = dataclasses.replace(rollout, phase=_P.ROLLING_BACK, pause_reason=None)
    return rolling, _cancel_waiting(devices, now)


def install_outcome(
    rollout: RolloutState, progress: DeviceProgress, installed_version: str | None, now: datetime
) -> DeviceProgress:
    """An installing device's record once it reports the version it runs (None: install failed).

    During a rollback, a device that finishes swapping back is rolled back, and one that finishes
    a forward install begun before the rollback has succeeded (the planner then rolls it back).
    A report for a device already in a terminal step (a repeat: delivery is at-least-once; or
    one after its timeout) records the version and keeps the step: a retry of a timed-out
    device that did install finds it on the target and skips it.
    """
    if progress.terminal:
        return dataclasses.replace(
            progress, installed_version=installed_version or progress.installed_version
        )
    if installed_version == rollout.version:
        rolling_back = rollout.phase in {_P.ROLLING_BACK, _P.ROLLED_BACK}
        step = DeviceStep.ROLLED_BACK if rolling_back else DeviceStep.SUCCEEDED
    elif installed_version == rollout.spec.target_version:
        step = DeviceStep.SUCCEEDED
    else:
        step = DeviceStep.FAILED
    recorded = move(progress, step, now)
    if installed_version is None:
        return recorded
    return dataclasses.replace(recorded, installed_version=installed_version)
