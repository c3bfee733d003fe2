"""The scoring rule of 好差评: points per rating level, the ranking minimum, display decimals.

No national formula turns the five levels into a locality's 10-point score, so the default is a
choice (docs/scores.md): the national five-star mapping scaled linearly, stars x 2. A locality
with its own rule writes it in a TOML rule file, which is checked whole when read. Pure apart
from ``load_score_rule``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

from edge.protocol.reviews import Rating

LEVELS: tuple[Rating, ...] = (
    Rating.VERY_SATISFIED,
    Rating.SATISFIED,
    Rating.BASIC,
    Rating.DISSATISFIED,
    Rating.VERY_DISSATISFIED,
)
"""The five 好差评 levels, best first; ``Rating.UNKNOWN`` is not a level and never scores."""

POINTS_SCALE = 10
"""Points are on the province's 10-point scale (Jieyang's published 9.8 and 9.9 are on it)."""
MAX_DECIMALS = 4
"""More decimals than this would only display noise; scores are published to one or two."""
DEFAULT_MIN_REVIEWS = 10
DEFAULT_DECIMALS = 2

_TOP_KEYS = frozenset({"min_reviews", "decimals", "points"})
_POINT_KEYS = frozenset(level.value for level in LEVELS)


class ScoreRuleError(ValueError):
    """A rule that cannot be used; the message names the file (when read from one) and the key."""

    def __init__(self, *, key: str, problem: str, origin: str = "") -> None:
        self.key = key
        """The offending key as the rule file spells it (``points.basic``), or "" for the file."""
        self.problem = problem
        self.origin = origin
        """The file the rule was read from, or "" for a rule built in code."""
        super().__init__(": ".join(part for part in (origin, key, problem) if part))


@dataclass(frozen=True, slots=True)
class ScoreRule:
    """Points per level (field names are the ``Rating`` values), ranking minimum, decimals.

    Points are exact ``Fraction`` values from 0 to 10, never rising from a better level to a
    worse one. Refused with ``ScoreRuleError`` otherwise.
    """

    very_satisfied: Fraction = Fraction(10)
    """非常满意."""
    satisfied: Fraction = Fraction(8)
    """满意."""
    basic: Fraction = Fraction(6)
    """基本满意."""
    dissatisfied: Fraction = Fraction(4)
    """不满意."""
    very_dissatisfied: Fraction = Fraction(2)
    """非常不满意."""
    min_reviews: int = DEFAULT_MIN_REVIEWS
    """Rated reviews an entity needs to be ranked; fewer leaves it unranked (rank None)."""
    decimals: int = DEFAULT_DECIMALS
    """Decimals of a displayed score; ranking always compares exact scores."""

    def __post_init__(self) -> None:
        for level in LEVELS:
            value: object = self.points_for(level)
            if type(value) is not Fraction:
                problem = f"must be a fractions.Fraction, not {type(value).__name__}"
                raise ScoreRuleError(key=f"points.{level}", problem=problem)
            if not 0 <= value <= POINTS_SCALE:
                problem = f"must be from 0 to {POINTS_SCALE}, not {value}"
                raise ScoreRuleError(key=f"points.{level}", problem=problem)
        # A better level earning fewer points would let a better review lower a score.
        for better, worse in pairwise(LEVELS):
            if self.points_for(better) < self.points_for(worse):
                problem = f"earns fewer points than points.{worse}"
                raise ScoreRuleError(key=f"points.{better}", problem=problem)
        if type(self.min_reviews) is not int or self.min_reviews < 0:
            raise ScoreRuleError(
                key="min_reviews", problem=f"must be a whole number >= 0, not {self.min_reviews!r}"
            )
        if type(self.decimals) is not int or not 0 <= self.decimals <= MAX_DECIMALS:
            problem = f"must be a whole number from 0 to {MAX_DECIMALS}, not {self.decimals!r}"
            raise ScoreRuleError(key="decimals", problem=problem)

    def points_for(self, level: Rating) -> Fraction:
        """The points of one of the five ``LEVELS``; KeyError for ``Rating.UNKNOWN``."""
        if level not in _POINT_KEYS:
            raise KeyError(level)
        value: Fraction = getattr(self, level.value)
        return value


DEFAULT_RULE = ScoreRule()
"""Our default, not an official formula: 非常满意 10, 满意 8, 基本满意 6, 不满意 4, 非常不满意 2."""


def parse_score_rule(text: str, origin: str) -> ScoreRule:
    """The rule in TOML ``text`` (read from ``origin``); refused whole if anything is off."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScoreRuleError(key="", problem=f"not valid TOML: {exc}", origin=origin) from exc
    try:
        return _rule_of(document)
    except ScoreRuleError as exc:
        raise ScoreRuleError(key=exc.key, problem=exc.problem, origin=origin) from None


def load_score_rule(path: Path) -> ScoreRule:
    """The rule in the TOML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScoreRuleError(key="", problem="not UTF-8 text", origin=str(path)) from exc
    return parse_score_rule(text, str(path))


def _rule_of(document: dict[str, object]) -> ScoreRule:
    _known_keys(document, _TOP_KEYS, "")
    points = document.get("points")
    if not isinstance(points, dict):
        problem = "write the five levels' points in a [points] table"
        raise ScoreRuleError(key="points", problem=problem)
    _known_keys(points, _POINT_KEYS, "points.")
    if missing := [level.value for level in LEVELS if level.value not in points]:
        raise ScoreRuleError(key="points", problem=f"missing levels {missing}")

    def points_of(level: Rating) -> Fraction:
        return _points(f"points.{level}", points[level.value])

    return ScoreRule(
        very_satisfied=points_of(Rating.VERY_SATISFIED),
        satisfied=points_of(Rating.SATISFIED),
        basic=points_of(Rating.BASIC),
        dissatisfied=points_of(Rating.DISSATISFIED),
        very_dissatisfied=points_of(Rating.VERY_DISSATISFIED),
        min_reviews=_whole(document, "min_reviews", DEFAULT_MIN_REVIEWS),
        decimals=_whole(document, "decimals", DEFAULT_DECIMALS),
    )


def _points(key: str, value: object) -> Fraction:
    # TOML's true/false are bools, and bool is an int in Python: not a number of points.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScoreRuleError(key=key, problem=f"must be a number, not {value!r}")
    if not (math.isfinite(value) and 0 <= value <= POINTS_SCALE):
        raise ScoreRuleError(key=key, problem=f"must be from 0 to {POINTS_SCALE}, not {value!r}")
    # repr is the shortest decimal that reads back as this float: the one the file wrote, so
    # 8.3 becomes exactly 83/10 rather than the binary float's nearest value.
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _whole(document: dict[str, object], key: str, default: int) -> int:
    value = document.get(key, default)
    if type(value) is not int:
        raise ScoreRuleError(key=key, problem=f"must be a whole number, not {value!r}")
    return value


def _known_keys(table: dict[str, object], allowed: frozenset[str], prefix: str) -> None:
    if unknown := sorted(set(table) - allowed):
        names = [f"{prefix}{key}" for key in unknown]
        problem = f"unknown key (allowed: {', '.join(sorted(allowed))})"
        raise ScoreRuleError(key=", ".join(names), problem=problem)
