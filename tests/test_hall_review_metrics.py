"""Each hall's bad reviews (差评) of the last hour as gauges, counted from a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from control_plane.db.review_models import ReviewRow
from control_plane.hall_review_metrics import HallReviewGauges, tally_by_site, top_halls
from edge.protocol import Rating
from tests.support.review_stand import NOW, Stand, rating, review_stand

NAME = "termfleet_hall_reviews_last_hour"
CONGHUA = {"city": "4401", "district": "440117"}


@pytest.fixture
async def stand(database_url: str) -> AsyncIterator[Stand]:
    async with review_stand(database_url) as result:
        yield result


def hall(stand: Stand, site: str, level: str, rating_class: str) -> float | None:
    labels = {"site": site, **CONGHUA, "level": level, "rating_class": rating_class}
    return stand.registry.get_sample_value(NAME, labels)


def listed_sites(stand: Stand) -> set[str]:
    return {
        sample.labels["site"]
        for metric in stand.registry.collect()
        if metric.name == NAME
        for sample in metric.samples
    }


async def test_halls_with_bad_reviews_show_bad_and_all_with_their_labels(stand: Stand) -> None:
    gauges = HallReviewGauges(lambda: stand.now)
    stand.registry.register(gauges)
    await stand.send("pad-v1", rating(1, "C-1", Rating.DISSATISFIED))
    await stand.send("pad-v1", rating(2, "C-2", Rating.VERY_DISSATISFIED))
    await stand.send("pad-v1", rating(3, "C-3", Rating.SATISFIED))
    await stand.send("pad-town1", rating(1, "C-4", Rating.DISSATISFIED))
    await stand.send("pad-town1", rating(2, "C-5", Rating.BASIC))
    await stand.send("pad-hall", rating(1, "C-6", Rating.VERY_SATISFIED))  # no bad: absent
    await gauges.count()
    assert hall(stand, "s440117101001", "village", "bad") == 2
    assert hall(stand, "s440117101001", "village", "all") == 3
    assert hall(stand, "s440117101", "town", "bad") == 1
    assert hall(stand, "s440117101", "town", "all") == 2
    assert listed_sites(stand) == {"s440117101001", "s440117101"}


async def test_only_the_last_hour_counts(stand: Stand) -> None:
    gauges = HallReviewGauges(lambda: stand.now)
    await stand.send("pad-v1", rating(1, "C-1", Rating.DISSATISFIED))
    stand.now = NOW + timedelta(minutes=40)
    await stand.send("pad-v1", rating(2, "C-2", Rating.DISSATISFIED))
    await stand.send("pad-v2", rating(1, "C-3", Rating.DISSATISFIED))
    stand.now = NOW + timedelta(minutes=59)
    await gauges.count()
    assert {(h.site, h.bad, h.all) for h in gauges.halls} == {
        ("s440117101001", 2, 2),
        ("s440117101002", 1, 1),
    }
    stand.now = NOW + timedelta(minutes=61)  # the first review is out of the window
    await gauges.count()
    assert {(h.site, h.bad) for h in gauges.halls} == {("s440117101001", 1), ("s440117101002", 1)}
    stand.now = NOW + timedelta(minutes=101)  # all out: no hall listed
    await gauges.count()
    assert gauges.halls == []
    # Reviews stored after an empty window are still found (the id floor moved past none).
    await stand.send("pad-v3", rating(1, "C-4", Rating.VERY_DISSATISFIED))
    await gauges.count()
    assert [(h.site, h.bad, h.all) for h in gauges.halls] == [("s440117102001", 1, 1)]


async def test_only_the_top_halls_are_listed_most_bad_first_ties_by_code(stand: Stand) -> None:
    gauges = HallReviewGauges(lambda: stand.now, top=2)
    stand.registry.register(gauges)
    await stand.send("pad-v3", rating(1, "C-1", Rating.DISSATISFIED))
    await stand.send("pad-v3", rating(2, "C-2", Rating.DISSATISFIED))
    await stand.send("pad-v2", rating(1, "C-3", Rating.DISSATISFIED))
    await stand.send("pad-v1", rating(1, "C-4", Rating.DISSATISFIED))
    await gauges.count()
    assert [h.site for h in gauges.halls] == ["s440117102001", "s440117101001"]
    assert listed_sites(stand) == {"s440117102001", "s440117101001"}


async def test_defaults_and_voided_reviews_do_not_count(stand: Stand) -> None:
    gauges = HallReviewGauges(lambda: stand.now)
    await stand.send("pad-v1", rating(1, "C-1", Rating.DISSATISFIED))
    await stand.send("pad-v1", rating(2, "C-2", Rating.DISSATISFIED))
    await stand.send("pad-v1", rating(3, "C-3", Rating.SATISFIED))
    await ReviewRow.filter(case_number="C-2").update(voided_at=NOW)  # an appeal upheld
    await ReviewRow.filter(case_number="C-3").update(source="default")  # 基本满意 by default
    await gauges.count()
    assert [(h.site, h.bad, h.all) for h in gauges.halls] == [("s440117101001", 1, 1)]


def test_tally_and_ranking_are_pure() -> None:
    rows = [(7, "dissatisfied", 2), (7, "satisfied", 5), (None, "dissatisfied", 9), (8, "basic", 1)]
    assert tally_by_site(rows) == {7: (2, 7), 8: (0, 1)}
    counts = {"b": (3, 4), "a": (3, 9), "c": (5, 5), "d": (0, 8)}
    assert top_halls(counts, 10) == [("c", 5, 5), ("a", 3, 9), ("b", 3, 4)]
    assert top_halls(counts, 1) == [("c", 5, 5)]
