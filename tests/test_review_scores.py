"""好差评 scores and league tables: hand-computed data, ties, the minimum, rule files, the doc."""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.reviews.scores import (
    DEFAULT_RULE,
    LEVELS,
    RatingCounts,
    ScoreRule,
    ScoreRuleError,
    Standing,
    bad_rate,
    display_score,
    exact_score,
    league_table,
    load_score_rule,
    parse_score_rule,
    satisfaction_rate,
    score,
)
from edge.protocol.reviews import Rating

DOC = Path(__file__).resolve().parent.parent / "docs" / "scores.md"

DEFAULT_FILE = """\
min_reviews = 10
decimals = 2
[points]
very_satisfied = 10
satisfied = 8
basic = 6
dissatisfied = 4
very_dissatisfied = 2
"""

# The worked example of docs/scores.md, by hand under the default rule (10/8/6/4/2).
MONTH = [
    # 6*10 + 3*8 + 1*6 = 90 points / 10 rated = 9
    ("W01", RatingCounts(very_satisfied=6, satisfied=3, basic=1)),
    # 13*10 + 5*8 + 1*6 + 1*4 = 130 + 40 + 6 + 4 = 180 / 20 = 9: ties W01 exactly
    ("W02", RatingCounts(very_satisfied=13, satisfied=5, basic=1, dissatisfied=1)),
    # 5*10 + 4*8 + 1*6 + 1*4 + 1*2 = 50 + 32 + 6 + 4 + 2 = 94 / 12 = 47/6 = 7.8333…
    ("W03", RatingCounts(5, 4, 1, 1, 1)),
    # 4*10 = 40 / 4 = 10, the best score, but 4 < 10 rated: unranked
    ("W04", RatingCounts(very_satisfied=4)),
    ("W05", RatingCounts()),  # nothing rated
]


def pairs(table: list[Standing]) -> list[tuple[str, float | None, int | None]]:
    return [(standing.key, standing.score, standing.rank) for standing in table]


# --- scores and rates by hand --------------------------------------------------------------


def test_month_by_hand() -> None:
    table = league_table(MONTH, DEFAULT_RULE)
    assert pairs(table) == [
        ("W02", 9.0, 1),  # tied with W01; more rated reviews (20 > 10) lists it first
        ("W01", 9.0, 1),
        ("W03", 7.83, 3),  # competition ranking: two ahead of it, so 3, not 2
        ("W04", 10.0, None),
        ("W05", None, None),
    ]
    by_key = {standing.key: standing for standing in table}
    assert by_key["W03"].exact_score == Fraction(47, 6)
    assert by_key["W02"].satisfaction_rate == 19 / 20  # 13 + 5 + 1 of 20
    assert by_key["W02"].bad_rate == 1 / 20
    assert by_key["W03"].satisfaction_rate == 10 / 12  # 5 + 4 + 1 of 12
    assert by_key["W03"].bad_rate == 2 / 12  # 1 不满意 + 1 非常不满意
    assert by_key["W05"].satisfaction_rate is None
    assert by_key["W05"].bad_rate is None
    assert by_key["W05"].exact_score is None


def test_score_and_rates_of_one_entity() -> None:
    counts = RatingCounts(5, 4, 1, 1, 1)
    assert score(counts) == 94 / 12
    assert exact_score(counts) == Fraction(94, 12)
    assert satisfaction_rate(counts) == 10 / 12
    assert bad_rate(counts) == 2 / 12
    assert counts.rated == 12
    assert counts.bad == 2


def test_nothing_rated_has_no_score() -> None:
    assert score(RatingCounts()) is None
    assert exact_score(RatingCounts()) is None
    assert satisfaction_rate(RatingCounts()) is None
    assert bad_rate(RatingCounts()) is None


def test_empty_table() -> None:
    assert league_table([], DEFAULT_RULE) == []


def test_rounding_is_half_up_on_the_exact_value() -> None:
    # 8*10 + 1*8 + 7*6 = 80 + 8 + 42 = 130 / 16 = 8.125: float round() gives 8.12 (half even)
    eight_125 = RatingCounts(very_satisfied=8, satisfied=1, basic=7)
    # 40*10 + 3*8 + 37*6 = 400 + 24 + 222 = 646 / 80 = 8.075: the float is 8.07499…
    eight_075 = RatingCounts(very_satisfied=40, satisfied=3, basic=37)
    rule = dataclasses.replace(DEFAULT_RULE, min_reviews=0)
    shown = {
        standing.key: standing.score
        for standing in league_table([("a", eight_125), ("b", eight_075)], rule)
    }
    assert shown == {"a": 8.13, "b": 8.08}
    assert round(8.125, 2) == 8.12  # what rounding the float would have published
    assert round(8.075, 2) == 8.07
    assert display_score(Fraction(47, 6), 0) == 8.0
    assert display_score(Fraction(47, 6), 4) == 7.8333


