"""Rollouts as the API shows them: a summary with per-wave counts, and pages of devices. Pure.

Waves are numbered from 1 here, as the planner's pause details say them ("wave 2: …"); the
executor counts from 0. A wave's counts are of the devices it adds to the waves before it, as
the planner judges them: succeeded (skipped ones too: they run the target), failed (timed out
too), not judged (incompatible, cancelled). Shares are of the judged devices, the same shares
the thresholds are compared with.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .paging import Page
from .rollout_store import Tracked
from .rollouts import DeviceProgress, DeviceStep, RolloutPhase
from .rollouts.waves import wave_sizes

SUCCEEDED = frozenset({DeviceStep.SUCCEEDED, DeviceStep.SKIPPED_ALREADY_INSTALLED})
NOT_JUDGED = frozenset({DeviceStep.INCOMPATIBLE, DeviceStep.CANCELLED})


def percent(share: Fraction) -> int | float:
    """``share`` in per cent, whole when it is (1/10 is 10, 1/200 is 0.5)."""
    value = share * 100
    return value.numerator if value.denominator == 1 else float(value)


def step_counts(progress: Iterable[DeviceProgress]) -> dict[str, int]:
    """How many devices are in each step, every step named (zero or not), in the enum's order."""
    counts = Counter(p.step for p in progress)
    return {step.value: counts[step] for step in DeviceStep}


def wave_shares(shares: Sequence[Fraction], fleet_size: int) -> list[Fraction]:
    """The share each wave that has devices was asked for; the last always reaches 100 %.

    A fleet smaller than the number of waves merges the waves that would add nobody into the
    last one (``waves.wave_sizes``), so fewer waves are shown than were asked for.
    """
    kept: list[Fraction] = []
    for end in range(1, len(shares) + 1):
        if len(wave_sizes(shares[:end], fleet_size)) > len(kept):
            kept.append(shares[end - 1])
    if kept:
        kept[-1] = Fraction(1)
    return kept


@dataclass(frozen=True, slots=True)
class WaveCounts:
    succeeded: int
    failed: int
    not_judged: int
    finished: int

    @property
    def judged(self) -> int:
        return self.succeeded + self.failed


def wave_counts(progress: Sequence[DeviceProgress]) -> WaveCounts:
    return WaveCounts(
        succeeded=sum(p.step in SUCCEEDED for p in progress),
        failed=sum(p.step is DeviceStep.FAILED for p in progress),
        not_judged=sum(p.step in NOT_JUDGED for p in progress),
        finished=sum(p.terminal for p in progress),
    )


def wave_views(tracked: Tracked) -> list[dict[str, Any]]:
    state = tracked.state
    shares = wave_shares(state.spec.waves, len(state.spec.device_ids))
    views = []
    reached = 0
    for index, members in enumerate(state.members):
        progress = [tracked.devices[device_id] for device_id in members]
        counts = wave_counts(progress)
        reached += len(members)
        judged = counts.judged
        views.append(
            {
                "number": index + 1,
                "percent": percent(shares[index]),
                "size": len(members),
                "reached": reached,
                "current": index == state.wave,
                "succeeded": counts.succeeded,
                "failed": counts.failed,
                "not_judged": counts.not_judged,
                "finished": counts.finished,
                "succeeded_share": percent(Fraction(counts.succeeded, judged)) if judged else None,
                "failed_share": percent(Fraction(counts.failed, judged)) if judged else None,
                "steps": step_counts(progress),
            }
        )
    return views


