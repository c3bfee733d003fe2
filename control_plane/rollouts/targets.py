"""Which version of each package a device is told to run, and when it may install it. Pure.

A device may be in several rollouts of one package over time (3, then 4, then a rollback of
4). Its notice names, per package, the version of the newest rollout that has reached it
(``Assignment.created`` orders them): a device a rollout has not notified yet, or has let go of
(cancelled, failed, incompatible), keeps the target of the rollout before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from edge.protocol import InstallWhen, PackageKind

from .spec import InstallPolicy
from .states import DeviceStep

_S = DeviceStep

# Steps in which a rollout's version is the device's target. A failed device kept its old
# version: holding it to the failed target would have it download again on every reconnect.
HOLDS_TARGET = frozenset(
    {
        _S.NOTIFIED,
        _S.DOWNLOADING,
        _S.DOWNLOADED,
        _S.WAITING_FOR_WINDOW,
        _S.INSTALLING,
        _S.SUCCEEDED,
        _S.SKIPPED_ALREADY_INSTALLED,
        _S.ROLLED_BACK,
    }
)
_SETTLED = frozenset({_S.SUCCEEDED, _S.SKIPPED_ALREADY_INSTALLED, _S.ROLLED_BACK})


@dataclass(frozen=True, slots=True)
class Assignment:
    """One rollout's claim on one device: the version it sends and the device's step in it."""

    rollout_id: str
    created: datetime
    package_name: str
    kind: PackageKind
    version: int
    step: DeviceStep
    policy: InstallPolicy
    allow_older: bool = False
    rolling_back: bool = False
    """The rollout is turning back: its version is the previous one."""
    peripheral: str = ""


def current_targets(assignments: Iterable[Assignment]) -> dict[str, Assignment]:
    """Per package name, the assignment whose version the device should run (see above)."""
    chosen: dict[str, Assignment] = {}
    for assignment in sorted(assignments, key=lambda a: (a.created, a.rollout_id)):
        if assignment.step in HOLDS_TARGET:
            chosen[assignment.package_name] = assignment
    return chosen


def permission(assignment: Assignment) -> InstallWhen:
    """When a device may swap the assignment's version in.

    ``now`` only once the planner said so (``Install``/``RollBack``: the site is closed). A
    device that already runs the version may reinstall it when idle (a replaced disk), never
    in the middle of opening hours' traffic. During a rollback, a succeeded device waits for its
    own ``RollBack`` like any install.
    """
    step, policy = assignment.step, assignment.policy
    if step is _S.INSTALLING:
        return InstallWhen.NOW
    waits_for_rollback = assignment.rolling_back and step is _S.SUCCEEDED
    if (step in _SETTLED and not waits_for_rollback) or policy is InstallPolicy.WHEN_IDLE:
        return InstallWhen.WHEN_IDLE
    return InstallWhen.NOT_YET
