"""Backoff: exact delays through an injected ``uniform``; bounds with the real random."""

from __future__ import annotations

import random

import pytest

from edge.agent.backoff import BACKOFF_INITIAL_S, BACKOFF_MAX_S, Backoff


class UpperBound:
    """A ``uniform`` that always returns the upper bound and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return high


def test_defaults_double_from_one_second_to_the_cap_and_hold_it() -> None:
    uniform = UpperBound()
    backoff = Backoff(uniform=uniform)

    delays = [backoff.next() for _ in range(10)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 120.0, 120.0, 120.0]
    assert uniform.calls == [(0.0, d) for d in delays]
    assert BACKOFF_INITIAL_S == 1.0
    assert BACKOFF_MAX_S == 120.0


@pytest.mark.parametrize(
    ("initial_s", "max_s", "expected"),
    [
        (0.5, 3.0, [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]),
        (2.0, 2.0, [2.0, 2.0, 2.0]),
        (0.25, 100.0, [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 100.0, 100.0]),
    ],
)
def test_cap_doubles_per_failure_until_max(
    initial_s: float, max_s: float, expected: list[float]
) -> None:
    backoff = Backoff(initial_s, max_s, uniform=UpperBound())

    assert [backoff.next() for _ in expected] == expected


def test_lower_bound_is_always_zero_full_jitter() -> None:
    uniform = UpperBound()
    backoff = Backoff(uniform=uniform)
    for _ in range(12):
        backoff.next()

    assert {low for low, _ in uniform.calls} == {0.0}


def test_reset_starts_again_from_the_initial_cap() -> None:
    uniform = UpperBound()
    backoff = Backoff(1.0, 10.0, uniform=uniform)
    before = [backoff.next() for _ in range(6)]

    backoff.reset()
    after = [backoff.next() for _ in range(3)]

    assert before == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert after == [1.0, 2.0, 4.0]


def test_reset_before_any_failure_changes_nothing() -> None:
    backoff = Backoff(uniform=UpperBound())
    backoff.reset()
    backoff.reset()

    assert backoff.next() == BACKOFF_INITIAL_S


def test_the_value_uniform_returns_is_the_delay() -> None:
    backoff = Backoff(uniform=lambda _low, high: high / 4)

    assert [backoff.next() for _ in range(3)] == [0.25, 0.5, 1.0]


def test_real_random_delays_stay_within_zero_and_the_current_cap() -> None:
    backoff = Backoff()
    for _ in range(200):
        cap = BACKOFF_INITIAL_S
        for _ in range(12):
            delay = backoff.next()
            assert 0.0 <= delay <= cap
            cap = min(cap * 2, BACKOFF_MAX_S)
        backoff.reset()


def test_seeded_real_random_spreads_delays_across_the_whole_range() -> None:
    # A fleet must not come back in step: at the cap the delays cover [0, max], not one value.
    backoff = Backoff(uniform=random.Random(20240611).uniform)
    for _ in range(8):
        backoff.next()  # reach the cap

    delays = [backoff.next() for _ in range(2000)]

    assert all(0.0 <= d <= BACKOFF_MAX_S for d in delays)
    assert min(delays) < BACKOFF_MAX_S * 0.05
    assert max(delays) > BACKOFF_MAX_S * 0.95
    assert len(set(delays)) == len(delays)
