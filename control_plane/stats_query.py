"""A statistics request, read from its query parameters and checked. Pure.

``by`` names what to group by, as a comma-separated list or repeated (``by=level,month``):

| ``by`` | one group per |
|---|---|
| ``level`` | hall level of the site: district, town, village, … |
| ``site`` | site (hall or station) |
| ``node`` | node just below the query's node (its own sites form its own group) |
| ``department`` | department code of the records |
| ``item`` | service item code |
| ``day`` / ``month`` | calendar day / month in the statistics' time zone (not both) |

Filters: ``node`` (a subtree), ``from`` and ``to`` (days, both included), ``department``,
``item``, ``level``. Every mistake is a ``StatsParameterError`` naming the parameter.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from . import jurisdiction
from .jurisdiction import JurisdictionError, Level

MAX_PERIOD_DAYS = 1096
"""Three years, as long as the daily roll-ups are kept by default."""
DEFAULT_PERIOD_DAYS = 30
"""Without ``from``: the 30 days up to ``to`` (today by default)."""
MAX_CODE_LENGTH = 64
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Dimension(StrEnum):
    LEVEL = "level"
    SITE = "site"
    NODE = "node"
    DEPARTMENT = "department"
    ITEM = "item"
    DAY = "day"
    MONTH = "month"


PARAMETERS = ("by", "from", "to", "node", "department", "item", "level")


class StatsParameterError(ValueError):
    """A query parameter the statistics cannot take; ``parameter`` names it."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class StatsQuery:
    """What to count over, and how to group it."""

    first_day: date
    last_day: date
    by: tuple[Dimension, ...] = ()
    node: str | None = None
    department: str | None = None
    item: str | None = None
    level: Level | None = None

    def filters(self) -> dict[str, str | None]:
        return {"department": self.department, "item": self.item, "level": self.level}


def parse_query(params: Iterable[tuple[str, str]], today: date) -> StatsQuery:
    """Read a request's query parameters (repeats kept, in order); ``today``: the default ``to``."""
    given: dict[str, list[str]] = {}
    for name, value in params:
        if name not in PARAMETERS:
            known = ", ".join(PARAMETERS)
            msg = f"unknown parameter {name!r}: the statistics take {known}"
            raise StatsParameterError(msg, name)
        given.setdefault(name, []).append(value)
    single = {name: _single(name, values) for name, values in given.items() if name != "by"}
    last_day = _day("to", single["to"]) if "to" in single else today
    first_day = (
        _day("from", single["from"])
        if "from" in single
        else last_day - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    )
    _check_period(first_day, last_day)
    return StatsQuery(
        first_day=first_day,
        last_day=last_day,
        by=_dimensions(given.get("by", [])),
        node=_node(single["node"]) if "node" in single else None,
        department=_code("department", single["department"]) if "department" in single else None,
        item=_code("item", single["item"]) if "item" in single else None,
        level=_level(single["level"]) if "level" in single else None,
    )


def _single(name: str, values: list[str]) -> str:
    if len(values) > 1:
        msg = f"{name} is given {len(values)} times: give it once"
        raise StatsParameterError(msg, name)
    return values[0]


def _dimensions(values: list[str]) -> tuple[Dimension, ...]:
    names = [part.strip() for value in values for part in value.split(",")]
    known = ", ".join(dimension.value for dimension in Dimension)
    by: list[Dimension] = []
    for name in names:
        try:
            dimension = Dimension(name)
        except ValueError:
            msg = f"by: {name!r} is not something to group by ({known})"
            raise StatsParameterError(msg, "by") from None
        if dimension in by:
            msg = f"by: {name} is named twice"
            raise StatsParameterError(msg, "by")
        by.append(dimension)
    if Dimension.DAY in by and Dimension.MONTH in by:
        msg = "by: day and month together would repeat each day's month; pick one"
        raise StatsParameterError(msg, "by")
    return tuple(by)


def _day(name: str, text: str) -> date:
    # fromisoformat alone would take 20260101 and 2026-W01-1 too.
    if _DAY.fullmatch(text):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(text)
    msg = f"{name} must be a day as YYYY-MM-DD, not {text!r}"
    raise StatsParameterError(msg, name)


def _check_period(first_day: date, last_day: date) -> None:
    if first_day > last_day:
        msg = f"from ({first_day}) is after to ({last_day})"
        raise StatsParameterError(msg, "from")
    days = (last_day - first_day).days + 1
    if days > MAX_PERIOD_DAYS:
        msg = f"from..to spans {days} days, more than {MAX_PERIOD_DAYS}: ask in parts"
        raise StatsParameterError(msg, "from")


def _node(text: str) -> str:
    try:
        return jurisdiction.check_code(text)
    except JurisdictionError as exc:
        msg = f"node: {exc}"
        raise StatsParameterError(msg, "node") from None


def _code(name: str, text: str) -> str:
    if not text or len(text) > MAX_CODE_LENGTH:
        msg = f"{name} must be a code of 1 to {MAX_CODE_LENGTH} characters"
        raise StatsParameterError(msg, name)
    return text


def _level(text: str) -> Level:
    try:
        return Level(text)
    except ValueError:
        known = ", ".join(level.value for level in Level)
        msg = f"level must be one of {known}, not {text!r}"
        raise StatsParameterError(msg, "level") from None
