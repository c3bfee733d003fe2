"""Waves: cumulative shares of a fleet, and which devices fall in each wave. Pure.

Membership is reproducible and spread: devices are ordered by a hash of (rollout id, device id),
so a canary is not "the first ten ids" (often one hall), and the same rollout always picks the
same canary. Shares are exact fractions, so 10 % of 50 is 5 devices and never 6.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction

from .errors import RolloutSpecError

WHOLE = Fraction(1)
PERCENT = Fraction(1, 100)


def percent(value: int | str) -> Fraction:
    """``value`` per cent as an exact fraction (``percent("0.5")`` is 1/200)."""
    try:
        return Fraction(str(value)) * PERCENT
    except (ValueError, ZeroDivisionError) as error:
        msg = f"{value!r} is not a number of per cent"
        raise RolloutSpecError(msg, reason="invalid_share") from error


DEFAULT_WAVES = (percent(1), percent(10), percent(50), percent(100))


def check_shares(shares: Sequence[Fraction]) -> tuple[Fraction, ...]:
    """``shares`` if they are cumulative: above 0, strictly increasing, the last 100 %."""
    if not shares:
        msg = "a rollout needs at least one wave"
        raise RolloutSpecError(msg, reason="no_waves")
    for before, share in zip((Fraction(0), *shares), shares, strict=False):
        if share <= before:
            msg = (
                f"wave shares must increase above 0 %: {float(share):.2%} after {float(before):.2%}"
            )
            raise RolloutSpecError(msg, reason="waves_not_increasing")
    if shares[-1] != WHOLE:
        msg = f"the last wave must reach 100 %, not {float(shares[-1]):.2%}"
        raise RolloutSpecError(msg, reason="last_wave_not_whole")
    return tuple(shares)


def wave_order(rollout_id: str, device_ids: Iterable[str]) -> tuple[str, ...]:
    """``device_ids`` in the rollout's wave order: by a hash of (rollout id, device id)."""

    def key(device_id: str) -> tuple[bytes, str]:
        # NUL cannot occur in either id, so ("ab", "c") and ("a", "bc") never hash alike.
        digest = hashlib.sha256(f"{rollout_id}\0{device_id}".encode()).digest()
        return digest, device_id

    return tuple(sorted(device_ids, key=key))


def wave_sizes(shares: Sequence[Fraction], fleet_size: int) -> tuple[int, ...]:
    """Cumulative device counts per wave: ceil(share * N), each wave adding at least one device.

    A fleet smaller than the number of waves cannot give every wave a device; the waves that
    would add nobody are merged into the last one, so the result may be shorter than ``shares``.
    """
    sizes: list[int] = []
    reached = 0
    for share in shares:
        size = min(fleet_size, max(math.ceil(share * fleet_size), reached + 1))
        if size > reached:
            sizes.append(size)
            reached = size
    return tuple(sizes)


def split_waves(
    rollout_id: str, device_ids: Sequence[str], shares: Sequence[Fraction]
) -> tuple[tuple[str, ...], ...]:
    """The devices each wave adds, in wave order (wave k's cumulative set is waves 0..k)."""
    ordered = wave_order(rollout_id, device_ids)
    starts = (0, *wave_sizes(shares, len(ordered)))
    return tuple(ordered[start:end] for start, end in itertools.pairwise(starts))