# --- RatingCounts --------------------------------------------------------------------------


def test_counts_from_a_mapping_of_ratings_or_their_values() -> None:
    counted = Counter([Rating.SATISFIED, Rating.SATISFIED, Rating.BASIC])
    assert RatingCounts.of(counted) == RatingCounts(satisfied=2, basic=1)
    assert RatingCounts.of({"very_dissatisfied": 3}) == RatingCounts(very_dissatisfied=3)
    assert RatingCounts.of({}) == RatingCounts()


@pytest.mark.parametrize("key", [Rating.UNKNOWN, "unknown", "great", ""])
def test_counts_refuse_what_is_no_level(key: str) -> None:
    with pytest.raises(ValueError, match="not a rating level"):
        RatingCounts.of({key: 1})


@pytest.mark.parametrize("value", [-1, 1.0, True, "2"])
def test_counts_refuse_what_is_no_count(value: object) -> None:
    with pytest.raises(ValueError, match="satisfied: a count"):
        RatingCounts(satisfied=value)  # type: ignore[arg-type]


def test_counts_add_level_by_level() -> None:
    total = RatingCounts(1, 2, 3, 4, 5) + RatingCounts(10, 20, 30, 40, 50)
    assert total == RatingCounts(11, 22, 33, 44, 55)
    assert total.values() == (11, 22, 33, 44, 55)
    assert total.rated == 165
    assert total.bad == 99


def test_counts_field_names_are_the_levels() -> None:
    names = [field.name for field in dataclasses.fields(RatingCounts)]
    assert names == [level.value for level in LEVELS]
    rule_points = [field.name for field in dataclasses.fields(ScoreRule)][:5]
    assert rule_points == names


# --- ties and the minimum ------------------------------------------------------------------


def test_ties_share_a_rank_and_the_next_rank_skips() -> None:
    rule = dataclasses.replace(DEFAULT_RULE, min_reviews=1)
    table = league_table(
        [
            ("d", RatingCounts(satisfied=1)),  # 8
            ("c", RatingCounts(very_satisfied=1, basic=1)),  # (10 + 6) / 2 = 8
            ("b", RatingCounts(very_satisfied=2, dissatisfied=2)),  # (20 + 8) / 4 = 7
            ("a", RatingCounts(very_satisfied=1)),  # 10
            ("e", RatingCounts(very_satisfied=3, basic=3)),  # (30 + 18) / 6 = 8
        ],
        rule,
    )
    # Among the three 8s: more rated first (e: 6, c: 2, d: 1).
    assert pairs(table) == [
        ("a", 10.0, 1),
        ("e", 8.0, 2),
        ("c", 8.0, 2),
        ("d", 8.0, 2),
        ("b", 7.0, 5),
    ]


def test_ties_with_equal_rated_are_ordered_by_key() -> None:
    rule = dataclasses.replace(DEFAULT_RULE, min_reviews=1)
    table = league_table(
        [("z", RatingCounts(satisfied=2)), ("m", RatingCounts(very_satisfied=1, basic=1))], rule
    )
    assert pairs(table) == [("m", 8.0, 1), ("z", 8.0, 1)]


def test_decimal_points_still_tie_exactly() -> None:
    # 满意 9.1, 基本满意 8.2: 3*9.1 + 2*8.2 = 43.7 and 10 + 9.1 + 3*8.2 = 43.7, both / 5 = 8.74
    rule = parse_score_rule(
        DEFAULT_FILE.replace("satisfied = 8", "satisfied = 9.1")
        .replace("basic = 6", "basic = 8.2")
        .replace("min_reviews = 10", "min_reviews = 1"),
        "decimal.toml",
    )
    first = RatingCounts(satisfied=3, basic=2)
    second = RatingCounts(very_satisfied=1, satisfied=1, basic=3)
    assert (3 * 9.1 + 2 * 8.2) / 5 != (10 + 9.1 + 3 * 8.2) / 5  # floats would split them
    table = league_table([("x", first), ("y", second)], rule)
    assert [standing.exact_score for standing in table] == [Fraction(437, 50)] * 2
    assert [standing.rank for standing in table] == [1, 1]


