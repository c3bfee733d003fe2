"""Whether a citizen is using the terminal, read from the usage records the agent sends. Pure.

Packages are swapped in only between citizens: never while a session (``session_started`` …
``session_ended``) is open, and with ``when_idle`` only after a quiet spell. The kiosk
application reports sessions; the tracker believes it, with one bound: a session open longer
than ``max_session_s`` no longer counts (the application crashed or restarted and never ended
it), or a single lost ``session_ended`` would block every install until the agent restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge.protocol import Record, Review, SessionEnded, SessionStarted, UsageRecord

log = logging.getLogger(__name__)

IDLE_AFTER_S = 600.0
"""No citizen for this long: the terminal is idle (the agent's ``[content] idle_after_s``)."""

MAX_SESSION_S = 30 * 60.0
"""A session open longer than this is taken for one whose end was lost."""


class CitizenActivity:
    """Open sessions and the last sign of a citizen, on the injected monotonic ``clock``.

    The terminal counts as busy since the tracker was made: after an agent restart nobody knows
    whether a citizen is in front of it, so the idle spell starts then.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        idle_after_s: float = IDLE_AFTER_S,
        max_session_s: float = MAX_SESSION_S,
    ) -> None:
        self._clock = clock
        self._idle_after_s = idle_after_s
        self._max_session_s = max_session_s
        self._open: dict[str, float] = {}
        """Session id → when it started."""
        self._last_seen = clock()

    def observe(self, record: Record) -> bool:
        """Take note of one record the agent sends; whether it told of a citizen."""
        if not isinstance(record, UsageRecord | Review):
            return False  # device events and the like are no citizen
        now = self._clock()
        self._last_seen = now
        if isinstance(record, SessionStarted):
            self._open[record.session_id] = now
        elif isinstance(record, SessionEnded):
            if record.session_id:
                self._open.pop(record.session_id, None)
            else:
                self._open.clear()  # an application without session ids has one at a time
        return True

    def in_session(self) -> bool:
        """Whether a citizen session is under way (one started recently and not ended)."""
        self._forget_stale()
        return bool(self._open)

    def idle(self) -> bool:
        """No session under way and no citizen seen for ``idle_after_s``."""
        return not self.in_session() and self._clock() - self._last_seen >= self._idle_after_s

    def _forget_stale(self) -> None:
        oldest = self._clock() - self._max_session_s
        for session_id, started in list(self._open.items()):
            if started <= oldest:
                log.warning(
                    "citizen session %r open for over %.0f s without an end; no longer counted",
                    session_id,
                    self._max_session_s,
                )
                del self._open[session_id]
