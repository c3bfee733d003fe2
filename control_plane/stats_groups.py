"""The statistics' answer: grouped rows named, ordered and totalled, as the API shows them. Pure.

Two kinds of figures come from the same roll-ups: ``CASES`` (handled cases and usage) and
``REVIEWS`` (好差评 ratings). Each names the counters it sums and how it shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from .jurisdiction import Level
from .rollup_counts import Counts
from .stats_query import Dimension, StatsQuery


@dataclass(frozen=True)
class Figures:
    """What one statistics route sums from the roll-ups, and how it shows a sum."""

    counters: tuple[str, ...]
    view: Callable[[Counts], dict[str, Any]]


def case_view(counts: Counts) -> dict[str, Any]:
    return {
        "cases": counts.cases,
        "window_cases": counts.window_cases,
        "self_service_cases": counts.self_service_cases,
        "transactions_completed": counts.transactions_completed,
        "transactions_failed": counts.transactions_failed,
        "transactions_abandoned": counts.transactions_abandoned,
        "transactions_unknown": counts.transactions_unknown,
        "pages_printed": counts.pages_printed,
        "print_failures": counts.print_failures,
        "id_card_reads": counts.id_card_reads,
        "id_card_failures": counts.id_card_failures,
        "help_calls": counts.help_calls,
    }


def review_view(counts: Counts) -> dict[str, Any]:
    rate = counts.satisfaction_rate
    return {
        "reviews": counts.reviews,
        "very_satisfied": counts.reviews_very_satisfied,
        "satisfied": counts.reviews_satisfied,
        "basic": counts.reviews_basic,
        "dissatisfied": counts.reviews_dissatisfied,
        "very_dissatisfied": counts.reviews_very_dissatisfied,
        "unknown": counts.reviews_unknown,
        "bad_reviews": counts.bad_reviews,
        "satisfaction_rate": None if rate is None else round(rate, 6),
    }


CASES = Figures(
    (
        "window_cases",
        "transactions_completed",
        "transactions_failed",
        "transactions_abandoned",
        "transactions_unknown",
        "pages_printed",
        "print_failures",
        "id_card_reads",
        "id_card_failures",
        "help_calls",
    ),
    case_view,
)
REVIEWS = Figures(
    (
        "reviews_very_satisfied",
        "reviews_satisfied",
        "reviews_basic",
        "reviews_dissatisfied",
        "reviews_very_dissatisfied",
        "reviews_unknown",
    ),
    review_view,
)


@dataclass(frozen=True)
class Names:
    """What the answer's codes are called: sites by id, nodes and departments by code."""

    sites: Mapping[int, tuple[str, str]]
    """Site id → (code, name)."""
    nodes: Mapping[str, str]
    departments: Mapping[str, str]
    root_code: str | None = None
    """The query's node: ``by=node`` puts the sites hanging off it in its own group."""


def group_of(row: Mapping[str, Any], query: StatsQuery, names: Names) -> dict[str, Any]:
    """A row's group, as the answer shows it: each dimension's value and name."""
    group: dict[str, Any] = {}
    for dimension in query.by:
        match dimension:
            case Dimension.LEVEL:
                group["level"] = row["level"]
            case Dimension.SITE:
                code, name = names.sites.get(row["site_id"], (None, None))
                group["site"], group["site_name"] = code, name
            case Dimension.NODE:
                # '': a site hanging off the query's node itself; None: a site placed nowhere.
                node = names.root_code if row["node"] == "" else row["node"]
                group["node"], group["node_name"] = node, names.nodes.get(node or "")
            case Dimension.DEPARTMENT:
                group["department"] = row["department"]
                group["department_name"] = names.departments.get(row["department"])
            case Dimension.ITEM:
                group["item"] = row["item_code"]
            case Dimension.DAY:
                group["day"] = _day(row["day"])
            case Dimension.MONTH:
                group["month"] = row["month"]
    return group


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


_LEVEL_ORDER = {level.value: level.depth for level in Level}


def _order(group: Mapping[str, Any]) -> tuple[tuple[int, object], ...]:
    """Levels from the top, the rest by code and date; the unplaced (None) last."""
    key: list[tuple[int, object]] = []
    for name, value in group.items():
        if name.endswith("_name"):
            continue
        if value is None:
            key.append((2, ""))
        elif name == "level":
            key.append((0, _LEVEL_ORDER.get(value, len(_LEVEL_ORDER))))
        else:
            key.append((1, str(value)))
    return tuple(key)


def answer(
    rows: Sequence[Mapping[str, Any]], query: StatsQuery, figures: Figures, names: Names
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The answer's items (groups with their figures, in order) and its total."""
    total = Counts()
    items = []
    for row in rows:
        counts = Counts.of(row)
        if not any(counts.values()):
            continue  # a group with none of these figures: a site's reviews asked of its kiosk
        total.add(counts)
        items.append((group_of(row, query, names), counts))
    items.sort(key=lambda item: _order(item[0]))
    return [{**group, **figures.view(counts)} for group, counts in items], figures.view(total)
