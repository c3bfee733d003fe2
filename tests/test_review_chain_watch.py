"""Checking pads' hash chains as their reviews arrive: intact, tampered, a review removed.

Reviews go through the real ingest into a real database (tests/support/review_stand.py); the
chain watch's rounds run by hand with the stand's clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest

from control_plane import review_chain_watch
from control_plane.db.review_models import (
    ReviewChainProblem,
    ReviewChainTip,
    ReviewRefusal,
    ReviewRow,
)
from control_plane.review_chain_watch import GAP_GRACE, ChainWatch, watermark
from control_plane.reviews.chain_check import check as real_check
from edge.protocol import Channel, PrintJob, Rating, Review
from tests.support.review_stand import NOW, Stand, rating, review_stand


@pytest.fixture
async def stand(database_url: str) -> AsyncIterator[Stand]:
    async with review_stand(database_url) as result:
        yield result


async def check(stand: Stand) -> list[tuple[str, int, str]]:
    found = await ChainWatch(stand.metrics, lambda: stand.now).round()
    return [(device, problem.seq, problem.kind.value) for device, problem in found]


async def test_an_intact_chain_with_usage_between_its_reviews_is_checked_clean(
    stand: Stand,
) -> None:
    first = rating(1, "C-1", Rating.SATISFIED)
    second = rating(3, "C-2", Rating.VERY_SATISFIED, prev=first.hash)
    await stand.send("pad-v1", first)
    await stand.send("pad-v1", PrintJob(seq=2, at=NOW, pages=1), channel=Channel.USAGE)
    await stand.send("pad-v1", second)
    assert await check(stand) == []
    assert not await ReviewRow.filter(chain_checked=False).exists()
    tip = await ReviewChainTip.get(device_id="pad-v1")
    assert (tip.seq, tip.hash) == (3, second.hash)
    assert await check(stand) == []  # nothing left to check


async def test_a_review_altered_after_it_was_sealed_raises_the_alarm(stand: Stand) -> None:
    first = rating(1, "C-1", Rating.VERY_DISSATISFIED)
    # The rating changed on the pad after sealing: the hash no longer matches.
    altered = msgspec.structs.replace(first, rating=Rating.VERY_SATISFIED)
    await stand.send("pad-v2", altered)
    assert await check(stand) == [("pad-v2", 1, "hash_mismatch")]
    problem = await ReviewChainProblem.get(device_id="pad-v2")
    assert (problem.seq, problem.kind, problem.found) == (1, "hash_mismatch", first.hash)
    assert stand.metric("termfleet_review_chain_problems_total", kind="hash_mismatch") == 1


async def test_a_removed_review_shows_as_a_broken_link_once_its_gap_is_given_up(
    stand: Stand,
) -> None:
    first = rating(1, "C-1", Rating.SATISFIED)
    removed = rating(2, "C-2", Rating.VERY_DISSATISFIED, prev=first.hash)
    third = rating(3, "C-3", Rating.SATISFIED, prev=removed.hash)
    await stand.send("pad-town1", first)
    await stand.send("pad-town1", third)
    # Seq 2 may still come: only the first review is settled.
    assert await check(stand) == []
    unchecked = await ReviewRow.filter(chain_checked=False).values("seq")
    assert unchecked == [{"seq": 3}]
    stand.now = NOW + GAP_GRACE
    assert await check(stand) == [("pad-town1", 3, "broken_link")]
    assert stand.metric("termfleet_review_chain_problems_total", kind="broken_link") == 1


async def test_a_late_record_closes_the_gap_before_the_grace_ends(stand: Stand) -> None:
    first = rating(1, "C-1", Rating.SATISFIED)
    second = rating(2, "C-2", Rating.SATISFIED, prev=first.hash)
    third = rating(3, "C-3", Rating.SATISFIED, prev=second.hash)
    await stand.send("pad-v3", first)
    await stand.send("pad-v3", third)
    assert await check(stand) == []
    await stand.send("pad-v3", second)  # resent by the agent, out of order
    assert await check(stand) == []
    assert not await ReviewRow.filter(chain_checked=False).exists()


async def test_a_review_arriving_after_its_gap_was_given_up_is_checked_alone(
    stand: Stand,
) -> None:
    """Seq 2 comes after the chain was checked past it: a dead letter stored again, say.

    Before, the late review broke the order the check needs, the chain watch raised, and with
    it the control plane stopped, on every replica, every round.
    """
    first = rating(1, "C-1", Rating.SATISFIED)
    late = rating(2, "C-2", Rating.VERY_DISSATISFIED, prev=first.hash)
    third = rating(3, "C-3", Rating.SATISFIED, prev=late.hash)
    await stand.send("pad-late", first, third)
    stand.now = NOW + GAP_GRACE
    assert await check(stand) == [("pad-late", 3, "broken_link")]
    await stand.send("pad-late", late)
    assert await check(stand) == []  # its seal holds; its link was judged at seq 3
    assert not await ReviewRow.filter(chain_checked=False).exists()
    tip = await ReviewChainTip.get(device_id="pad-late")
    assert (tip.seq, tip.hash) == (3, third.hash)
    # One altered after sealing is still caught when it comes late.
    altered = msgspec.structs.replace(rating(4, "C-4", Rating.SATISFIED, prev=third.hash),
                                      rating=Rating.VERY_SATISFIED)  # fmt: skip
    fifth = rating(5, "C-5", Rating.SATISFIED, prev=altered.hash)
    await stand.send("pad-late", fifth)
    stand.now += GAP_GRACE
    assert await check(stand) == [("pad-late", 5, "broken_link")]
    await stand.send("pad-late", altered)
    assert await check(stand) == [("pad-late", 4, "hash_mismatch")]


async def test_a_pad_whose_check_fails_holds_up_no_other(
    stand: Stand, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect met in one pad's chain is logged; the other pads are checked all the same."""

    def failing_for_one_pad(tip: object, reviews: list[Review]) -> object:
        if reviews[0].case_number == "C-broken":
            raise ValueError("a defect")
        return real_check(tip, reviews)  # type: ignore[arg-type]

    monkeypatch.setattr(review_chain_watch, "check", failing_for_one_pad)
    await stand.send("pad-a", rating(1, "C-broken", Rating.SATISFIED))
    altered = msgspec.structs.replace(
        rating(1, "C-b", Rating.SATISFIED), rating=Rating.DISSATISFIED
    )
    await stand.send("pad-b", altered)
    assert await check(stand) == [("pad-b", 1, "hash_mismatch")]
    assert await ReviewRow.filter(device_id="pad-a", chain_checked=False).exists()


