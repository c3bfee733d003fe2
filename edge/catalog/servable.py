"""Which items of a catalog a terminal can serve now, given its peripherals. Pure.

A kiosk recomputes this at every peripheral change, so it is linear in the catalog: the
peripherals are summed up once per call and items that need the same kinds share one answer.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import date

import msgspec

from edge.protocol.health import PeripheralKind, PeripheralState, PeripheralStatus

from .items import Catalog, ServiceChannel, ServiceItem

WORKING_STATES = frozenset({PeripheralState.OK, PeripheralState.DEGRADED})
"""States in which a peripheral does its job; degraded (paper near end) still prints."""

Kinds = tuple[PeripheralKind, ...]


class Level(enum.StrEnum):
    """How far a terminal can take an item now, best first."""

    FULL = "full"
    """Everything the item needs works."""
    QUERY_ONLY = "query_only"
    """Can look the item up, cannot complete it ("can query, cannot print")."""
    UNAVAILABLE = "unavailable"
    """Cannot even look it up: a peripheral needed to query is missing."""
    NOT_EFFECTIVE = "not_effective"
    """Outside the item's effective dates, whatever the peripherals."""
    NOT_OFFERED = "not_offered"
    """The item is not offered on the terminal's channel (asked for with ``channel``)."""


class ItemAvailability(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One item's level; ``missing`` and ``reason`` name what keeps it from ``full``."""

    code: str
    level: Level
    missing: tuple[PeripheralKind, ...] = ()
    """Every kind the item needs (to query or to complete) that no working peripheral provides."""
    reason: str = ""
    """For people and logs: each missing kind's peripherals and why ("printer0 paper_out")."""


class Availability(msgspec.Struct, frozen=True, kw_only=True):
    """Every item of one catalog edition, in the catalog's order."""

    catalog_id: str
    version: int
    items: tuple[ItemAvailability, ...]

    def counts(self) -> dict[Level, int]:
        """Items per level, every level present (zero too), so metric series never vanish."""
        result = dict.fromkeys(Level, 0)
        for item in self.items:
            result[item.level] += 1
        return result


def servable(
    catalog: Catalog,
    peripherals: Sequence[PeripheralStatus],
    today: date,
    *,
    channel: ServiceChannel | None = None,
) -> Availability:
    """What each item of ``catalog`` can be on a terminal with ``peripherals`` on ``today``.

    With ``channel``, items not offered on it are ``not_offered``; without, channels are ignored.
    """
    view = _PeripheralView(peripherals)
    answers: dict[tuple[Kinds, Kinds], ItemAvailability] = {}
    results = []
    for item in catalog.items:
        if channel is not None and channel not in item.channels:
            results.append(ItemAvailability(code=item.code, level=Level.NOT_OFFERED))
        elif not item.effective_on(today):
            results.append(ItemAvailability(code=item.code, level=Level.NOT_EFFECTIVE))
        else:
            key = (item.query_needs, item.needs)
            if key not in answers:
                answers[key] = view.judge(item)
            results.append(msgspec.structs.replace(answers[key], code=item.code))
    return Availability(
        catalog_id=catalog.catalog_id, version=catalog.version, items=tuple(results)
    )


class _PeripheralView:
    """The peripherals summed up by kind: which kinds work, and why each other kind does not."""

    def __init__(self, peripherals: Iterable[PeripheralStatus]) -> None:
        peripherals = tuple(peripherals)
        # A peripheral of a kind this build does not know provides nothing it can rely on.
        self.working = frozenset(
            p.kind
            for p in peripherals
            if p.state in WORKING_STATES and p.kind is not PeripheralKind.UNKNOWN
        )
        broken: dict[PeripheralKind, list[str]] = {}
        for p in peripherals:
            if p.kind not in self.working:
                broken.setdefault(p.kind, []).append(f"{p.name or p.kind} {p.reason or p.state}")
        self.why = {kind: ", ".join(parts) for kind, parts in broken.items()}

    def judge(self, item: ServiceItem) -> ItemAvailability:
        """The item's level from its two levels of needs; its code is the caller's to set."""
        missing_to_query = [kind for kind in item.query_needs if kind not in self.working]
        missing = _canonical_kinds(
            [*missing_to_query, *(kind for kind in item.needs if kind not in self.working)]
        )
        if not missing:
            return ItemAvailability(code=item.code, level=Level.FULL)
        level = Level.UNAVAILABLE if missing_to_query else Level.QUERY_ONLY
        reason = "; ".join(self._why(kind) for kind in missing)
        return ItemAvailability(code=item.code, level=level, missing=missing, reason=reason)

    def _why(self, kind: PeripheralKind) -> str:
        if kind is PeripheralKind.UNKNOWN:
            return "a peripheral kind this build does not know"
        return self.why.get(kind, f"no {kind}")


def _canonical_kinds(kinds: Iterable[PeripheralKind]) -> tuple[PeripheralKind, ...]:
    return tuple(sorted(set(kinds)))
