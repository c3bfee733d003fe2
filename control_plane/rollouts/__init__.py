"""Content, catalog and firmware rollouts: waves, per-device steps and the pure planner.

Nothing here does IO or reads the clock: the executor (elsewhere) stores the states, calls
``plan`` with the time and each site's maintenance window, and carries out the steps.
"""

from __future__ import annotations

from .errors import IllegalTransitionError, OperationError, RolloutError, RolloutSpecError
from .operations import cancel, install_outcome, pause, resume, retry_failed, rollback
from .planner import plan
from .spec import InstallPolicy, RolloutSpec, RolloutState
from .states import DeviceProgress, DeviceStep, PauseReason, RolloutPhase, move
from .steps import Plan, apply
from .waves import DEFAULT_WAVES, percent, split_waves, wave_order, wave_sizes

__all__ = [
    "DEFAULT_WAVES",
    "DeviceProgress",
    "DeviceStep",
    "IllegalTransitionError",
    "InstallPolicy",
    "OperationError",
    "PauseReason",
    "Plan",
    "RolloutError",
    "RolloutPhase",
    "RolloutSpec",
    "RolloutSpecError",
    "RolloutState",
    "apply",
    "cancel",
    "install_outcome",
    "move",
    "pause",
    "percent",
    "plan",
    "resume",
    "retry_failed",
    "rollback",
    "split_waves",
    "wave_order",
    "wave_sizes",
]
