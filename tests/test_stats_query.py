"""Statistics requests read and checked, periods split into months and days, the SQL (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from control_plane.jurisdiction import Level
from control_plane.stats_groups import CASES, Names, answer
from control_plane.stats_query import Dimension, StatsParameterError, StatsQuery, parse_query
from control_plane.stats_sql import PeriodParts, aggregate, split_period

TODAY = date(2026, 4, 20)


def test_a_full_query_is_read() -> None:
    query = parse_query(
        [
            ("by", "level,month"),
            ("by", "department"),
            ("from", "2026-01-01"),
            ("to", "2026-03-31"),
            ("node", "440117"),
            ("department", "rs"),
            ("item", "RS-0012"),
            ("level", "town"),
        ],
        TODAY,
    )

    assert query == StatsQuery(
        first_day=date(2026, 1, 1),
        last_day=date(2026, 3, 31),
        by=(Dimension.LEVEL, Dimension.MONTH, Dimension.DEPARTMENT),
        node="440117",
        department="rs",
        item="RS-0012",
        level=Level.TOWN,
    )


def test_without_parameters_the_last_30_days_in_one_group() -> None:
    query = parse_query([], TODAY)

    assert (query.first_day, query.last_day, query.by) == (date(2026, 3, 22), TODAY, ())


@pytest.mark.parametrize(
    ("params", "parameter", "message"),
    [
        ([("by", "colour")], "by", "'colour' is not something to group by"),
        ([("by", "day"), ("by", "month")], "by", "pick one"),
        ([("from", "2026-02-01"), ("to", "2026-01-31")], "from", "is after to"),
        ([("from", "2023-04-19")], "from", "spans 1098 days, more than 1096"),
        ([("to", "2026-4-1")], "to", "must be a day as YYYY-MM-DD"),
        ([("node", "44a")], "node", "is not a 行政区划 code"),
        ([("level", "hamlet")], "level", "must be one of province, city"),
        ([("from", "2026-01-01"), ("from", "2026-01-02")], "from", "given 2 times"),
        ([("sort", "cases")], "sort", "unknown parameter 'sort'"),
    ],
)
def test_each_mistake_names_its_parameter(
    params: list[tuple[str, str]], parameter: str, message: str
) -> None:
    with pytest.raises(StatsParameterError, match=message) as refused:
        parse_query(params, TODAY)

    assert refused.value.parameter == parameter


D = date
ONLY_DAYS = None


@pytest.mark.parametrize(
    ("first", "last", "days", "months"),
    [
        # Whole months only.
        (D(2026, 1, 1), D(2026, 3, 31), (), (D(2026, 1, 1), D(2026, 3, 1))),
        # Days on both sides of the whole months.
        (
            D(2025, 12, 20),
            D(2026, 3, 10),
            ((D(2025, 12, 20), D(2025, 12, 31)), (D(2026, 3, 1), D(2026, 3, 10))),
            (D(2026, 1, 1), D(2026, 2, 1)),
        ),
        # No whole month: days only.
        (D(2026, 1, 15), D(2026, 2, 10), ((D(2026, 1, 15), D(2026, 2, 10)),), ONLY_DAYS),
        (D(2026, 2, 1), D(2026, 2, 27), ((D(2026, 2, 1), D(2026, 2, 27)),), ONLY_DAYS),
        # A leap February, whole.
        (D(2028, 2, 1), D(2028, 2, 29), (), (D(2028, 2, 1), D(2028, 2, 1))),
    ],
)
def test_a_period_splits_into_whole_months_and_the_days_around_them(
    first: date,
    last: date,
    days: tuple[tuple[date, date], ...],
    months: tuple[date, date] | None,
) -> None:
    assert split_period(first, last, by_day=False) == PeriodParts(days, months)


def test_by_day_a_period_is_read_from_the_days() -> None:
    parts = split_period(date(2026, 1, 1), date(2026, 3, 31), by_day=True)

    assert parts == PeriodParts(((date(2026, 1, 1), date(2026, 3, 31)),), None)


def test_the_statement_numbers_its_postgresql_parameters_in_order() -> None:
    query = parse_query(
        [("by", "level"), ("from", "2025-12-20"), ("to", "2026-03-10"), ("department", "rs")],
        TODAY,
    )

    statement = aggregate(query, ["window_cases"], dialect="postgres", root_path="/44/", limit=9)

    assert statement.sql.count("$") == len(statement.params)
    for n, _ in enumerate(statement.params, start=1):
        assert f"${n}" in statement.sql
    assert "rollup_day" in statement.sql
    assert "rollup_month" in statement.sql
    assert statement.sql.endswith("LIMIT 9")
    assert statement.params[:4] == [
        date(2025, 12, 20),
        date(2025, 12, 31),
        date(2026, 3, 1),
        date(2026, 3, 10),
    ]


def test_sqlite_gets_days_as_text() -> None:
    query = parse_query([("from", "2026-01-01"), ("to", "2026-01-31")], TODAY)

    statement = aggregate(query, ["help_calls"], dialect="sqlite", root_path=None, limit=2)

    assert statement.params == ["2026-01-01", "2026-01-01"]
    assert "rollup_day" not in statement.sql
    assert "?" in statement.sql


def test_groups_with_none_of_the_figures_are_left_out_and_the_rest_ordered() -> None:
    query = StatsQuery(date(2026, 1, 1), date(2026, 1, 31), by=(Dimension.LEVEL,))
    rows: list[dict[str, object]] = [
        {"level": "village", "window_cases": 2},
        {"level": None, "window_cases": 1},
        {"level": "district", "window_cases": 5},
        {"level": "town", "window_cases": 0},
    ]

    items, total = answer(rows, query, CASES, Names({}, {}, {}))

    assert [(item["level"], item["cases"]) for item in items] == [
        ("district", 5),
        ("village", 2),
        (None, 1),
    ]
    assert total["cases"] == 8