def test_fewer_than_the_minimum_is_listed_unranked_after_the_ranked() -> None:
    rule = dataclasses.replace(DEFAULT_RULE, min_reviews=3)
    table = league_table(
        [
            ("low", RatingCounts(very_dissatisfied=3)),  # 2, ranked
            ("few-b", RatingCounts(very_satisfied=2)),  # 10, 2 rated: unranked
            ("few-a", RatingCounts(very_satisfied=2)),  # 10, 2 rated: unranked
            ("few-c", RatingCounts(satisfied=1, dissatisfied=1)),  # 6, unranked
            ("none", RatingCounts()),
            ("mid", RatingCounts(basic=3)),  # 6, ranked
        ],
        rule,
    )
    assert pairs(table) == [
        ("mid", 6.0, 1),
        ("low", 2.0, 2),
        ("few-a", 10.0, None),
        ("few-b", 10.0, None),
        ("few-c", 6.0, None),
        ("none", None, None),
    ]


def test_minimum_zero_ranks_everything_with_a_score() -> None:
    rule = dataclasses.replace(DEFAULT_RULE, min_reviews=0)
    table = league_table([("one", RatingCounts(basic=1)), ("none", RatingCounts())], rule)
    assert pairs(table) == [("one", 6.0, 1), ("none", None, None)]


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"more than once: \['W01'\]"):
        league_table([("W01", RatingCounts()), ("W02", RatingCounts()), ("W01", RatingCounts())])


# --- rules and rule files ------------------------------------------------------------------


def test_the_default_file_is_the_default_rule() -> None:
    assert parse_score_rule(DEFAULT_FILE, "default.toml") == DEFAULT_RULE
    assert [DEFAULT_RULE.points_for(level) for level in LEVELS] == [10, 8, 6, 4, 2]
    assert (DEFAULT_RULE.min_reviews, DEFAULT_RULE.decimals) == (10, 2)


def test_min_reviews_and_decimals_may_be_left_out() -> None:
    text = DEFAULT_FILE.replace("min_reviews = 10\ndecimals = 2\n", "")
    assert parse_score_rule(text, "short.toml") == DEFAULT_RULE


def test_load_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rule.toml"
    path.write_text(DEFAULT_FILE.replace("decimals = 2", "decimals = 1"), encoding="utf-8")
    assert load_score_rule(path) == dataclasses.replace(DEFAULT_RULE, decimals=1)


def test_load_refuses_text_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rule.toml"
    path.write_bytes(b"min_reviews = 10\n# \xff\n")
    with pytest.raises(ScoreRuleError, match="not UTF-8") as caught:
        load_score_rule(path)
    assert caught.value.origin == str(path)


def test_decimal_points_are_the_decimals_written() -> None:
    rule = parse_score_rule(DEFAULT_FILE.replace("satisfied = 8", "satisfied = 8.3"), "r.toml")
    assert rule.satisfied == Fraction(83, 10)


def test_points_for_unknown_is_no_level() -> None:
    with pytest.raises(KeyError):
        DEFAULT_RULE.points_for(Rating.UNKNOWN)


def test_a_custom_rule_changes_scores_and_order() -> None:
    # A locality that scores 非常满意 and 满意 alike at 10 and 基本满意 at 8:
    # p: 10 非常满意 → 10; q: 12 满意 → 10 by the custom rule, 8 by the default.
    custom = parse_score_rule(
        DEFAULT_FILE.replace("satisfied = 8", "satisfied = 10").replace("basic = 6", "basic = 8"),
        "custom.toml",
    )
    entries = [("p", RatingCounts(very_satisfied=10)), ("q", RatingCounts(satisfied=12))]
    assert pairs(league_table(entries, DEFAULT_RULE)) == [("p", 10.0, 1), ("q", 8.0, 2)]
    # Tied at 10 under the custom rule; q has more rated reviews, so it is listed first.
    assert pairs(league_table(entries, custom)) == [("q", 10.0, 1), ("p", 10.0, 1)]
    # W03 of the worked example: 50 + 40 + 8 + 4 + 2 = 104 / 12 = 8.666… → 8.67
    assert exact_score(RatingCounts(5, 4, 1, 1, 1), custom) == Fraction(104, 12)