def rollout_view(tracked: Tracked) -> dict[str, Any]:
    """The rollout as ``GET /api/v1/rollouts/{id}`` answers it."""
    row, state = tracked.row, tracked.state
    spec = state.spec
    return {
        "id": tracked.rollout_id,
        "phase": state.phase.value,
        "final": tracked.final,
        "wave": state.wave + 1,
        "wave_count": len(state.members),
        "pause_reason": None if state.pause_reason is None else state.pause_reason.value,
        "pause_detail": row.pause_detail,
        "waived_wave": None if state.waived_wave is None else state.waived_wave + 1,
        "package": {
            "kind": row.package_kind,
            "name": row.package_name,
            "version": row.target_version,
            "sha256": row.target_sha256,
            "previous_version": row.previous_version,
            "previous_sha256": row.previous_sha256,
        },
        "peripheral": row.peripheral,
        "target": dict(row.target),
        "device_count": len(spec.device_ids),
        "steps": step_counts(tracked.devices.values()),
        "waves": wave_views(tracked),
        "wave_percents": [percent(share) for share in spec.waves],
        "success_threshold": percent(spec.success_threshold),
        "failure_threshold": percent(spec.failure_threshold),
        "min_finished": spec.min_finished,
        "device_timeout_s": int(spec.device_timeout.total_seconds()),
        "install_policy": spec.install_policy.value,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def audit_view(tracked: Tracked) -> dict[str, Any]:
    """What the audit log keeps of a rollout: what was asked and where it stands, no devices."""
    view = rollout_view(tracked)
    kept = ("phase", "wave", "pause_reason", "package", "target", "device_count")
    return {key: view[key] for key in kept} | {
        "waves": view["wave_percents"],
        "success_threshold": view["success_threshold"],
        "failure_threshold": view["failure_threshold"],
        "install_policy": view["install_policy"],
    }


# --- listings -----------------------------------------------------------------------------------


def rollout_page(
    rollouts: Iterable[Tracked],
    *,
    phase: RolloutPhase | None,
    package: str | None,
    after: str | None,
    limit: int,
) -> Page[str]:
    """Newest first (by creation, then id); ``after``: the id the previous page ended with."""
    chosen = sorted(
        (
            tracked
            for tracked in rollouts
            if (phase is None or tracked.state.phase is phase)
            and (package is None or tracked.row.package_name == package)
        ),
        key=lambda tracked: (tracked.row.created_at, tracked.rollout_id),
        reverse=True,
    )
    if after is not None:
        ids = [tracked.rollout_id for tracked in chosen]
        chosen = chosen[ids.index(after) + 1 :] if after in ids else []
    shown = chosen[:limit]
    next_after = shown[-1].rollout_id if len(chosen) > limit else None
    return Page([rollout_view(tracked) for tracked in shown], next_after)


def wave_index(tracked: Tracked) -> dict[str, int]:
    """Each device's wave, counted from 0."""
    return {d: index for index, members in enumerate(tracked.state.members) for d in members}


def device_view(tracked: Tracked, device_id: str, wave: int) -> dict[str, Any]:
    progress = tracked.devices[device_id]
    reason, detail = tracked.notes.get(device_id, ("", ""))
    installed = progress.installed_version
    return {
        "device_id": device_id,
        "wave": wave + 1,
        "step": progress.step.value,
        "since": progress.step_since.isoformat(),
        "attempts": progress.attempts,
        "reason": reason,
        "detail": detail,
        "installed_version": None if installed is None else int(installed),
    }


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Which of a rollout's devices a page lists; None (or no set) leaves a filter out."""

    step: DeviceStep | None = None
    wave: int | None = None
    """Counted from 0."""
    visible: Collection[str] | None = None
    """The devices the asking token may see; None: all."""

    def keeps(self, device_id: str, progress: DeviceProgress, wave: int) -> bool:
        return (
            (self.step is None or progress.step is self.step)
            and (self.wave is None or wave == self.wave)
            and (self.visible is None or device_id in self.visible)
        )


def device_page(
    tracked: Tracked, wanted: DeviceFilter, *, after: str | None, limit: int
) -> Page[str]:
    """The rollout's devices in id order after ``after``, as many as ``limit``, filtered."""
    ordered = tracked.state.spec.device_ids  # sorted: spec_of sorts them
    waves = wave_index(tracked)
    start = 0 if after is None else bisect.bisect_right(ordered, after)
    rows: list[str] = []
    for device_id in ordered[start:]:
        if wanted.keeps(device_id, tracked.devices[device_id], waves[device_id]):
            rows.append(device_id)
            if len(rows) > limit:
                break
    shown = rows[:limit]
    next_after = shown[-1] if len(rows) > limit else None
    return Page([device_view(tracked, d, waves[d]) for d in shown], next_after)
