"""The closed sets of per-device steps and rollout phases, and the one place each changes. Pure.

A device's step only moves along ``DEVICE_TRANSITIONS`` and a rollout's phase only along
``PHASE_TRANSITIONS``; anything else is an ``IllegalTransitionError`` naming what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .errors import IllegalTransitionError


class DeviceStep(StrEnum):
    QUEUED = "queued"
    """Targeted, nothing sent yet (its wave may not have started)."""
    NOTIFIED = "notified"
    """Told the target version; the agent downloads it in the background."""
    DOWNLOADING = "downloading"
    """The agent reports the download under way (resumable)."""
    DOWNLOADED = "downloaded"
    """Downloaded and verified; the planner decides between installing now and waiting."""
    WAITING_FOR_WINDOW = "waiting_for_window"
    """Staged; waits for its site to close (or to be idle) and for no citizen session."""
    INSTALLING = "installing"
    """Told it may install now (or swap back, during a rollback)."""
    SUCCEEDED = "succeeded"
    """Runs the target version."""
    FAILED = "failed"
    """Download or install failed, or timed out; the agent kept the old version."""
    ROLLED_BACK = "rolled_back"
    """Was on the target version and swapped back to the previous one."""
    CANCELLED = "cancelled"
    """The rollout was cancelled or rolled back before this device began installing."""
    SKIPPED_ALREADY_INSTALLED = "skipped_already_installed"
    """Already ran the target version; nothing to do."""
    INCOMPATIBLE = "incompatible"
    """The package does not fit this terminal (kind, peripherals, agent version)."""


_S = DeviceStep

TERMINAL_STEPS = frozenset(
    {
        _S.SUCCEEDED,
        _S.FAILED,
        _S.ROLLED_BACK,
        _S.CANCELLED,
        _S.SKIPPED_ALREADY_INSTALLED,
        _S.INCOMPATIBLE,
    }
)
"""Steps the planner never moves a device out of; only an operator's retry or rollback does."""

# The agent may answer a notification with "already installed" or "incompatible" before it
# downloads. An install cannot be cancelled: the agent's swap is atomic and runs to its end.
# Only retry_failed re-queues (FAILED → QUEUED) and only a rollback re-installs a succeeded
# device (SUCCEEDED → INSTALLING, swapping back to the version it kept).
DEVICE_TRANSITIONS: Mapping[DeviceStep, frozenset[DeviceStep]] = {
    _S.QUEUED: frozenset(
        {_S.NOTIFIED, _S.SKIPPED_ALREADY_INSTALLED, _S.INCOMPATIBLE, _S.CANCELLED}
    ),
    _S.NOTIFIED: frozenset(
        {
            _S.DOWNLOADING,
            _S.DOWNLOADED,
            _S.FAILED,
            _S.CANCELLED,
            _S.SKIPPED_ALREADY_INSTALLED,
            _S.INCOMPATIBLE,
        }
    ),
    _S.DOWNLOADING: frozenset({_S.DOWNLOADED, _S.FAILED, _S.CANCELLED}),
    _S.DOWNLOADED: frozenset({_S.WAITING_FOR_WINDOW, _S.INSTALLING, _S.FAILED, _S.CANCELLED}),
    _S.WAITING_FOR_WINDOW: frozenset({_S.INSTALLING, _S.FAILED, _S.CANCELLED}),
    _S.INSTALLING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.ROLLED_BACK}),
    _S.SUCCEEDED: frozenset({_S.INSTALLING}),
    _S.FAILED: frozenset({_S.QUEUED}),
    _S.ROLLED_BACK: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.SKIPPED_ALREADY_INSTALLED: frozenset(),
    _S.INCOMPATIBLE: frozenset(),
}

NOT_YET_INSTALLING = frozenset(
    {_S.QUEUED, _S.NOTIFIED, _S.DOWNLOADING, _S.DOWNLOADED, _S.WAITING_FOR_WINDOW}
)
"""Steps a cancel or a rollback turns into ``CANCELLED``: the device never left its version."""


@dataclass(frozen=True, slots=True)
class DeviceProgress:
    """Where one device stands in one rollout, as the executor last recorded it."""

    step: DeviceStep
    step_since: datetime
    installed_version: str | None = None
    compatible: bool = True
    attempts: int = 0
    idle: bool = False
    """The terminal reports no citizen for a while (an install may run if the rollout allows)."""
    in_session: bool = False
    """A citizen is using the terminal right now: never install."""

    @property
    def terminal(self) -> bool:
        return self.step in TERMINAL_STEPS


def move(progress: DeviceProgress, step: DeviceStep, now: datetime) -> DeviceProgress:
    """``progress`` moved to ``step`` at ``now``, if the transition table allows it."""
    allowed = DEVICE_TRANSITIONS[progress.step]
    if step not in allowed:
        names = ", ".join(sorted(allowed)) or "nothing: it is final"
        msg = f"a {progress.step} device cannot become {step} (allowed: {names})"
        raise IllegalTransitionError(msg)
    # Re-queueing is a retry: counting it here keeps the count right whoever re-queues.
    attempts = progress.attempts + 1 if step is _S.QUEUED else progress.attempts
    return dataclasses.replace(progress, step=step, step_since=now, attempts=attempts)


class RolloutPhase(StrEnum):
    RUNNING = "running"
    """Waves advance as their thresholds are met."""
    PAUSED = "paused"
    """Nothing is sent until an operator resumes (or cancels, or rolls back)."""
    COMPLETED = "completed"
    """The last wave met its threshold and every device is in a terminal step."""
    CANCELLED = "cancelled"
    """Stopped by an operator; installs already under way run to their end."""
    ROLLING_BACK = "rolling_back"
    """Devices on the target version are swapping back to the previous version."""
    ROLLED_BACK = "rolled_back"
    """No device is left on the target version or installing. Final."""


class PauseReason(StrEnum):
    OPERATOR = "operator"
    FAILURE_THRESHOLD = "failure_threshold"
    """The wave's failed share passed the failure threshold."""
    BELOW_SUCCESS_THRESHOLD = "below_success_threshold"
    """The wave finished with a succeeded share under the success threshold."""


_P = RolloutPhase

# A completed rollout runs again when an operator retries its failed devices; any rollout that
# has touched devices may be rolled back; a rollback cannot itself be paused or cancelled.
PHASE_TRANSITIONS: Mapping[RolloutPhase, frozenset[RolloutPhase]] = {
    _P.RUNNING: frozenset({_P.PAUSED, _P.COMPLETED, _P.CANCELLED, _P.ROLLING_BACK}),
    _P.PAUSED: frozenset({_P.RUNNING, _P.CANCELLED, _P.ROLLING_BACK}),
    _P.COMPLETED: frozenset({_P.RUNNING, _P.ROLLING_BACK}),
    _P.CANCELLED: frozenset({_P.ROLLING_BACK}),
    _P.ROLLING_BACK: frozenset({_P.ROLLED_BACK}),
    _P.ROLLED_BACK: frozenset(),
}


def check_phase_move(current: RolloutPhase, target: RolloutPhase) -> RolloutPhase:
    """``target``, if a rollout may move there from ``current``."""
    allowed = PHASE_TRANSITIONS[current]
    if target not in allowed:
        names = ", ".join(sorted(allowed)) or "nothing: it is final"
        msg = f"a {current} rollout cannot become {target} (allowed: {names})"
        raise IllegalTransitionError(msg)
    return target
