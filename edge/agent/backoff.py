"""Reconnect delays: exponential, capped and jittered.

Jitter spreads a fleet that lost its broker, so it does not come back all in the same second.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 120.0
BACKOFF_FACTOR = 2.0


class Backoff:
    """``next()`` returns the delay before the next attempt; ``reset()`` after a success.

    "Full jitter": the delay is drawn uniformly from [0, cap], where the cap doubles per failure
    up to BACKOFF_MAX_S. ``uniform`` is injectable so tests see exact values.
    """

    def __init__(
        self,
        initial_s: float = BACKOFF_INITIAL_S,
        max_s: float = BACKOFF_MAX_S,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._initial = min(initial_s, max_s)
        self._max = max_s
        self._uniform = uniform
        self._cap = self._initial

    def next(self) -> float:
        delay = self._uniform(0.0, self._cap)
        self._cap = min(self._cap * BACKOFF_FACTOR, self._max)
        return delay

    def reset(self) -> None:
        self._cap = self._initial