REFUSALS = [
    ("min_reviews = [", "", "not valid TOML"),
    ("colour = 1\n" + DEFAULT_FILE, "colour", "unknown key"),
    (DEFAULT_FILE + "excellent = 12\n", "points.excellent", "unknown key"),
    ("min_reviews = 10\n", "points", "[points] table"),
    ("points = 3\n", "points", "[points] table"),
    (DEFAULT_FILE.replace("basic = 6\n", ""), "points", "missing levels ['basic']"),
    (DEFAULT_FILE.replace("basic = 6", "basic = 11"), "points.basic", "from 0 to 10, not 11"),
    (
        DEFAULT_FILE.replace("very_dissatisfied = 2", "very_dissatisfied = -1"),
        "points.very_dissatisfied",
        "from 0 to 10",
    ),
    (DEFAULT_FILE.replace("basic = 6", "basic = 10.5"), "points.basic", "from 0 to 10"),
    (DEFAULT_FILE.replace("basic = 6", "basic = nan"), "points.basic", "from 0 to 10"),
    (DEFAULT_FILE.replace("basic = 6", "basic = inf"), "points.basic", "from 0 to 10"),
    (DEFAULT_FILE.replace("basic = 6", 'basic = "6"'), "points.basic", "must be a number"),
    (DEFAULT_FILE.replace("basic = 6", "basic = true"), "points.basic", "must be a number"),
    (DEFAULT_FILE.replace("basic = 6", "basic = [6]"), "points.basic", "must be a number"),
    (DEFAULT_FILE.replace("basic = 6", "basic = 9"), "points.satisfied", "fewer points"),
    (DEFAULT_FILE.replace("min_reviews = 10", "min_reviews = -1"), "min_reviews", ">= 0"),
    (DEFAULT_FILE.replace("min_reviews = 10", "min_reviews = 2.5"), "min_reviews", "whole"),
    (DEFAULT_FILE.replace("min_reviews = 10", 'min_reviews = "10"'), "min_reviews", "whole"),
    (DEFAULT_FILE.replace("min_reviews = 10", "min_reviews = true"), "min_reviews", "whole"),
    (DEFAULT_FILE.replace("decimals = 2", "decimals = 5"), "decimals", "from 0 to 4"),
    (DEFAULT_FILE.replace("decimals = 2", "decimals = -1"), "decimals", "from 0 to 4"),
    (DEFAULT_FILE.replace("decimals = 2", "decimals = 1.0"), "decimals", "whole"),
]


@pytest.mark.parametrize(("text", "key", "problem"), REFUSALS)
def test_rule_file_refusals_name_the_file_and_the_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(ScoreRuleError) as caught:
        parse_score_rule(text, "locality.toml")
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.origin, error.key) == ("locality.toml", key)
    assert problem in error.problem
    assert str(error).startswith(f"locality.toml: {key}: " if key else "locality.toml: ")


def test_rules_built_in_code_are_checked_too() -> None:
    with pytest.raises(ScoreRuleError, match=r"^points.basic: must be a fractions.Fraction"):
        ScoreRule(basic=6)  # type: ignore[arg-type]
    with pytest.raises(ScoreRuleError, match=r"^points.very_satisfied: must be from 0 to 10"):
        ScoreRule(very_satisfied=Fraction(21, 2))
    with pytest.raises(ScoreRuleError, match=r"^min_reviews: "):
        ScoreRule(min_reviews=-1)
    with pytest.raises(ScoreRuleError, match=r"^decimals: "):
        ScoreRule(decimals=5)


# --- the doc's worked example --------------------------------------------------------------


def _cell(value: float | None, form: str) -> str:
    return "—" if value is None else format(value, form)


