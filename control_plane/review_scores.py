"""The 好差评 league table (排名) of a period: counts from the database, ranked by the rule.

``review_queries.rating_counts`` counts the scoring reviews per group and rating (GROUP BY);
this module names each group and hands the counts to the pure ``reviews.scores.league_table``.
Groups are keyed for people and scripts alike: a window as ``SITE/NUMBER``, a site by its code,
a department by its code, a level by its name. A review that belongs to no group of the table
(a pad placed at no window, a review naming no department, a site deleted since) still counts
in the overall score; ``unassigned`` says how many such reviews there are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from .db.models import Department, ServiceWindow, Site
from .review_period import Period
from .review_queries import Counted, Grouping, rating_counts
from .reviews.score_rule import LEVELS, ScoreRule
from .reviews.scores import (
    RatingCounts,
    Standing,
    bad_rate,
    display_score,
    exact_score,
    league_table,
    satisfaction_rate,
)

LOOKUP_CHUNK = 500
"""Ids per name lookup: far below either database's limit on a statement's parameters."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Group:
    """One entity of a table: its key, its name, and its counts."""

    key: str
    name: str
    counts: RatingCounts


async def scores(
    by: Grouping, period: Period, scope_path: str | None, rule: ScoreRule
) -> dict[str, Any]:
    """The league table of ``by`` over ``period`` within the subtree (None: the whole tree)."""
    counted = await rating_counts(by, period, scope_path)
    groups = await _groups(by, counted)
    names = {group.key: group.name for group in groups}
    table = league_table(((group.key, group.counts) for group in groups), rule)
    overall = sum((RatingCounts.of(ratings) for ratings in counted.values()), RatingCounts())
    in_table = sum((group.counts.rated for group in groups), 0)
    return {
        "by": by.value,
        "month": period.month,
        "since": period.start.isoformat(),
        "until": period.end.isoformat(),
        "rule": rule_view(rule),
        "items": [standing_view(standing, names[standing.key]) for standing in table],
        "overall": counts_view(overall, rule),
        "unassigned": overall.rated - in_table,
    }


def rule_view(rule: ScoreRule) -> dict[str, Any]:
    return {
        "points": {level.value: float(rule.points_for(level)) for level in LEVELS},
        "min_reviews": rule.min_reviews,
        "decimals": rule.decimals,
    }


def counts_view(counts: RatingCounts, rule: ScoreRule) -> dict[str, Any]:
    """Counts with their score (rounded half up to the rule's decimals) and rates."""
    exact = exact_score(counts, rule)
    return {
        "score": None if exact is None else display_score(exact, rule.decimals),
        "reviews": counts.rated,
        "bad": counts.bad,
        "satisfaction_rate": satisfaction_rate(counts),
        "bad_rate": bad_rate(counts),
        "counts": dict(zip((level.value for level in LEVELS), counts.values(), strict=True)),
    }


def standing_view(standing: Standing, name: str) -> dict[str, Any]:
    return {
        "rank": standing.rank,
        "key": standing.key,
        "name": name,
        "score": standing.score,
        "reviews": standing.counts.rated,
        "bad": standing.counts.bad,
        "satisfaction_rate": standing.satisfaction_rate,
        "bad_rate": standing.bad_rate,
        "counts": dict(
            zip((level.value for level in LEVELS), standing.counts.values(), strict=True)
        ),
    }


# --- naming the groups ------------------------------------------------------------------------


async def _groups(by: Grouping, counted: Counted) -> list[Group]:
    if by is Grouping.WINDOW:
        return await _windows(counted)
    if by is Grouping.SITE:
        return await _sites(counted)
    if by is Grouping.DEPARTMENT:
        return await _departments(counted)
    return await _levels(counted)


async def _windows(counted: Counted) -> list[Group]:
    named: dict[int, tuple[str, str]] = {}
    for chunk in _chunks(key for key in counted if key is not None):
        rows = await ServiceWindow.filter(id__in=chunk).values_list(
            "id", "number", "site__code", "site__name"
        )
        named |= {
            int(i): (f"{code}/{number}", f"{number} {name}") for i, number, code, name in rows
        }
    return [
        _group(named.get(key), f"window#{key}", ratings)
        for key, ratings in counted.items()
        if key is not None
    ]


async def _site_rows(ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
    """Site id → (code, name, level)."""
    found: dict[int, tuple[str, str, str]] = {}
    for chunk in _chunks(ids):
        rows = await Site.filter(id__in=chunk).values_list("id", "code", "name", "level")
        found |= {int(i): (str(code), str(name), str(level)) for i, code, name, level in rows}
    return found


async def _sites(counted: Counted) -> list[Group]:
    sites = await _site_rows(key for key in counted if key is not None)
    return [
        _group(sites[key][:2] if key in sites else None, f"site#{key}", ratings)
        for key, ratings in counted.items()
        if key is not None
    ]


async def _departments(counted: Counted) -> list[Group]:
    names: dict[str, str] = {}
    for chunk in _chunks(key for key in counted if key):
        rows = await Department.filter(code__in=chunk).values_list("code", "name")
        names |= {str(code): str(name) for code, name in rows}
    return [
        Group(str(key), names.get(str(key), str(key)), RatingCounts.of(ratings))
        for key, ratings in counted.items()
        if key  # "" or None: the review named no department
    ]


async def _levels(counted: Counted) -> list[Group]:
    sites = await _site_rows(key for key in counted if key is not None)
    by_level: dict[str, Counter[str]] = {}
    for site_id, ratings in counted.items():
        if site_id in sites:  # a pad placed nowhere, or a site deleted since: no level
            by_level.setdefault(sites[site_id][2], Counter()).update(ratings)
    return [Group(level, level, RatingCounts.of(ratings)) for level, ratings in by_level.items()]


def _group(named: tuple[str, str] | None, missing: str, ratings: dict[str, int]) -> Group:
    """A group by its (key, name); one deleted since keeps its reviews under ``missing``."""
    key, name = named or (missing, f"{missing} (deleted)")
    return Group(key, name, RatingCounts.of(ratings))


def _chunks(values: Iterable[T]) -> Iterator[list[T]]:
    listed = list(values)
    for start in range(0, len(listed), LOOKUP_CHUNK):
        yield listed[start : start + LOOKUP_CHUNK]
