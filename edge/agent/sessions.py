"""The connection counter behind presence ordering: it only ever goes up, across restarts."""

from __future__ import annotations

import os
from pathlib import Path


class FileSessionCounter:
    """Persists the last session number in ``state_dir/session`` (write, fsync, rename)."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / "session"

    def next(self) -> int:
        try:
            last = int(self._path.read_text().strip() or 0)
        except FileNotFoundError:
            last = 0
        value = last + 1
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write(f"{value}\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self._path)
        return value


class MemorySessionCounter:
    """For simulated terminals: starts above any earlier run by seeding from wall time."""

    def __init__(self, start: int) -> None:
        self._value = start

    def next(self) -> int:
        self._value += 1
        return self._value
