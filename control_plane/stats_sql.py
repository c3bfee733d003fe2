"""The statistics' one SQL statement over the roll-ups, in both dialects. Pure.

A period's whole months are read from the monthly rows and the days around them from the daily
rows (by day: all from the daily rows), so that a district's year reads twelve rows per key
where it would read 365. The database does the grouping, down to the groups asked for (a hall
level, the node just below the query's node, a month), so that what comes back is the answer's
size, not the roll-ups'. The subtree and level filters are a subquery of site ids, which lets
the database read each site's rows from the ``(site_id, day)`` and ``(site_id, month)``
indexes; sites and nodes are joined to the sums per site, and only when the grouping needs
their level or path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .jurisdiction import SEPARATOR, subtree_range
from .rollup_sql import column_value, placeholders
from .stats_query import Dimension, StatsQuery

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Statement:
    sql: str
    params: list[Any]


@dataclass(frozen=True)
class PeriodParts:
    """Where a period's figures are read: whole months from the monthly rows, the rest daily."""

    days: tuple[tuple[date, date], ...]
    """Ranges of days (both included) read from the daily rows."""
    months: tuple[date, date] | None
    """The first days of the first and the last whole month, read from the monthly rows."""


def split_period(first_day: date, last_day: date, *, by_day: bool) -> PeriodParts:
    """The whole months of ``first_day..last_day`` and the days around them.

    Grouped by day, everything comes from the daily rows.
    """
    start = first_day if first_day.day == 1 else _next_month(first_day)
    end = _next_month(last_day) if _next_month(last_day) - last_day == ONE_DAY else last_day
    end = end.replace(day=1)  # the first day after the whole months
    if by_day or start >= end:
        return PeriodParts(((first_day, last_day),), None)
    days = []
    if first_day < start:
        days.append((first_day, start - ONE_DAY))
    if end <= last_day:
        days.append((end, last_day))
    return PeriodParts(tuple(days), (start, (end - ONE_DAY).replace(day=1)))


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _child_code(dialect: str, prefix_length: int) -> str:
    """The code of the node just below the query's node on a site's path ('' at the node)."""
    rest = f"substr(j.path, {prefix_length + 1})"
    if dialect == "postgres":
        return f"split_part({rest}, '{SEPARATOR}', 1)"
    return f"substr({rest}, 1, instr({rest}, '{SEPARATOR}') - 1)"


def _month(dialect: str, column: str) -> str:
    if dialect == "postgres":
        return f"to_char({column}, 'YYYY-MM')"
    return f"substr({column}, 1, 7)"


SITE_DIMENSIONS = frozenset({Dimension.LEVEL, Dimension.SITE, Dimension.NODE})


def group_columns(query: StatsQuery, dialect: str, root_path: str | None) -> dict[str, str]:
    """The grouping's SQL expressions over the sources' rows (``u``), by their column name."""
    expressions = {
        Dimension.LEVEL: ("level", "s.level"),
        Dimension.SITE: ("site_id", "u.site_id"),
        Dimension.NODE: ("node", _child_code(dialect, len(root_path or SEPARATOR))),
        Dimension.DEPARTMENT: ("department", "u.department"),
        Dimension.ITEM: ("item_code", "u.item_code"),
        Dimension.DAY: ("day", "u.day"),
        Dimension.MONTH: ("month", "u.month"),
    }
    return dict(expressions[dimension] for dimension in query.by)


def _source_columns(query: StatsQuery, dialect: str, period: str) -> dict[str, str]:
    """What each source (daily or monthly rows) groups by before the sites are joined."""
    columns = {}
    if SITE_DIMENSIONS & set(query.by):
        columns["site_id"] = "r.site_id"
    if Dimension.DEPARTMENT in query.by:
        columns["department"] = "r.department"
    if Dimension.ITEM in query.by:
        columns["item_code"] = "r.item_code"
    if Dimension.DAY in query.by:
        columns["day"] = "r.day"
    if Dimension.MONTH in query.by:
        columns["month"] = _month(dialect, f"r.{period}")
    return columns


