"""Opening hours and holidays as people type them to ``termfleet sites add/set``. Pure.

``--hours`` takes the import's and the API's ``hours`` text (``mon-fri 08:30-17:30; sat
09:00-12:00``, ``24/7``), or JSON (inline, or a ``.json`` file): a string of hours, or an object
with ``hours`` and ``holidays`` as a site row has them. ``--holiday DAYS=SPANS`` sets days
(``2026-10-01..2026-10-08=closed``), ``--holiday DAYS-`` removes them. The API checks hours
and spans with the presence's own parser; only the dates are read here, to merge the changes
day by day as the API stores them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

MAX_RANGE_DAYS = 366
"""As the import's: a range of more days is refused, here before it is expanded."""
JSON_FIELDS = ("hours", "holidays")
REMOVE = None
"""A holiday change that removes its days, rather than giving them spans."""


class HoursError(ValueError):
    """An ``--hours`` or ``--holiday`` value that cannot be read; the message says why."""


@dataclass(frozen=True)
class Hours:
    """What ``--hours`` gave: the weekly hours and the holidays, each None when not given."""

    hours: str | None = None
    holidays: object = None
    """As given: the import's text, or an object of dates (or ranges) to spans."""


def read_hours(value: str) -> Hours:
    """The ``--hours`` value: text, inline JSON, or a ``.json`` file's JSON."""
    text = value.strip()
    if text.startswith(("{", '"')):
        return _from_json(text, "the --hours JSON")
    if text.endswith(".json"):
        path = Path(text).expanduser()
        try:
            return _from_json(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            msg = f"cannot read {path}: {exc.strerror}"
            raise HoursError(msg) from None
    return Hours(hours=value)


def _from_json(text: str, source: str) -> Hours:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"{source} is not JSON: {exc}"
        raise HoursError(msg) from None
    if isinstance(value, str):
        return Hours(hours=value)
    if not isinstance(value, dict):
        msg = f"{source} must be a string of hours, or an object with hours and holidays"
        raise HoursError(msg)
    unknown = sorted(set(value) - set(JSON_FIELDS))
    if unknown:
        msg = f"{source}: unknown field(s) {', '.join(unknown)}; it takes {', '.join(JSON_FIELDS)}"
        raise HoursError(msg)
    return Hours(hours=value.get("hours"), holidays=value.get("holidays"))


def holiday_changes(entries: Sequence[str]) -> list[tuple[str, str | None]]:
    """``DAYS=SPANS`` (set) and ``DAYS-`` (remove), in order: the later wins on the same day."""
    changes: list[tuple[str, str | None]] = []
    for entry in entries:
        days, sep, spans = entry.partition("=")
        if sep:
            changes.append((days.strip(), spans))
        elif entry.endswith("-") and len(entry) > 1:
            changes.append((entry[:-1].strip(), REMOVE))
        else:
            msg = f"{entry!r}: write DAYS=SPANS to set days (2026-10-01..2026-10-08=closed), or"
            msg += " DAYS- to remove them"
            raise HoursError(msg)
    return changes


def merged_holidays(base: object, changes: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """``base`` (the import's text, or an object) with ``changes`` applied, one entry a day."""
    days: dict[str, str] = {}
    for when, spans in [*_entries(base), *changes]:
        for day in expand(when):
            if spans is REMOVE:
                days.pop(day.isoformat(), None)
            else:
                days[day.isoformat()] = spans
    return dict(sorted(days.items()))


def _entries(base: object) -> list[tuple[str, str | None]]:
    """The import's ``holidays`` as (days, spans) pairs: ``"DAYS SPANS; …"`` or an object."""
    if base is None or base == "":
        return []
    if isinstance(base, str):
        pairs = (entry.strip().partition(" ") for entry in base.split(";") if entry.strip())
        return [(days, spans.strip()) for days, _, spans in pairs]
    if isinstance(base, Mapping):
        return [(str(days), str(spans)) for days, spans in base.items()]
    msg = "holidays must be text or an object of dates (or ranges) to spans"
    raise HoursError(msg)


def expand(text: str) -> Iterator[date]:
    """The dates of ``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD``."""
    first, _, last = text.partition("..")
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
    except ValueError:
        msg = f"{text!r} is not a date or range (YYYY-MM-DD..YYYY-MM-DD)"
        raise HoursError(msg) from None
    if not 0 <= (end - start).days < MAX_RANGE_DAYS:
        msg = f"{text!r} is not a range of up to {MAX_RANGE_DAYS} days"
        raise HoursError(msg)
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


def holidays_text(holidays: Mapping[str, str]) -> str:
    """Holidays as the import writes them, runs of days with the same spans as one range.

    ``{"2026-10-01": "closed", "2026-10-02": "closed"}`` → ``2026-10-01..2026-10-02 closed``.
    """
    runs: list[tuple[date, date, str]] = []
    for day, spans in sorted((date.fromisoformat(d), s) for d, s in holidays.items()):
        if runs and runs[-1][2] == spans and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day, spans)
        else:
            runs.append((day, day, spans))
    return "; ".join(
        f"{start}{f'..{end}' if end != start else ''} {spans}" for start, end, spans in runs
    )
