"""Keyset paging of the administration listings: a page of items and the key to go on after. Pure.

Listings are ordered by a unique key (a code, a staff number, a token id); a page is fetched as
``limit + 1`` rows after the last key of the previous page, and the extra row says whether there
is a next one. No OFFSET: a page costs the same however deep the listing goes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K", str, int)
R = TypeVar("R")


@dataclass(frozen=True)
class Page(Generic[K]):
    items: list[dict[str, Any]]
    next_after: K | None
    """The key the next page starts after; None on the last page."""


def page_of(
    rows: Sequence[R], limit: int, key: Callable[[R], K], view: Callable[[R], dict[str, Any]]
) -> Page[K]:
    """The first ``limit`` of ``rows`` (fetched as ``limit + 1``) as views, and where to go on."""
    shown = rows[:limit]
    next_after = key(shown[-1]) if len(rows) > limit and shown else None
    return Page([view(row) for row in shown], next_after)
