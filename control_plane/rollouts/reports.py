"""What a device's package report means for its step in a rollout. Pure.

The agent reports each package's phase (``edge.protocol.PackageState``) on a retained channel:
latest wins, so the control plane may see "installed" without ever seeing "downloading". A
report therefore moves the device along the shortest legal path to the step it implies
(``path_to``), never backwards, and a report about another target (an older rollout's, or the
version before a notification arrived) moves nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from edge.protocol import PackagePhase, PackageState

from .spec import RolloutState
from .states import DEVICE_TRANSITIONS, DeviceProgress, DeviceStep, RolloutPhase

_S = DeviceStep

# The step each reported phase implies, for a report about the rollout's own target.
_IMPLIED: Mapping[PackagePhase, DeviceStep] = {
    PackagePhase.DOWNLOADING: _S.DOWNLOADING,
    PackagePhase.STAGED: _S.DOWNLOADED,
    PackagePhase.FAILED: _S.FAILED,
}


def path_to(start: DeviceStep, goal: DeviceStep) -> tuple[DeviceStep, ...]:
    """The steps after ``start`` on the shortest legal way to ``goal`` (empty: none, or there)."""
    if start is goal:
        return ()
    came_from: dict[DeviceStep, DeviceStep] = {start: start}
    queue = deque([start])
    while queue:
        step = queue.popleft()
        for following in sorted(DEVICE_TRANSITIONS[step]):
            if following in came_from or following is _S.QUEUED:
                continue  # re-queueing is an operator's retry, never a report's doing
            came_from[following] = step
            if following is goal:
                return _walk_back(came_from, start, goal)
            queue.append(following)
    return ()


def _walk_back(
    came_from: Mapping[DeviceStep, DeviceStep], start: DeviceStep, goal: DeviceStep
) -> tuple[DeviceStep, ...]:
    path = [goal]
    while (before := came_from[path[-1]]) is not start:
        path.append(before)
    return tuple(reversed(path))


def implied_step(
    rollout: RolloutState, progress: DeviceProgress, report: PackageState
) -> DeviceStep | None:
    """The step ``report`` puts a device of ``rollout`` in, or None when it says nothing new.

    A device not yet notified, or already in a final step, is not moved by a report (the planner
    reads its installed version when it notifies it; a retried device starts over).
    """
    if progress.step is _S.QUEUED or progress.terminal:
        return None
    version = int(rollout.version)
    rolling_back = rollout.phase in {RolloutPhase.ROLLING_BACK, RolloutPhase.ROLLED_BACK}
    if report.installed == version and report.phase is PackagePhase.INSTALLED:
        if rolling_back and progress.step is _S.INSTALLING:
            return _S.ROLLED_BACK
        return None if rolling_back else _S.SUCCEEDED
    if report.target != version or report.rollout_id != rollout.spec.rollout_id:
        return None
    if report.phase is PackagePhase.INCOMPATIBLE:
        return _S.INCOMPATIBLE if progress.step is _S.NOTIFIED else _S.FAILED
    return _IMPLIED.get(report.phase)


def moves_for(
    rollout: RolloutState, progress: DeviceProgress, report: PackageState
) -> tuple[DeviceStep, ...]:
    """The steps, in order, a device goes through on ``report`` (empty: it stays)."""
    goal = implied_step(rollout, progress, report)
    return () if goal is None else path_to(progress.step, goal)
