"""A province-sized fleet and a year of its daily roll-ups, generated directly. Pure.

The shape follows the seeds (Conghua, Zengcheng, Huadu; DOMAIN.md): per district one hall of
about 110 terminals (a review pad per window and a dozen kiosks), 15 town centres of 18 and
250 village stations of 2 or 3, so 100,000 terminals make about 100 districts, 1,500 towns and
25,000 villages, near Guangdong's own counts. 33 approving departments offer 1,500 service
items; a district hall offers them all, a town centre the 300 most asked for, a village station
60. Cases a day: Conghua's Q1 好差评 figures (district hall 34,435, towns 5,277, villages 1,311
over about 60 working days) made half again as busy for busier districts and their kiosks'
self-service, so a hall handles about 600 a day, a town centre 20, a village station 1; items
are drawn by popularity (Zipf, s = 1.07). Halls open six days a week, the rest five.

Each (day, site, department, item) with a case is one daily row; each site with a kiosk also
has a row without an item for its prints, ID-card reads and help calls. Hourly rows are counted,
not made: (hour, item) pairs, the cases spread over eight open hours.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

HALL, TOWN, VILLAGE = "district", "town", "village"
TERMINALS = {HALL: 110, TOWN: 18, VILLAGE: 2.5}
TOWNS_PER_DISTRICT = 15
VILLAGES_PER_TOWN = 17
DISTRICTS_PER_CITY = 5
DEPARTMENTS = 33
ITEMS = 1500
CATALOG = {HALL: 1500, TOWN: 300, VILLAGE: 60}
CASES_PER_DAY = {HALL: 600.0, TOWN: 20.0, VILLAGE: 1.0}
OPEN_WEEKDAYS = {HALL: 6, TOWN: 5, VILLAGE: 5}
KIOSK_SHARE = {HALL: 1.0, TOWN: 1.0, VILLAGE: 0.3}
OPEN_HOURS = 8
ZIPF_S = 1.07


@dataclass(frozen=True)
class Node:
    code: str
    level: str
    parent: str | None


@dataclass(frozen=True)
class BenchSite:
    code: str
    level: str
    node: str
    kiosk: bool


@dataclass
class Fleet:
    nodes: list[Node] = field(default_factory=list)
    sites: list[BenchSite] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)

    @property
    def terminals(self) -> int:
        return round(sum(TERMINALS[site.level] for site in self.sites))


def plan(devices: int, rng: random.Random) -> Fleet:
    """A province of about ``devices`` terminals (at least one district)."""
    per_district = TERMINALS[HALL] + TOWNS_PER_DISTRICT * (
        TERMINALS[TOWN] + VILLAGES_PER_TOWN * TERMINALS[VILLAGE]
    )
    fleet = Fleet(nodes=[Node("44", "province", None)])
    for n in range(max(1, round(devices / per_district))):
        city = f"44{n // DISTRICTS_PER_CITY + 1:02d}"
        if n % DISTRICTS_PER_CITY == 0:
            fleet.nodes.append(Node(city, "city", "44"))
        district = f"{city}{n % DISTRICTS_PER_CITY + 1:02d}"
        fleet.nodes.append(Node(district, "district", city))
        fleet.districts.append(district)
        fleet.sites.append(BenchSite(f"s{district}", HALL, district, kiosk=True))
        for t in range(1, TOWNS_PER_DISTRICT + 1):
            town = f"{district}{t:03d}"
            fleet.nodes.append(Node(town, "town", district))
            fleet.sites.append(BenchSite(f"s{town}", TOWN, town, kiosk=True))
            for v in range(1, VILLAGES_PER_TOWN + 1):
                village = f"{town}{v:03d}"
                fleet.nodes.append(Node(village, "village", town))
                kiosk = rng.random() < KIOSK_SHARE[VILLAGE]
                fleet.sites.append(BenchSite(f"s{village}", VILLAGE, village, kiosk))
    return fleet


ITEM_CODES = [(f"d{i % DEPARTMENTS:02d}", f"I{i:04d}") for i in range(ITEMS)]
_CUMULATIVE = list(itertools.accumulate(1 / (rank + 1) ** ZIPF_S for rank in range(ITEMS)))


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:  # noqa: PLR2004 - where the normal approximation is good enough
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@dataclass
class Tally:
    daily_rows: int = 0
    hourly_rows: int = 0
    monthly_rows: int = 0
    cases: int = 0


DailyRow = tuple[date, int, str, str, int, int, int, int, int, int, int]
"""(day, site_id, department, item, window_cases, transactions_completed, pages_printed,
id_card_reads, help_calls, reviews_very_satisfied, reviews_satisfied)"""


@dataclass(frozen=True)
class Period:
    first_day: date
    days: int


def site_days(site: BenchSite, period: Period) -> Iterator[date]:
    for offset in range(period.days):
        day = period.first_day + timedelta(days=offset)
        if day.weekday() < OPEN_WEEKDAYS[site.level]:
            yield day


def daily_rows(
    site: BenchSite, site_id: int, period: Period, rng: random.Random, tally: Tally
) -> Iterator[DailyRow]:
    """The site's daily rows over ``period`` (``DailyRow``), counted into ``tally``."""
    catalog = CATALOG[site.level]
    weights = _CUMULATIVE[:catalog]
    for day in site_days(site, period):
        cases = _poisson(rng, CASES_PER_DAY[site.level])
        if not cases:
            continue
        drawn = rng.choices(range(catalog), cum_weights=weights, k=cases)
        per_item = Counter(drawn)
        hours = {(rng.randrange(OPEN_HOURS), item) for item in drawn}
        tally.cases += cases
        tally.hourly_rows += len(hours)
        for item, count in per_item.items():
            department, code = ITEM_CODES[item]
            window = count - count // 3
            very = window * 4 // 5
            yield (day, site_id, department, code, window, count // 3, 0, 0, 0, very, window - very)
        tally.daily_rows += len(per_item)
        if site.kiosk:
            kiosk_use = max(1, cases // 3)
            tally.daily_rows += 1
            tally.hourly_rows += min(OPEN_HOURS, kiosk_use)
            yield (day, site_id, "", "", 0, 0, kiosk_use * 2, kiosk_use, kiosk_use // 40, 0, 0)
