"""The working-day (工作日) calendar that bad-review work-order deadlines are counted in.

A working day in mainland China is Monday to Friday, except the days off (放假) that the State
Council's yearly notice arranges around the statutory holidays (法定节假日), plus the weekend days
that the notice turns into working days (调休上班, make-up working days). The arrangement ships as
one TOML file per year in ``data/``; a deployment may add override files (docs/working-days.md).
A year with no data is counted by the weekend rule alone, and every answer that relied on it
says so. Pure apart from ``read_arrangement`` and ``load_calendar``; nothing reads the clock.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, timedelta
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

MAX_WORKING_DAYS = 366
"""The largest deadline allowed: more than a year of working days is a configuration mistake."""

SATURDAY = 5
"""``date.weekday()`` of Saturday; Saturday and Sunday are the weekend."""

RANGE_SEPARATOR = ".."
"""Between the first and last day of a range of days off: ``"2026-10-01..2026-10-07"``."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# date.fromisoformat alone would also take "20261001" and week dates: one spelling only.
_TOP_KEYS = frozenset({"year", "source", "replace", "holiday"})
_HOLIDAY_KEYS = frozenset({"name", "off", "work"})


class CalendarDataError(ValueError):
    """A data or override file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Holiday:
    """One holiday of a year's arrangement: its days off and its make-up working days."""

    name: str
    off: frozenset[date]
    work: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class YearArrangement:
    """One data file: a year's holidays, the notice they come from, and how an override applies."""

    year: int
    source: str
    holidays: tuple[Holiday, ...]
    origin: str
    """The file it was read from, for error messages."""
    replace: bool = False
    """Override files only: this file replaces the year's arrangement instead of adding to it."""


@dataclass(frozen=True, slots=True)
class Due:
    """A deadline: the day it falls on, and the years counted by the weekend rule alone."""

    day: date
    provisional_years: tuple[int, ...] = ()

    @property
    def provisional(self) -> bool:
        """The day may move once the official arrangement of those years is loaded."""
        return bool(self.provisional_years)


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """Which days are working days; build one with ``build`` or ``load_calendar``."""

    off: frozenset[date] = frozenset()
    work: frozenset[date] = frozenset()
    """Make-up working days (调休上班): always Saturdays or Sundays."""
    covered_years: frozenset[int] = frozenset()
    """Years with an arrangement loaded; any other year is counted by the weekend rule alone."""

    def __post_init__(self) -> None:
        # working_days_between counts weekdays and then corrects by these two sets, which is
        # only right while they are disjoint and every make-up day is a weekend day.
        if both := sorted(self.off & self.work):
            msg = f"days both off and working: {', '.join(map(str, both))}"
            raise CalendarDataError(msg)
        if weekdays := sorted(day for day in self.work if day.weekday() < SATURDAY):
            msg = f"make-up working days must be weekend days: {', '.join(map(str, weekdays))}"
            raise CalendarDataError(msg)

    @classmethod
    def build(
        cls, shipped: Iterable[YearArrangement], overrides: Iterable[YearArrangement] = ()
    ) -> WorkingCalendar:
        """The calendar of the shipped years, with ``overrides`` applied in order."""
        layers: dict[int, list[YearArrangement]] = {}
        for arrangement in shipped:
            if arrangement.replace:
                raise _error(arrangement.origin, "replace is for override files only")
            if arrangement.year in layers:
                first = layers[arrangement.year][0].origin
                raise _error(arrangement.origin, f"year {arrangement.year} is also in {first}")
            layers[arrangement.year] = [arrangement]
        for arrangement in overrides:
            if arrangement.replace:
                layers[arrangement.year] = [arrangement]
            else:
                layers.setdefault(arrangement.year, []).append(arrangement)
        off, work = _merge(layer for year in sorted(layers) for layer in layers[year])
        return cls(frozenset(off), frozenset(work), frozenset(layers))

    def is_working_day(self, day: date) -> bool:
        if day in self.work:
            return True
        return day.weekday() < SATURDAY and day not in self.off

    def add_working_days(self, start: date, n: int) -> Due:
        """The n-th working day after ``start``; ``start`` itself never counts (see the doc)."""
        if not 1 <= n <= MAX_WORKING_DAYS:
            msg = f"a deadline is 1 to {MAX_WORKING_DAYS} working days, not {n}"
            raise ValueError(msg)
        day, left = start, n
        while left:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return Due(day, self.provisional_years(start, day))

    def working_days_between(self, a: date, b: date) -> int:
        """Working days after ``a`` up to and including ``b``; negative when ``b`` is before ``a``.

        So ``working_days_between(start, add_working_days(start, n).day) == n``, and a work
        order due on ``due`` and open on ``today`` is ``working_days_between(due, today)`` late.
        """
        if b < a:
            return -self.working_days_between(b, a)
        made_up = sum(1 for day in self.work if a < day <= b)
        weekdays_off = sum(1 for day in self.off if a < day <= b and day.weekday() < SATURDAY)
        return _weekdays_up_to(b) - _weekdays_up_to(a) + made_up - weekdays_off

    def provisional_years(self, a: date, b: date) -> tuple[int, ...]:
        """The years of the days between ``a`` and ``b`` (as counted above) that have no data."""
        first, last = sorted((a, b))
        if first == last:
            return ()
        years = range((first + timedelta(days=1)).year, last.year + 1)
        return tuple(year for year in years if year not in self.covered_years)


