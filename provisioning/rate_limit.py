"""Token buckets for claim attempts, keyed by serial and fleet-wide. Pure; the clock is given.

An 80-bit claim code cannot be guessed at any rate a broker carries; the limits keep a stuck
or hostile terminal from turning every attempt into a database transaction and a broker
command, and a burst of refusals shows up as ``rate_limited`` in the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_KEYS = 10_000
"""Buckets kept at once; full buckets are forgotten first (they carry no state)."""


@dataclass
class Bucket:
    capacity: float
    refill_per_s: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        # max(): a clock stepping back must not drain the bucket below empty.
        elapsed = max(0.0, now - self.at)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_s)
        self.at = max(self.at, now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class ClaimLimits:
    per_serial: int = 5
    """Attempts one serial may make at once; then one more every ``per_serial_every_s``."""
    per_serial_every_s: float = 60.0
    fleet_wide: int = 60
    """Attempts from every terminal together at once; then ``fleet_wide_per_s`` more each second."""
    fleet_wide_per_s: float = 1.0
    _serials: dict[str, Bucket] = field(default_factory=dict)
    _fleet: Bucket | None = None

    def allow(self, serial: str, now: float) -> bool:
        """Whether this attempt may go on; a refused attempt uses nothing up."""
        fleet = self._fleet or Bucket(self.fleet_wide, self.fleet_wide_per_s, self.fleet_wide, now)
        self._fleet = fleet
        bucket = self._serials.get(serial)
        if bucket is None:
            self._forget_full(now)
            bucket = Bucket(self.per_serial, 1 / self.per_serial_every_s, self.per_serial, now)
            self._serials[serial] = bucket
        if not bucket.take(now):
            return False
        if not fleet.take(now):
            bucket.tokens += 1  # give back: the fleet limit refused, not this serial's
            return False
        return True

    def _forget_full(self, now: float) -> None:
        if len(self._serials) < MAX_KEYS:
            return
        for serial, bucket in list(self._serials.items()):
            if bucket.tokens + (now - bucket.at) * bucket.refill_per_s >= bucket.capacity:
                del self._serials[serial]
        if len(self._serials) >= MAX_KEYS:  # all busy: forget the oldest half
            for serial in list(self._serials)[: MAX_KEYS // 2]:
                del self._serials[serial]