async def test_a_refused_second_rating_is_a_link_of_the_chain_not_a_break(
    stand: Stand,
) -> None:
    first = rating(1, "C-1", Rating.SATISFIED)
    duplicate = rating(2, "C-1", Rating.DISSATISFIED, prev=first.hash)
    after = rating(3, "C-2", Rating.SATISFIED, prev=duplicate.hash)
    await stand.send("pad-hall", first, duplicate, after)
    assert await check(stand) == []
    assert (await ReviewRefusal.get(seq=2)).chain_checked


async def test_a_pad_first_seen_mid_chain_anchors_on_its_first_stored_review(
    stand: Stand,
) -> None:
    earlier = rating(40, "C-0", Rating.SATISFIED)  # before the control plane kept reviews
    first_seen = rating(41, "C-1", Rating.SATISFIED, prev=earlier.hash)
    await stand.send("pad-v1", first_seen)
    assert await check(stand) == []
    restarted = rating(42, "C-2", Rating.SATISFIED)  # its log reset: GENESIS again
    await stand.send("pad-v1", restarted)
    assert await check(stand) == [("pad-v1", 42, "restarted")]


def test_the_watermark_stops_at_a_fresh_gap_and_passes_an_old_one() -> None:
    fresh, old = NOW, NOW - GAP_GRACE
    assert watermark(None, [], NOW) is None
    assert watermark(None, [(5, fresh), (6, fresh), (8, fresh)], NOW) == 6
    assert watermark(6, [(8, fresh)], NOW) == 6
    assert watermark(6, [(8, old), (9, fresh)], NOW) == 9
    assert watermark(6, [(5, fresh), (7, fresh)], NOW) == 7
    assert watermark(6, [(8, NOW - GAP_GRACE + timedelta(seconds=1))], NOW) == 6
