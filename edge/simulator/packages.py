"""Simulated terminals in rollouts: a real package manager per terminal that holds content.

Kiosks, station PCs and guidance booths each get the ``PackageManager`` a real agent has, with
its content store and downloads under the simulator's state directory, one directory per
device (``<state_dir>/<device_id>/content`` and ``downloads``, the names a real agent uses
under its own state_dir). Review pads get none: a pad (评价器) shows a window's rating keys and
offers no service items of its own (``edge.agent.catalog_report.CHANNELS``), so guide cards
and catalogs are not for it; a rollout that targets pads waits for them until its timeout.
Firmware packages need a flasher, which simulated terminals do not have: they report such
targets ``incompatible / no_peripherals``.

Downloads and installs run in the event loop's default executor, and so do every terminal's
peripheral polls and the broker connections' name lookups: ``fleet_executor`` sizes it for
the fleet.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edge.agent.backoff import Backoff
from edge.agent.citizen_activity import CitizenActivity
from edge.agent.package_setup import CONTENT_DIR, DOWNLOADS_DIR
from edge.agent.package_target import ManagerTiming
from edge.agent.package_work import FetchSettings
from edge.agent.packages import PackageManager
from edge.content.signing import TrustedKeys
from edge.protocol import DeviceKind

TAKES_PACKAGES = frozenset({DeviceKind.KIOSK, DeviceKind.STATION_PC, DeviceKind.BOOTH})
"""The kinds that offer service items, and so show guide cards and hold a catalog."""

SIMULATED_IDLE_AFTER_S = 10.0
"""A simulated terminal is idle after this long without a citizen (a real one: 10 minutes).

A simulated visit records its whole session at once, a minute apart on average (``termfleet
simulate --activity-rate 1``): ten quiet seconds come often, so ``--when-idle`` rollouts
install within seconds rather than waiting for a lull of ten minutes that never comes.
"""
SIMULATED_TIMING = ManagerTiming(tick_s=1.0, retry_after_s=5.0, progress_interval_s=1.0)
"""A real agent's clock ticks, but a failed round of downloads is tried again after 5 s, not 60."""
SIMULATED_FETCH = FetchSettings(attempts=3, timeout_s=10.0)

MAX_FLEET_THREADS = 256
"""The most worker threads a simulator takes, however many terminals it runs."""
THREADS_PER_TERMINAL = 2
"""A download (or install) and a peripheral poll can block a thread each at the same time."""


def package_manager(device_dir: Path, kind: DeviceKind, keys: TrustedKeys) -> PackageManager | None:
    """The manager of a simulated terminal of ``kind`` whose state is in ``device_dir``.

    None for a kind that takes no packages, and without any key: a terminal that can verify
    nothing would only report every target ``failed / no_keys``.
    """
    if kind not in TAKES_PACKAGES or not keys:
        return None
    return PackageManager(
        device_dir / CONTENT_DIR,
        device_dir / DOWNLOADS_DIR,
        keys,
        CitizenActivity(time.monotonic, idle_after_s=SIMULATED_IDLE_AFTER_S),
        fetch=SIMULATED_FETCH,
        timing=SIMULATED_TIMING,
        backoff=lambda: Backoff(initial_s=0.5, max_s=5.0),
    )


def default_executor_size() -> int:
    """What asyncio's default executor gets: ``min(32, cores + 4)`` (ThreadPoolExecutor's)."""
    return min(32, (os.cpu_count() or 1) + 4)


def fleet_executor_size(terminals: int) -> int:
    """Worker threads for a fleet of ``terminals``: two each, bounded, never below the default.

    Every download and install blocks a worker thread for its whole length, and a rollout
    starts the downloads of a wave together. With the default pool (6 threads on 2 cores) a
    wave of a few dozen terminals would hold every thread, and the other terminals' peripheral
    polls and reconnects (a name lookup is a thread too) would wait behind them: heartbeats
    late, terminals taken for offline. Idle threads cost nothing: the pool starts them on
    demand.
    """
    wanted = min(MAX_FLEET_THREADS, terminals * THREADS_PER_TERMINAL)
    return max(default_executor_size(), wanted)


def fleet_executor(terminals: int) -> ThreadPoolExecutor:
    """The default executor for the event loop of a fleet of ``terminals``."""
    return ThreadPoolExecutor(
        max_workers=fleet_executor_size(terminals), thread_name_prefix="simulated-fleet"
    )