class _Params:
    """The statement's parameters, each added where its placeholder goes."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def add(self, value: Any) -> str:  # noqa: ANN401 - any value a column takes
        self.values.append(value)
        return placeholders(self.dialect, 1, start=len(self.values))[0]


def aggregate(
    query: StatsQuery,
    counters: Sequence[str],
    *,
    dialect: str,
    root_path: str | None,
    limit: int,
) -> Statement:
    """Sum ``counters`` over the query's days and subtree (``root_path``; None: the whole tree).

    Each source (the daily rows of the days around whole months, the monthly rows of those
    months) is summed by site and the other groups first; only those sums meet the sites and
    nodes that give a level or a node. At most ``limit`` groups come back: ask for one more
    than you allow, to tell when there are too many.
    """
    params = _Params(dialect)
    parts = split_period(query.first_day, query.last_day, by_day=Dimension.DAY in query.by)
    sources = []
    ask = _Ask(query, counters, params, root_path)
    if parts.days:
        ranges = [
            f"(r.day >= {params.add(column_value(dialect, low))}"
            f" AND r.day <= {params.add(column_value(dialect, high))})"
            for low, high in parts.days
        ]
        sources.append(_source("rollup_day", "day", " OR ".join(ranges), ask))
    if parts.months:
        low, high = (column_value(dialect, month) for month in parts.months)
        months = f"r.month >= {params.add(low)} AND r.month <= {params.add(high)}"
        sources.append(_source("rollup_month", "month", months, ask))
    groups = group_columns(query, dialect, root_path)
    joins = ""
    if Dimension.LEVEL in query.by or Dimension.NODE in query.by:
        # LEFT: rows of devices placed nowhere (site 0) stay, as a group of their own.
        joins = " LEFT JOIN site s ON s.id = u.site_id LEFT JOIN jurisdiction j ON j.id = s.node_id"
    selected = [f"{expression} AS {name}" for name, expression in groups.items()]
    selected += [f"SUM(u.{name}) AS {name}" for name in counters]
    union = " UNION ALL ".join(sources)
    sql = f"SELECT {', '.join(selected)} FROM ({union}) u{joins}"  # noqa: S608 - fixed names; values are parameters
    if groups:
        sql += f" GROUP BY {', '.join(groups.values())}"
    return Statement(f"{sql} LIMIT {int(limit)}", params.values)


@dataclass(frozen=True)
class _Ask:
    """What the query asks of each source, and where their parameters go."""

    query: StatsQuery
    counters: Sequence[str]
    params: _Params
    root_path: str | None


def _source(table: str, period: str, when: str, ask: _Ask) -> str:
    """One source's sums: its rows of ``when``, filtered, grouped as the final groups need."""
    query, params = ask.query, ask.params
    where = [f"({when})"]
    sites = _site_filter(query, ask.root_path, params)
    if sites:
        where.append(sites)
    for column, value in (("department", query.department), ("item_code", query.item)):
        if value is not None:
            where.append(f"r.{column} = {params.add(value)}")
    columns = _source_columns(query, params.dialect, period)
    selected = [f"{expression} AS {name}" for name, expression in columns.items()]
    selected += [f"SUM(r.{name}) AS {name}" for name in ask.counters]
    sql = f"SELECT {', '.join(selected)} FROM {table} r WHERE {' AND '.join(where)}"  # noqa: S608 - fixed names; values are parameters
    if columns:
        sql += f" GROUP BY {', '.join(columns.values())}"
    return sql


def _site_filter(query: StatsQuery, root_path: str | None, params: _Params) -> str | None:
    conditions = []
    if root_path is not None:
        low, high = subtree_range(root_path)
        conditions.append(f"j2.path >= {params.add(low)} AND j2.path < {params.add(high)}")
    if query.level is not None:
        conditions.append(f"s2.level = {params.add(query.level.value)}")
    if not conditions:
        return None
    sites = "SELECT s2.id FROM site s2 JOIN jurisdiction j2 ON j2.id = s2.node_id WHERE "
    return f"r.site_id IN ({sites}{' AND '.join(conditions)})"
