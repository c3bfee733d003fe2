"""The review binder: which case a pad's key press rates, and the presses that rate nothing."""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

import edge.agent.review_binding
from edge.agent.review_binding import PROMPT_TEMPLATE, ReviewBinder
from edge.protocol import CaseNotice, Channel, Rating, Review, ReviewChannel
from edge.protocol.codec import decode, encode

T0 = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def notice(
    case_number: str,
    ended_min: int | None = 0,
    *,
    item_code: str = "RS-0012",
    staff_id: str = "S0042",
    window: str = "W03",
) -> CaseNotice:
    ended = None if ended_min is None else T0 + timedelta(minutes=ended_min)
    return CaseNotice(
        case_number=case_number,
        item_code=item_code,
        staff_id=staff_id,
        window=window,
        ended_at=ended,
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def counters(binder: ReviewBinder) -> tuple[int, int, int]:
    return binder.unbound_presses, binder.repeat_ratings, binder.ignored_notices


def test_a_press_after_a_case_ended_rates_that_case() -> None:
    binder = ReviewBinder()
    prompt = binder.case_ended(
        notice("440117-2024-000123", item_code="GA-0007", staff_id="S7", window="W1")
    )
    assert prompt == "请评价 办件 440117-2024-000123"
    review = binder.rated(Rating.DISSATISFIED, at(1))
    assert review == Review(
        case_number="440117-2024-000123",
        item_code="GA-0007",
        channel=ReviewChannel.WINDOW_PAD,
        rating=Rating.DISSATISFIED,
        window="W1",
        staff_id="S7",
        at=at(1),
    )
    assert binder.awaiting is None
    assert counters(binder) == (0, 0, 0)


def test_the_review_is_a_record_the_outbox_numbers_and_the_ingest_accepts() -> None:
    binder = ReviewBinder()
    binder.case_ended(notice("C1"))
    review = binder.rated(Rating.VERY_SATISFIED, at(1))
    assert review is not None
    assert review.seq == 0  # the outbox gives the sequence number when it stores the record
    numbered = msgspec.structs.replace(review, seq=41)
    assert decode(Channel.REVIEW, encode(numbered)) == numbered


@pytest.mark.parametrize(
    ("steps", "reviews", "expected_counters"),
    [
        pytest.param([("press", Rating.SATISFIED)], [], (1, 0, 0), id="press-with-no-case"),
        pytest.param(
            [("end", "A"), ("press", Rating.SATISFIED), ("press", Rating.VERY_DISSATISFIED)],
            [("A", Rating.SATISFIED)],
            (0, 1, 0),
            id="second-press-is-a-repeat-rating",
        ),
        pytest.param(
            [("end", "A"), ("end", "B"), ("press", Rating.BASIC)],
            [("B", Rating.BASIC)],
            (0, 0, 0),
            id="a-later-case-replaces-the-awaited-one",
        ),
        pytest.param(
            [("end", "A"), ("end", "A"), ("press", Rating.BASIC), ("press", Rating.BASIC)],
            [("A", Rating.BASIC)],
            (0, 1, 0),
            id="a-repeated-notice-of-the-awaited-case-keeps-it",
        ),
        pytest.param(
            [("end", "A"), ("press", Rating.SATISFIED), ("end", "A"), ("press", Rating.BASIC)],
            [("A", Rating.SATISFIED)],
            (0, 1, 1),
            id="a-notice-of-a-rated-case-is-ignored",
        ),
        pytest.param(
            [("end", "A"), ("press", Rating.SATISFIED), ("end", "B"), ("press", Rating.BASIC)],
            [("A", Rating.SATISFIED), ("B", Rating.BASIC)],
            (0, 0, 0),
            id="one-rating-per-case-in-turn",
        ),
    ],
)
def test_presses_and_notices(
    steps: list[tuple[str, object]],
    reviews: list[tuple[str, Rating]],
    expected_counters: tuple[int, int, int],
) -> None:
    binder = ReviewBinder()
    made: list[tuple[str, Rating]] = []
    for minute, (step, value) in enumerate(steps):
        if step == "end":
            assert isinstance(value, str)
            binder.case_ended(notice(value, ended_min=None))
        else:
            assert isinstance(value, Rating)
            review = binder.rated(value, at(minute))
            if review is not None:
                made.append((review.case_number, review.rating))
    assert made == reviews
    assert counters(binder) == expected_counters


def test_a_late_notice_of_an_earlier_case_does_not_take_the_next_rating() -> None:
    binder = ReviewBinder()
    binder.case_ended(notice("A", ended_min=0))
    binder.case_ended(notice("B", ended_min=5))
    assert binder.case_ended(notice("A", ended_min=0)) is None  # redelivered after B
    review = binder.rated(Rating.SATISFIED, at(6))
    assert review is not None
    assert review.case_number == "B"
    # Still true once B is rated: A ended before the latest case this window announced.
    assert binder.case_ended(notice("A", ended_min=0)) is None
    assert binder.awaiting is None
    assert counters(binder) == (0, 0, 2)


def test_only_the_last_rated_cases_are_remembered() -> None:
    binder = ReviewBinder(remember=2)
    for case in ("A", "B", "C"):
        binder.case_ended(notice(case, ended_min=None))
        assert binder.rated(Rating.SATISFIED, at(1)) is not None
    assert binder.case_ended(notice("C", ended_min=None)) is None
    assert binder.case_ended(notice("B", ended_min=None)) is None
    assert binder.case_ended(notice("A", ended_min=None)) == "请评价 办件 A"  # forgotten


def test_an_awaited_case_expires_when_asked_to() -> None:
    binder = ReviewBinder(expire_after=timedelta(minutes=10))
    binder.case_ended(notice("A", ended_min=0))
    assert binder.rated(Rating.SATISFIED, at(10.5)) is None
    assert binder.awaiting is None
    assert counters(binder) == (1, 0, 0)
    binder.case_ended(notice("B", ended_min=20))
    assert binder.rated(Rating.SATISFIED, at(29)) is not None
    assert binder.rated(Rating.BASIC, at(29.5)) is None  # B was rated: a repeat …
    assert binder.rated(Rating.BASIC, at(31)) is None  # … until B's period is over
    assert counters(binder) == (2, 1, 0)


def test_cases_wait_for_their_rating_without_expiry_by_default() -> None:
    binder = ReviewBinder()
    binder.case_ended(notice("A", ended_min=0))
    review = binder.rated(Rating.SATISFIED, at(60 * 24 * 3))
    assert review is not None
    assert review.case_number == "A"


def test_the_prompt_template_can_be_set() -> None:
    binder = ReviewBinder(prompt_template="Please rate {case_number}")
    assert binder.case_ended(notice("A")) == "Please rate A"
    assert PROMPT_TEMPLATE.format(case_number="X") == "请评价 办件 X"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.case_ended(CaseNotice(case_number="")), "case number"),
        (lambda b: b.rated(Rating.UNKNOWN, T0), "UNKNOWN"),
        (lambda b: b.rated(Rating.BASIC, datetime(2024, 3, 5, 9, 30)), "time zone"),  # noqa: DTZ001
        (lambda _: ReviewBinder(remember=0), "at least 1"),
    ],
    ids=["notice-without-case-number", "unknown-rating", "naive-time", "remember-nothing"],
)
def test_mistakes_of_the_caller_are_clear_errors(
    call: Callable[[ReviewBinder], object], message: str
) -> None:
    binder = ReviewBinder()
    binder.case_ended(notice("A"))
    with pytest.raises(ValueError, match=message):
        call(binder)
    assert binder.awaiting is not None
    assert binder.awaiting.case_number == "A"
    assert counters(binder) == (0, 0, 0)


def test_the_binder_is_pure() -> None:
    source = Path(edge.agent.review_binding.__file__).read_text(encoding="utf-8")
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
    assert modules <= {"__future__", "collections", "datetime", "edge"}