def _weekdays_up_to(day: date) -> int:
    # Ordinal 1 (0001-01-01) is a Monday, so every full week of ordinals holds five weekdays.
    weeks, rest = divmod(day.toordinal(), 7)
    return weeks * 5 + min(rest, 5)


def _merge(arrangements: Iterable[YearArrangement]) -> tuple[dict[date, str], dict[date, str]]:
    """Every day off and every make-up day, each with the entry that lists it; no day twice."""
    off: dict[date, str] = {}
    work: dict[date, str] = {}
    for arrangement in arrangements:
        for holiday in arrangement.holidays:
            where = f"{arrangement.origin}: holiday {holiday.name!r}"
            for kind, days, same, other in (
                ("day off", holiday.off, off, work),
                ("make-up day", holiday.work, work, off),
            ):
                for day in sorted(days):
                    if day in same:
                        raise _error(where, f"{kind} {day} is already listed by {same[day]}")
                    if day in other:
                        raise _error(where, f"{day} is both off and working (see {other[day]})")
                    same[day] = where
    return off, work


def parse_arrangement(text: str, origin: str) -> YearArrangement:
    """The arrangement in TOML ``text`` (read from ``origin``); refused whole if anything is off."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(origin, f"not valid TOML: {exc}") from exc
    _known_keys(document, _TOP_KEYS, origin)
    year = document.get("year")
    if type(year) is not int or not MINYEAR <= year <= MAXYEAR:
        raise _error(origin, f"year must be a whole number such as 2026, not {year!r}")
    source = document.get("source")
    if not isinstance(source, str) or not source.strip():
        raise _error(origin, "source must name the notice the days come from")
    replace = document.get("replace", False)
    if not isinstance(replace, bool):
        raise _error(origin, f"replace must be true or false, not {replace!r}")
    entries = document.get("holiday", [])
    if not isinstance(entries, list):
        raise _error(origin, "write each holiday as a [[holiday]] table")
    holidays = tuple(
        _holiday(entry, year, f"{origin}: holiday {number}")
        for number, entry in enumerate(entries, start=1)
    )
    arrangement = YearArrangement(year, source, holidays, origin, replace)
    _merge([arrangement])
    return arrangement


def _holiday(entry: object, year: int, where: str) -> Holiday:
    if not isinstance(entry, dict):
        raise _error(where, "write each holiday as a [[holiday]] table")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _error(where, "needs a name")
    where = f"{where} ({name})"
    _known_keys(entry, _HOLIDAY_KEYS, where)
    off = _days(entry.get("off", []), year, f"{where}: off")
    work = _days(entry.get("work", []), year, f"{where}: work")
    if not off and not work:
        raise _error(where, "lists no days off and no make-up days")
    for day in sorted(work):
        if day.weekday() < SATURDAY:
            raise _error(where, f"make-up day {day} is a {day:%A}, not a Saturday or Sunday")
    return Holiday(name, off, work)


def _days(value: object, year: int, where: str) -> frozenset[date]:
    if not isinstance(value, list):
        raise _error(where, f"must be a list of dates, not {value!r}")
    days: set[date] = set()
    for item in value:
        for day in _expand(item, where):
            if day.year != year:
                raise _error(where, f"{day} is outside the file's year {year}")
            if day in days:
                raise _error(where, f"{day} is listed twice")
            days.add(day)
    return frozenset(days)


def _expand(item: object, where: str) -> Iterator[date]:
    if not isinstance(item, str):
        spelling = f'"YYYY-MM-DD" or "YYYY-MM-DD{RANGE_SEPARATOR}YYYY-MM-DD"'
        raise _error(where, f"{item!r} is not a quoted date: write {spelling}")
    first, separator, last = item.partition(RANGE_SEPARATOR)
    begin = _date(first, where)
    end = _date(last, where) if separator else begin
    if end < begin:
        raise _error(where, f"range {item!r} ends before it begins")
    for offset in range((end - begin).days + 1):
        yield begin + timedelta(days=offset)


def _date(text: str, where: str) -> date:
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise _error(where, f"{text!r} is not a date (YYYY-MM-DD)")


def _known_keys(table: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    if unknown := sorted(set(table) - allowed):
        raise _error(where, f"unknown keys {unknown} (allowed: {', '.join(sorted(allowed))})")


def _error(where: str, problem: str) -> CalendarDataError:
    return CalendarDataError(f"{where}: {problem}")


def read_arrangement(path: Path) -> YearArrangement:
    """The arrangement in the file at ``path`` (an override file, usually)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _error(str(path), "not UTF-8 text") from exc
    return parse_arrangement(text, str(path))


def load_calendar(
    overrides: Iterable[Path] = (), shipped: Traversable | None = None
) -> WorkingCalendar:
    """The shipped official years (``shipped``: the package's ``data/``) plus ``overrides``."""
    folder = shipped if shipped is not None else resources.files(__package__).joinpath("data")
    years = []
    # Every .toml file there is a year: a misnamed one is refused, never skipped.
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".toml"):
            arrangement = parse_arrangement(entry.read_text(encoding="utf-8"), entry.name)
            if entry.name != f"cn-{arrangement.year}.toml":
                raise _error(entry.name, f"a shipped year is named cn-{arrangement.year}.toml")
            years.append(arrangement)
    return WorkingCalendar.build(years, [read_arrangement(path) for path in overrides])
