"""How a wave is judged: wait, advance, or pause, from the steps of the devices it adds. Pure.

Judged devices are those that finished with a verdict: succeeded or skipped (already on the
target) count as successes, failed (timed-out included) as failures. Incompatible and cancelled
devices are not judged: the package never applied to them.

Tiny waves and ``min_finished``: the failure rule needs ``min(min_finished, judgeable devices
of the wave)`` judged devices, so a wave smaller than the minimum is judged only once all of it
has finished. One early failure in a canary of 3 therefore does not pause; if it is still the
only failure when the other two finish, 1/3 is above 10 % and the rollout pauses then. A
finished wave below the success threshold pauses too, so a rollout never sits waiting for a
share it can no longer reach.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from .spec import RolloutState
from .states import DeviceProgress, DeviceStep, PauseReason
from .steps import PauseRollout


class Verdict(StrEnum):
    WAIT = "wait"
    ADVANCE = "advance"


@dataclass(frozen=True, slots=True)
class WaveTally:
    """Counts of one wave's own devices (those it adds to the earlier waves)."""

    size: int
    succeeded: int
    failed: int
    not_judged: int
    finished: bool
    """Every device of the wave is in a terminal step."""

    @property
    def judged(self) -> int:
        return self.succeeded + self.failed

    @property
    def judgeable(self) -> int:
        return self.size - self.not_judged


def tally(rollout: RolloutState, devices: Mapping[str, DeviceProgress]) -> WaveTally:
    """The current wave's counts."""
    members = rollout.members[rollout.wave]
    steps = Counter(devices[device].step for device in members)
    return WaveTally(
        size=len(members),
        succeeded=steps[DeviceStep.SUCCEEDED] + steps[DeviceStep.SKIPPED_ALREADY_INSTALLED],
        failed=steps[DeviceStep.FAILED],
        not_judged=steps[DeviceStep.INCOMPATIBLE] + steps[DeviceStep.CANCELLED],
        finished=all(devices[device].terminal for device in members),
    )


def judge(rollout: RolloutState, devices: Mapping[str, DeviceProgress]) -> Verdict | PauseRollout:
    """Whether the current wave waits or advances, or the pause (and why) it calls for."""
    counts = tally(rollout, devices)
    spec = rollout.spec
    if rollout.waived_wave == rollout.wave:
        return Verdict.ADVANCE if counts.finished else Verdict.WAIT
    enough = counts.judged >= min(spec.min_finished, counts.judgeable)
    if counts.judged and enough:
        failed_share = Fraction(counts.failed, counts.judged)
        if failed_share > spec.failure_threshold:
            detail = (
                f"wave {rollout.wave + 1}: {counts.failed} of {counts.judged} finished devices"
                f" failed ({float(failed_share):.1%} > {float(spec.failure_threshold):.1%})"
            )
            return PauseRollout(PauseReason.FAILURE_THRESHOLD, detail)
    if not counts.finished:
        return Verdict.WAIT
    # A wave where nothing could be judged (all incompatible) has nothing to hold it back.
    if counts.judged and Fraction(counts.succeeded, counts.judged) < spec.success_threshold:
        detail = (
            f"wave {rollout.wave + 1} finished with {counts.succeeded} of {counts.judged}"
            f" succeeded (below {float(spec.success_threshold):.1%})"
        )
        return PauseRollout(PauseReason.BELOW_SUCCESS_THRESHOLD, detail)
    return Verdict.ADVANCE