def test_the_worked_example_in_the_doc_is_what_the_code_computes() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = text[text.index("## Worked example") :]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in example.splitlines()
        if re.match(r"\| W\d+ \|", line)
    ]
    assert [row[0] for row in rows] == ["W02", "W01", "W03", "W04", "W05"]
    entries = [(row[0], RatingCounts(*map(int, row[1:6]))) for row in rows]
    assert sorted(entries) == sorted(MONTH)  # the doc's numbers are this test file's
    table = league_table(entries, DEFAULT_RULE)
    computed = [
        [
            standing.key,
            *map(str, standing.counts.values()),
            str(standing.counts.rated),
            str(
                sum(p * n for p, n in zip((10, 8, 6, 4, 2), standing.counts.values(), strict=True))
            ),
            _cell(standing.score, ".2f"),
            _cell(standing.satisfaction_rate, ".1%"),
            _cell(standing.bad_rate, ".1%"),
            _cell(standing.rank, "d"),
        ]
        for standing in table
    ]
    assert rows == computed
    assert "[('W02', 9.0, 1), ('W01', 9.0, 1), ('W03', 7.83, 3), ('W04', 10.0, None), " in text
    assert repr(pairs(table)).startswith("[('W02', 9.0, 1), ('W01', 9.0, 1), ('W03', 7.83, 3)")


def test_the_doc_shows_the_default_points_and_the_rule_file() -> None:
    text = DOC.read_text(encoding="utf-8")
    for level, chinese, stars in zip(
        LEVELS,
        ["非常满意", "满意", "基本满意", "不满意", "非常不满意"],
        [5, 4, 3, 2, 1],
        strict=True,
    ):
        points = DEFAULT_RULE.points_for(level)
        assert re.search(rf"\| `{level}` \| {chinese}[^|]* \| {stars} \| {points} \|", text)
        assert f"\n{level} = {points}\n" in text
    assert "our own choice" in text


# --- properties ----------------------------------------------------------------------------

counts_st = st.builds(RatingCounts, *[st.integers(0, 60)] * 5)
small_counts_st = st.builds(RatingCounts, *[st.integers(0, 4)] * 5)
"""Few reviews each: equal scores, and so ties, are common."""


@st.composite
def rules(draw: st.DrawFn) -> ScoreRule:
    # Points in tenths from 0 to 10, best level first and never rising.
    tenths = sorted(draw(st.lists(st.integers(0, 100), min_size=5, max_size=5)), reverse=True)
    best, good, basic, bad, worst = (Fraction(t, 10) for t in tenths)
    return ScoreRule(
        best,
        good,
        basic,
        bad,
        worst,
        min_reviews=draw(st.integers(0, 30)),
        decimals=draw(st.integers(0, 4)),
    )


@given(counts_st, rules())
def test_a_score_is_within_the_rules_points(counts: RatingCounts, rule: ScoreRule) -> None:
    exact = exact_score(counts, rule)
    if counts.rated == 0:
        assert exact is None
        return
    assert exact is not None
    assert rule.very_dissatisfied <= exact <= rule.very_satisfied
    rates = satisfaction_rate(counts), bad_rate(counts)
    assert rates[0] is not None
    assert rates[1] is not None
    assert rates[0] + rates[1] == pytest.approx(1)


@given(counts_st, rules())
def test_one_more_very_satisfied_never_lowers_a_score(
    counts: RatingCounts, rule: ScoreRule
) -> None:
    after = exact_score(counts + RatingCounts(very_satisfied=1), rule)
    before = exact_score(counts, rule)
    assert after is not None
    assert before is None or after >= before


@given(st.lists(small_counts_st, max_size=12), rules(), st.randoms(use_true_random=False))
def test_ranks_are_consistent_with_scores(
    all_counts: list[RatingCounts], rule: ScoreRule, shuffler: random.Random
) -> None:
    entries = [(f"k{number:02d}", counts) for number, counts in enumerate(all_counts)]
    table = league_table(entries, rule)
    assert sorted(standing.key for standing in table) == sorted(key for key, _ in entries)
    ranked = [s for s in table if s.rank is not None]
    assert table[: len(ranked)] == ranked  # the ranked come first
    scores = [s.exact_score for s in ranked]
    exact = [value for value in scores if value is not None]
    assert len(exact) == len(ranked)
    assert exact == sorted(exact, reverse=True)
    for standing, mine in zip(ranked, exact, strict=True):
        assert standing.counts.rated >= rule.min_reviews
        # Competition ranking: one more than those strictly ahead, so equal scores, equal ranks.
        assert standing.rank == 1 + sum(1 for other in exact if other > mine)
    for standing in table[len(ranked) :]:
        assert standing.exact_score is None or standing.counts.rated < rule.min_reviews
    unrated = [s.exact_score is None for s in table]
    assert unrated == sorted(unrated)  # the unrated come last
    shuffled = entries[:]
    shuffler.shuffle(shuffled)
    assert league_table(shuffled, rule) == table
