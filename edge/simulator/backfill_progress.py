"""Progress of a backfill on stderr: a bar redrawn in place on a terminal, lines in a log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30
REDRAW_S = 0.2
"""A terminal's bar is redrawn at most this often."""
LINE_EVERY_S = 5.0
"""Without a terminal (a log file), a progress line at most this often."""
STALLED_AFTER_S = 60.0
"""Nothing acknowledged for this long: say so, the control plane may be down."""


class Progress:
    """Reports ``done`` of ``total`` for a phase (``what``), and a stall once it lasts."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._clock = clock
        self._shown_at = float("-inf")
        self._moved_at = clock()
        self._last_done = -1
        self._stall_said = False

    def update(self, what: str, done: int, total: int, *, final: bool = False) -> None:
        now = self._clock()
        if done != self._last_done:
            self._last_done, self._moved_at, self._stall_said = done, now, False
        elif not self._stall_said and now - self._moved_at >= STALLED_AFTER_S:
            self._stall_said = True
            self._write(
                ("\n" if self._tty else "")
                + f"{what}: nothing for {STALLED_AFTER_S:.0f}s; is the control plane running?"
                " (records wait in the outboxes; Ctrl-C and the next simulate delivers them)\n"
            )
        wait = REDRAW_S if self._tty else LINE_EVERY_S
        if not final and now - self._shown_at < wait:
            return
        self._shown_at = now
        share = done / total if total else 1.0
        text = f"{what}: {done:,}/{total:,} ({share:.0%})"
        if self._tty:
            filled = round(BAR_WIDTH * share)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self._write(f"\r[{bar}] {text}" + ("\n" if final else ""))
        else:
            self._write(text + "\n")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
