"""What the planner asks the executor to do: device steps, rollout steps, and the plan. Pure.

A device step names the ``DeviceStep`` its device is in once the executor has carried it out;
``apply`` records exactly that, so the executor (and the tests) move devices one way only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from .spec import RolloutState
from .states import DeviceProgress, DeviceStep, PauseReason, RolloutPhase, move


@dataclass(frozen=True, slots=True)
class Notify:
    """Send the device its target: it downloads in the background, at any time."""

    device_id: str
    version: str
    allow_older: bool
    becomes: ClassVar[DeviceStep] = DeviceStep.NOTIFIED


@dataclass(frozen=True, slots=True)
class Install:
    """Tell the device it may install its staged version now."""

    device_id: str
    version: str
    becomes: ClassVar[DeviceStep] = DeviceStep.INSTALLING


@dataclass(frozen=True, slots=True)
class RollBack:
    """Tell a device on the target version to swap back to the version it kept."""

    device_id: str
    version: str
    becomes: ClassVar[DeviceStep] = DeviceStep.INSTALLING


@dataclass(frozen=True, slots=True)
class MarkWaiting:
    """Record that a staged device waits for its window (site closed, or idle, no session)."""

    device_id: str
    becomes: ClassVar[DeviceStep] = DeviceStep.WAITING_FOR_WINDOW


@dataclass(frozen=True, slots=True)
class MarkTimedOut:
    """Record a device that stayed too long in ``stuck_in`` as failed."""

    device_id: str
    stuck_in: DeviceStep
    becomes: ClassVar[DeviceStep] = DeviceStep.FAILED


@dataclass(frozen=True, slots=True)
class MarkSkipped:
    """Record a device that already runs the target version."""

    device_id: str
    becomes: ClassVar[DeviceStep] = DeviceStep.SKIPPED_ALREADY_INSTALLED


@dataclass(frozen=True, slots=True)
class MarkIncompatible:
    """Record a device the package does not fit."""

    device_id: str
    becomes: ClassVar[DeviceStep] = DeviceStep.INCOMPATIBLE


DeviceAction = (
    Notify | Install | RollBack | MarkWaiting | MarkTimedOut | MarkSkipped | MarkIncompatible
)
DEVICE_ACTIONS = (
    Notify,
    Install,
    RollBack,
    MarkWaiting,
    MarkTimedOut,
    MarkSkipped,
    MarkIncompatible,
)


@dataclass(frozen=True, slots=True)
class AdvanceWave:
    """The rollout moved on to wave ``wave``: its devices may now be notified."""

    wave: int


@dataclass(frozen=True, slots=True)
class PauseRollout:
    """The rollout paused itself; it stays paused until an operator resumes it."""

    reason: PauseReason
    detail: str


@dataclass(frozen=True, slots=True)
class CompleteRollout:
    """The rollout finished: ``COMPLETED``, or ``ROLLED_BACK`` at the end of a rollback."""

    phase: RolloutPhase


RolloutAction = AdvanceWave | PauseRollout | CompleteRollout
Step = DeviceAction | RolloutAction


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps to carry out, in order, and the rollout's state once they are."""

    steps: tuple[Step, ...]
    rollout: RolloutState

    def device_steps(self) -> tuple[DeviceAction, ...]:
        return tuple(step for step in self.steps if isinstance(step, DEVICE_ACTIONS))


def apply(
    plan: Plan, devices: Mapping[str, DeviceProgress], now: datetime
) -> dict[str, DeviceProgress]:
    """``devices`` with every device step of ``plan`` recorded at ``now``."""
    moved = dict(devices)
    for step in plan.device_steps():
        moved[step.device_id] = move(moved[step.device_id], step.becomes, now)
    return moved
