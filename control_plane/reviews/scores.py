"""好差评 satisfaction scores, 满意率 and 差评率, and the monthly league table (排名). Pure.

A score is the mean points per rated review under a ``ScoreRule`` (score_rule.py). Sums and
means are exact ``Fraction`` values: two entities with the same mean tie exactly, whatever
decimals the rule's points have; a float mean of 9.1- and 8.2-point reviews can differ in the
last bit between two equal scores and split a tie. Floats appear only in what is returned for
display. See docs/scores.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from math import floor

from edge.protocol.reviews import Rating

from .score_rule import (
    DEFAULT_RULE,
    LEVELS,
    ScoreRule,
    ScoreRuleError,
    load_score_rule,
    parse_score_rule,
)

__all__ = [
    "DEFAULT_RULE",
    "LEVELS",
    "RatingCounts",
    "ScoreRule",
    "ScoreRuleError",
    "Standing",
    "bad_rate",
    "display_score",
    "exact_score",
    "league_table",
    "load_score_rule",
    "parse_score_rule",
    "satisfaction_rate",
    "score",
]

_LEVEL_VALUES = frozenset(level.value for level in LEVELS)


@dataclass(frozen=True, slots=True)
class RatingCounts:
    """Rated reviews per level (field names are the ``Rating`` values); counts are >= 0.

    The caller leaves out what does not score: reviews rated ``unknown`` and reviews voided by
    an upheld appeal (申诉成立). A case not rated within the locality's time limit is counted
    as the level the locality defaults it to (Guangdong: 基本满意 basic) before it gets here.
    """

    very_satisfied: int = 0
    satisfied: int = 0
    basic: int = 0
    dissatisfied: int = 0
    very_dissatisfied: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int or value < 0:
                msg = f"{field.name}: a count is a whole number >= 0, not {value!r}"
                raise ValueError(msg)

    @classmethod
    def of(cls, counts: Mapping[Rating, int] | Mapping[str, int]) -> RatingCounts:
        """Counts from ``{Rating or its value: count}``; levels not named count 0.

        ``unknown`` and any other key are refused (ValueError): they must not reach a score.
        """
        # Rating is a StrEnum, so Rating.SATISFIED and "satisfied" are the same key here.
        if strange := sorted(str(key) for key in counts if key not in _LEVEL_VALUES):
            msg = f"not a rating level: {strange} (leave unknown and voided reviews out)"
            raise ValueError(msg)
        return cls(**{str(Rating(key).value): value for key, value in counts.items()})

    def __add__(self, other: object) -> RatingCounts:
        if not isinstance(other, RatingCounts):
            return NotImplemented
        return RatingCounts(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def values(self) -> tuple[int, ...]:
        """The counts in the order of ``LEVELS``, best first."""
        return tuple(getattr(self, level.value) for level in LEVELS)

    @property
    def rated(self) -> int:
        return sum(self.values())

    @property
    def bad(self) -> int:
        """差评: 不满意 and 非常不满意."""
        return self.dissatisfied + self.very_dissatisfied

    @property
    def satisfied_or_better(self) -> int:
        """基本满意 or better: what 满意率 counts."""
        return self.very_satisfied + self.satisfied + self.basic


def exact_score(counts: RatingCounts, rule: ScoreRule = DEFAULT_RULE) -> Fraction | None:
    """The mean points per rated review, exactly; None when nothing was rated."""
    if counts.rated == 0:
        return None
    total = sum(
        (
            rule.points_for(level) * count
            for level, count in zip(LEVELS, counts.values(), strict=True)
        ),
        start=Fraction(0),
    )
    return total / counts.rated


def score(counts: RatingCounts, rule: ScoreRule = DEFAULT_RULE) -> float | None:
    """The mean points per rated review as a float, unrounded; None when nothing was rated."""
    exact = exact_score(counts, rule)
    return None if exact is None else float(exact)


def display_score(exact: Fraction, decimals: int) -> float:
    """``exact`` rounded half up (四舍五入) to ``decimals``, from the exact value.

    ``round(8.125, 2)`` on a float gives 8.12 (half to even) and ``round(8.075, 2)`` gives 8.07
    (the float 8.075 is 8.07499…); published tables round half up, so they are 8.13 and 8.08.
    """
    scale = 10**decimals
    return float(Fraction(floor(exact * scale + Fraction(1, 2)), scale))


def satisfaction_rate(counts: RatingCounts) -> float | None:
    """满意率: the share of rated reviews at 基本满意 or better; None when nothing was rated."""
    return counts.satisfied_or_better / counts.rated if counts.rated else None


def bad_rate(counts: RatingCounts) -> float | None:
    """差评率: the share of rated reviews at 不满意 or 非常不满意; None when nothing was rated."""
    return counts.bad / counts.rated if counts.rated else None


@dataclass(frozen=True, slots=True)
class Standing:
    """One line of a league table: an entity (hall, department, window, staff) and its place."""

    key: str
    counts: RatingCounts
    exact_score: Fraction | None
    """What ranking compares; None when nothing was rated."""
    score: float | None
    """``exact_score`` rounded half up to the rule's decimals, for display."""
    satisfaction_rate: float | None
    bad_rate: float | None
    rank: int | None
    """1 is best; equal exact scores share a rank (1, 2, 2, 4). None: not ranked."""


def league_table(
    entries: Iterable[tuple[str, RatingCounts]], rule: ScoreRule = DEFAULT_RULE
) -> list[Standing]:
    """The ranked table of ``entries`` (key, counts): ranked first, then unranked, then unrated.

    Ranked: at least ``rule.min_reviews`` rated, by exact score, best first; ties share a rank
    and are listed by more rated reviews, then key. Unranked (too few rated): by exact score,
    then key. Unrated (nothing rated, no score): by key. A key given twice is a ValueError.
    """
    standings = [_standing(key, counts, rule) for key, counts in entries]
    if twice := sorted(key for key, n in Counter(s.key for s in standings).items() if n > 1):
        msg = f"keys given more than once: {twice}"
        raise ValueError(msg)
    scored = [(s.exact_score, s) for s in standings if s.exact_score is not None]
    ranked = sorted(
        ((exact, s) for exact, s in scored if s.counts.rated >= rule.min_reviews),
        key=lambda pair: (-pair[0], -pair[1].counts.rated, pair[1].key),
    )
    unranked = sorted(
        ((exact, s) for exact, s in scored if s.counts.rated < rule.min_reviews),
        key=lambda pair: (-pair[0], pair[1].key),
    )
    unrated = sorted((s for s in standings if s.exact_score is None), key=lambda s: s.key)
    return [*_competition_ranks(ranked), *(s for _, s in unranked), *unrated]


def _standing(key: str, counts: RatingCounts, rule: ScoreRule) -> Standing:
    exact = exact_score(counts, rule)
    shown = None if exact is None else display_score(exact, rule.decimals)
    return Standing(key, counts, exact, shown, satisfaction_rate(counts), bad_rate(counts), None)


def _competition_ranks(ordered: list[tuple[Fraction, Standing]]) -> list[Standing]:
    """Standard competition ranking (1, 2, 2, 4) over ``ordered`` (exact score, standing)."""
    out: list[Standing] = []
    previous: Fraction | None = None
    rank = 0
    for position, (exact, standing) in enumerate(ordered, start=1):
        if exact != previous:
            rank, previous = position, exact
        out.append(replace(standing, rank=rank))
    return out
