"""The ``packages`` report from the store's versions and the work under way, and its pace. Pure.

The report is retained, so each one is the whole picture: every package name the store holds or
the agent works on, at most ``MAX_PACKAGES`` (names with work first, then the rest by name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from edge.protocol import PackagePhase, PackageReport, PackageState
from edge.protocol.packages import MAX_PACKAGES

MAX_DETAIL_CHARS = 200
"""A detail is for a person reading the fleet's state; the whole error is in the agent's log."""

MIN_REPORT_INTERVAL_S = 1.0
"""Reports of download progress alone go out at most this often."""

PROGRESS_INTERVAL_S = 3.0
"""Download progress alone makes a new report at most this often."""


@dataclass(frozen=True)
class Versions:
    """What the store holds for one name."""

    installed: int | None = None
    previous: int | None = None


@dataclass(frozen=True)
class Progress:
    """Where the work on one name's target stands."""

    target: int | None
    rollout_id: str
    phase: PackagePhase
    bytes_done: int = 0
    bytes_total: int = 0
    reason: str = ""
    detail: str = ""
    at: datetime | None = None


def package_report(
    versions: Mapping[str, Versions], work: Mapping[str, Progress], at: datetime
) -> PackageReport:
    """One state per name: ``versions`` from the store, ``work`` from the package manager."""
    names = sorted(work) + sorted(set(versions) - set(work))
    states = [_state(name, versions.get(name, Versions()), work.get(name)) for name in names]
    return PackageReport(packages=states[:MAX_PACKAGES], at=at)


def _state(name: str, versions: Versions, progress: Progress | None) -> PackageState:
    if progress is None:
        # Installed, and no target names it: it stays as it is.
        return PackageState(
            name=name,
            installed=versions.installed,
            previous=versions.previous,
            phase=PackagePhase.INSTALLED,
        )
    return PackageState(
        name=name,
        installed=versions.installed,
        previous=versions.previous,
        target=progress.target,
        rollout_id=progress.rollout_id,
        phase=progress.phase,
        bytes_done=progress.bytes_done,
        bytes_total=progress.bytes_total,
        reason=progress.reason,
        detail=progress.detail[:MAX_DETAIL_CHARS],
        at=progress.at,
    )


class Pace:
    """When a progress report may go out: ``MIN_REPORT_INTERVAL_S`` after the last report."""

    def __init__(self, min_interval_s: float = MIN_REPORT_INTERVAL_S) -> None:
        self._min_interval_s = min_interval_s
        self._last: float | None = None

    def wait_s(self, now: float) -> float:
        """Seconds to wait before publishing at monotonic time ``now``."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self._min_interval_s - now)

    def published(self, now: float) -> None:
        self._last = now
