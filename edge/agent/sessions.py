"""The connection counter behind presence ordering: it only ever goes up, across restarts."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class FileSessionCounter:
    """Persists the last session number in ``state_dir/session`` (write, fsync, rename, fsync dir).

    The next number is the larger of "last + 1" and the wall clock in milliseconds: the counter
    keeps going up when the clock is set back, and a terminal whose state was wiped (factory
    reset, new disk) still outranks the presence the control plane stored for it earlier.
    """

    def __init__(self, state_dir: Path, clock_ms: Callable[[], int] = _wall_clock_ms) -> None:
        self._path = state_dir / "session"
        self._clock_ms = clock_ms

    def next(self) -> int:
        try:
            last = int(self._path.read_text().strip() or 0)
        except FileNotFoundError:
            last = 0
        except ValueError:
            # A torn or corrupted file: the wall clock below still keeps the counter going up.
            log.warning("session file %s is unreadable; continuing from the clock", self._path)
            last = 0
        value = max(last + 1, self._clock_ms())
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write(f"{value}\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self._path)
        # The rename is durable only once the directory entry is on disk (kiosks lose power).
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return value


class MemorySessionCounter:
    """For simulated terminals: starts above any earlier run by seeding from wall time."""

    def __init__(self, start: int) -> None:
        self._value = start

    def next(self) -> int:
        self._value += 1
        return self._value
