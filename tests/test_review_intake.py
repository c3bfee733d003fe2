"""Which ratings become their case's review: the pure rule of control_plane.reviews.intake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from control_plane.reviews.intake import Arrived, RefusalReason, Stored, decide
from edge.protocol import Rating, Review

T = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def arrived(
    device: str, seq: int, case: str, *, minutes: int = 0, clockless: bool = False
) -> Arrived:
    at = None if clockless else T + timedelta(minutes=minutes)
    review = Review(seq=seq, at=at, case_number=case, rating=Rating.SATISFIED)
    return Arrived(device, review, "{}", T + timedelta(minutes=minutes))


def test_the_first_rating_of_a_case_is_accepted() -> None:
    decision = decide([arrived("p", 1, "A")], {}, frozenset(), {})
    assert [a.key for a in decision.accepted] == [("p", 1)]
    assert decision.refused == ()


def test_a_rating_of_a_case_stored_by_another_record_is_a_duplicate() -> None:
    stored = {"A": Stored(("q", 9), "terminal")}
    decision = decide([arrived("p", 1, "A")], stored, frozenset(), {})
    assert [(r.arrived.key, r.reason) for r in decision.refused] == [
        (("p", 1), RefusalReason.DUPLICATE)
    ]


def test_the_stored_record_delivered_again_is_neither_accepted_nor_refused() -> None:
    stored = {"A": Stored(("p", 1), "terminal")}
    decision = decide([arrived("p", 1, "A")], stored, frozenset(), {})
    assert (decision.accepted, decision.refused) == ((), ())


def test_a_refused_record_delivered_again_is_skipped() -> None:
    stored = {"A": Stored(("q", 9), "terminal")}
    decision = decide([arrived("p", 1, "A")], stored, frozenset({("p", 1)}), {})
    assert (decision.accepted, decision.refused) == ((), ())


def test_after_a_default_any_rating_is_late() -> None:
    decision = decide([arrived("p", 1, "A")], {"A": Stored(None, "default")}, frozenset(), {})
    assert [r.reason for r in decision.refused] == [RefusalReason.LATE]


def test_a_rating_after_rate_by_is_late_and_at_rate_by_is_in_time() -> None:
    rate_by = {"A": T + timedelta(minutes=5), "B": T + timedelta(minutes=5)}
    decision = decide(
        [arrived("p", 1, "A", minutes=6), arrived("p", 2, "B", minutes=5)], {}, frozenset(), rate_by
    )
    assert [r.arrived.key for r in decision.refused] == [("p", 1)]
    assert [a.key for a in decision.accepted] == [("p", 2)]


def test_a_pad_without_a_clock_is_judged_by_arrival() -> None:
    rate_by = {"A": T + timedelta(minutes=5)}
    late = arrived("p", 1, "A", minutes=6, clockless=True)
    assert [r.reason for r in decide([late], {}, frozenset(), rate_by).refused] == [
        RefusalReason.LATE
    ]


def test_in_one_batch_the_earlier_rating_wins_whatever_the_order() -> None:
    early, late = arrived("p", 2, "A", minutes=1), arrived("p", 1, "A", minutes=2)
    for batch in ([early, late], [late, early]):
        decision = decide(batch, {}, frozenset(), {})
        assert [a.key for a in decision.accepted] == [("p", 2)]
        assert [r.arrived.key for r in decision.refused] == [("p", 1)]


@given(
    st.lists(
        st.tuples(
            st.sampled_from("pq"), st.integers(1, 6), st.sampled_from("ABC"), st.integers(0, 9)
        ),
        max_size=20,
    )
)
def test_every_case_has_at_most_one_accepted_and_every_record_one_outcome(
    items: list[tuple[str, int, str, int]],
) -> None:
    # One record per (device, seq): a record never changes its case.
    unique = {(d, s): (d, s, c, m) for d, s, c, m in items}
    batch = [arrived(d, s, c, minutes=m) for d, s, c, m in unique.values()]
    decision = decide(batch, {}, frozenset(), {})
    cases = [a.review.case_number for a in decision.accepted]
    assert len(cases) == len(set(cases))
    outcomes = [a.key for a in decision.accepted] + [r.arrived.key for r in decision.refused]
    assert sorted(outcomes) == sorted(unique)
