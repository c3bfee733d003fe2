"""The statistics, read from the daily roll-ups: one SQL statement, then names for its codes.

``stats_query`` reads a request, ``stats_sql`` writes its statement, ``stats_groups`` shapes
the answer; this module runs the statement and looks up the names. Who may ask about which
subtree is the caller's business (``control_plane.http.stats``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from . import rollup_state
from .db.models import Department, JurisdictionNode, Site
from .db.rollup_models import RollupState
from .stats_groups import Figures, Names, answer
from .stats_query import Dimension, StatsParameterError, StatsQuery
from .stats_sql import aggregate

MAX_GROUPS = 10_000
"""More groups than this is a table nobody reads: narrow the subtree or the period instead."""
LOOKUP_CHUNK = 500
T = TypeVar("T")


async def node_path(code: str) -> str:
    """The path of the node ``code``; the request's mistake when there is none."""
    found = await JurisdictionNode.get_or_none(code=code)
    if found is None:
        msg = f"node: no jurisdiction node has the code {code!r}"
        raise StatsParameterError(msg, "node")
    return found.path


async def figures(
    query: StatsQuery, kind: Figures, *, root_path: str | None, root_code: str | None
) -> dict[str, Any]:
    """The figures of ``kind`` for ``query`` over the subtree at ``root_path`` (None: all).

    Rows of devices placed nowhere count only for the whole tree (``root_path`` None) without
    a ``level`` filter.
    """
    conn = rollup_state.client()
    statement = aggregate(
        query,
        kind.counters,
        dialect=conn.capabilities.dialect,
        root_path=root_path,
        limit=MAX_GROUPS + 1,
    )
    rows = await conn.execute_query_dict(statement.sql, statement.params)
    if len(rows) > MAX_GROUPS:
        msg = (
            f"by: more than {MAX_GROUPS} groups; group by less, or narrow node, from..to or"
            " the filters"
        )
        raise StatsParameterError(msg, "by")
    names = await _names(rows, query, root_code)
    items, total = answer(rows, query, kind, names)
    state = await RollupState.get_or_none(name=rollup_state.STATE)
    return {
        "from": query.first_day.isoformat(),
        "to": query.last_day.isoformat(),
        "by": [dimension.value for dimension in query.by],
        "node": root_code,
        "filters": query.filters(),
        "items": items,
        "total": total,
        "rolled_up_at": state.rolled_up_at.isoformat() if state and state.rolled_up_at else None,
    }


async def _names(
    rows: Sequence[Mapping[str, Any]], query: StatsQuery, root_code: str | None
) -> Names:
    sites: dict[int, tuple[str, str]] = {}
    nodes: dict[str, str] = {}
    departments: dict[str, str] = {}
    if Dimension.SITE in query.by:
        for chunk in _chunks({row["site_id"] for row in rows}):
            found = await Site.filter(id__in=chunk).values_list("id", "code", "name")
            sites.update((site_id, (code, name)) for site_id, code, name in found)
    if Dimension.NODE in query.by:
        codes = {row["node"] for row in rows if row["node"]} | ({root_code} if root_code else set())
        for chunk in _chunks(codes):
            found_nodes = await JurisdictionNode.filter(code__in=chunk).values_list("code", "name")
            nodes.update((str(code), str(name)) for code, name in found_nodes)
    if Dimension.DEPARTMENT in query.by:
        for chunk in _chunks({row["department"] for row in rows if row["department"]}):
            found_departments = await Department.filter(code__in=chunk).values_list("code", "name")
            departments.update((str(code), str(name)) for code, name in found_departments)
    return Names(sites, nodes, departments, root_code)


def _chunks(values: Iterable[T]) -> Iterable[list[T]]:
    listed = list(values)
    for start in range(0, len(listed), LOOKUP_CHUNK):
        yield listed[start : start + LOOKUP_CHUNK]
