"""Statistics of a district over a year, through the real HTTP API, on SQLite and PostgreSQL.

A year of daily and monthly roll-ups of a province-sized fleet (``bench/stats_fleet.py`` says
how it is shaped) goes straight into a database; ``termfleet server run`` then answers about
100 requests per query shape, one at a time, from a client in this process: p50 and p99 of
each, against the target p99 ≤ 200 ms for a district over a year (the issue's). The report
states the rows, the database's size, and the hourly rows the same year would have (counted
by the generator, sized from the daily table's bytes per row).

    .venv/bin/python -m bench.api_stats --devices 100000 --days 365     # from the repo root
    .venv/bin/python -m bench.api_stats --devices 5000 --days 60 --postgres ''   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.ingest import temporary_postgres
from bench.stand import stand
from bench.stats_fleet import Fleet, Period, Tally, daily_rows, plan
from control_plane.db import client, database
from control_plane.db.models import JurisdictionNode, Site
from control_plane.rollup_counts import COUNTERS

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
TARGET_P99_MS = 200.0
HTTP_OK = 200
LAST_DAY = date(2025, 12, 31)
CHUNK = 50_000
GENERATED = (
    "window_cases",
    "transactions_completed",
    "pages_printed",
    "id_card_reads",
    "help_calls",
    "reviews_very_satisfied",
    "reviews_satisfied",
)
"""The counters ``daily_rows`` fills, in its order; the rest are 0."""
COLUMNS = ("day", "site_id", "department", "item_code", *COUNTERS)


@dataclass(frozen=True)
class Shape:
    name: str
    query: str
    """The query string, with {district}, {first} and {last} to fill in."""
    requests: int


def shapes(requests: int) -> list[Shape]:
    return [
        Shape("a district by=level (the seed table)", "by=level&node={district}", requests),
        Shape("a district by=level,month", "by=level,month&node={district}", requests),
        Shape("a district by=department", "by=department&node={district}", requests),
        Shape("the province by=level", "by=level&node=44", max(5, requests // 10)),
    ]


@dataclass
class Measured:
    backend: str
    rows: int
    load_s: float
    size_bytes: int
    table_bytes: int
    monthly_bytes: int
    latencies_ms: dict[str, list[float]]


# --- loading ---------------------------------------------------------------------------------


async def load(url: str, fleet: Fleet, days: int, seed: int, tally: Tally) -> float:
    """Put the fleet's tree, sites and daily roll-ups into the database; the seconds it took."""
    started = time.perf_counter()
    async with database(url) as ctx:
        site_ids = await _tree_and_sites(fleet)
        rows = _rows(fleet, site_ids, days, seed, tally)
        conn = client(ctx)
        if conn.capabilities.dialect == "postgres":
            await _copy_postgres(url, rows)
            await conn.execute_script("ANALYZE")
        else:
            await _insert_sqlite(conn, rows)
            await conn.execute_script("ANALYZE")
    return time.perf_counter() - started


async def _tree_and_sites(fleet: Fleet) -> dict[str, int]:
    ids: dict[str, int] = {}
    paths: dict[str, str] = {}
    for level in ("province", "city", "district", "town", "village"):
        batch = [node for node in fleet.nodes if node.level == level]
        for node in batch:
            paths[node.code] = f"{paths.get(node.parent or '', '/')}{node.code}/"
        await JurisdictionNode.bulk_create(
            [
                JurisdictionNode(
                    code=node.code,
                    name=f"n{node.code}",
                    level=level,
                    parent_id=ids.get(node.parent or ""),
                    path=paths[node.code],
                )
                for node in batch
            ],
            batch_size=5000,
        )
        codes = [node.code for node in batch]
        for start in range(0, len(codes), 5000):
            found = await JurisdictionNode.filter(code__in=codes[start : start + 5000])
            ids.update((node.code, node.id) for node in found)
    await Site.bulk_create(
        [
            Site(
                code=s.code, name=f"hall {s.code}", level=s.level, node_id=ids[s.node], hours="24/7"
            )
            for s in fleet.sites
        ],
        batch_size=5000,
    )
    return {site.code: site.id for site in await Site.all()}


Row = tuple[Any, ...]


def _rows(
    fleet: Fleet, site_ids: dict[str, int], days: int, seed: int, tally: Tally
) -> Iterator[tuple[str, Row]]:
    """(table, row): each site's daily rows, then its monthly rows, their sums."""
    rng = random.Random(seed)
    period = Period(LAST_DAY - timedelta(days=days - 1), days)
    positions = [COUNTERS.index(name) for name in GENERATED]
    for site in fleet.sites:
        months: dict[tuple[Any, ...], list[int]] = {}
        for row in daily_rows(site, site_ids[site.code], period, rng, tally):
            counters = [0] * len(COUNTERS)
            for position, value in zip(positions, row[4:], strict=True):
                counters[position] = value
            yield "rollup_day", (*row[:4], *counters)
            month = months.setdefault((row[0].replace(day=1), *row[1:4]), [0] * len(COUNTERS))
            for position, value in enumerate(counters):
                month[position] += value
        tally.monthly_rows += len(months)
        for key, counters in months.items():
            yield "rollup_month", (*key, *counters)


def _chunks(rows: Iterable[tuple[str, Row]]) -> Iterator[tuple[str, list[Row]]]:
    chunks: dict[str, list[Row]] = {"rollup_day": [], "rollup_month": []}
    for table, row in rows:
        chunk = chunks[table]
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield table, chunk
            chunks[table] = []
    for table, chunk in chunks.items():
        if chunk:
            yield table, chunk


async def _insert_sqlite(conn: Any, rows: Iterable[tuple[str, Row]]) -> None:  # noqa: ANN401 - tortoise's client
    for table, chunk in _chunks(rows):
        columns = (("month" if table == "rollup_month" else "day"), *COLUMNS[1:])
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)})"  # noqa: S608 - fixed names
            f" VALUES ({', '.join('?' * len(columns))})"
        )
        await conn.execute_many(sql, [[row[0].isoformat(), *row[1:]] for row in chunk])


async def _copy_postgres(url: str, rows: Iterable[tuple[str, Row]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for table, chunk in _chunks(rows):
            columns = (("month" if table == "rollup_month" else "day"), *COLUMNS[1:])
            await conn.copy_records_to_table(table, records=chunk, columns=columns)
    finally:
        await conn.close()


async def sizes(url: str) -> tuple[int, int, int]:
    """The database's size, the daily and the monthly roll-ups' (with indexes), in bytes."""
    if url.startswith("sqlite://"):
        path = Path(url.removeprefix("sqlite://"))
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        async with database(url) as ctx:
            found = [
                await client(ctx).execute_query_dict(
                    "SELECT SUM(pgsize) AS size FROM dbstat WHERE name LIKE ?", [f"%{table}%"]
                )
                for table in ("rollup_day", "rollup_month")
            ]
        return total, int(found[0][0]["size"] or 0), int(found[1][0]["size"] or 0)
    conn = await asyncpg.connect(url)
    try:
        total = await conn.fetchval("SELECT pg_database_size(current_database())")
        daily = await conn.fetchval("SELECT pg_total_relation_size('rollup_day')")
        monthly = await conn.fetchval("SELECT pg_total_relation_size('rollup_month')")
    finally:
        await conn.close()
    return int(total), int(daily), int(monthly)


# --- asking ----------------------------------------------------------------------------------


async def ask(
    api: str, token: str, fleet: Fleet, args: argparse.Namespace
) -> dict[str, list[float]]:
    """Each shape's requests, one at a time, after a few to warm up; their latencies in ms."""
    rng = random.Random(args.seed)
    days = args.days
    first = (LAST_DAY - timedelta(days=days - 1)).isoformat()
    headers = {"Authorization": f"Bearer {token}"}
    latencies: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(headers=headers) as http:
        for shape in shapes(args.requests):
            times = latencies.setdefault(shape.name, [])
            for n in range(shape.requests + 3):
                district = rng.choice(fleet.districts)
                query = shape.query.format(district=district)
                url = f"{api}/api/v1/stats/cases?{query}&from={first}&to={LAST_DAY}"
                started = time.perf_counter()
                async with http.get(url) as response:
                    body = await response.json()
                    # A benchmark of wrong answers measures nothing.
                    assert response.status == HTTP_OK, body  # noqa: S101
                if n >= 3:  # noqa: PLR2004 - the warm-up requests
                    times.append((time.perf_counter() - started) * 1000)
    return latencies


def measure(
    backend: str, url: str, fleet: Fleet, args: argparse.Namespace, tally: Tally
) -> Measured:
    """Load the roll-ups into ``url`` (counting them into ``tally``), then ask the server."""
    load_s = asyncio.run(load(url, fleet, args.days, args.seed, tally))
    total, table, monthly = asyncio.run(sizes(url))
    with (
        tempfile.TemporaryDirectory(prefix="termfleet-bench-stats-") as workdir,
        stand(Path(workdir), url, with_token=True) as running,
    ):
        assert running.token is not None  # noqa: S101 - asked for above
        latencies = asyncio.run(ask(running.api, running.token, fleet, args))
    return Measured(backend, tally.daily_rows, load_s, total, table, monthly, latencies)


# --- the report ------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def report(fleet: Fleet, tally: Tally, args: argparse.Namespace, results: list[Measured]) -> str:
    per_district = tally.daily_rows / max(1, len(fleet.districts))
    lines = [
        f"# Statistics API: {fleet.terminals:,} terminals, {args.days} days of roll-ups",
        "",
        (
            f"- fleet: {len(fleet.districts)} districts, {len(fleet.sites):,} sites, "
            f"{len(fleet.nodes):,} nodes; {tally.cases:,} cases generated"
        ),
        f"- daily roll-up rows: {tally.daily_rows:,} ({per_district:,.0f} per district)",
        (
            f"- monthly roll-up rows: {tally.monthly_rows:,}"
            f" ({tally.monthly_rows / max(1, len(fleet.districts)):,.0f} per district)"
        ),
        (
            f"- hourly roll-up rows the same period would have: {tally.hourly_rows:,} "
            f"({tally.hourly_rows / max(1, tally.daily_rows):.1f} times the daily)"
        ),
        f"- machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        "",
        "| database | load | database size | daily table | monthly table | hourly table (est.) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        per_row = result.table_bytes / max(1, result.rows)
        lines.append(
            f"| {result.backend} | {result.load_s:.0f} s | {_mib(result.size_bytes)} "
            f"| {_mib(result.table_bytes)} ({per_row:.0f} B/row) "
            f"| {_mib(result.monthly_bytes)} | {_mib(per_row * tally.hourly_rows)} |"
        )
    lines += [
        "",
        "| database | query, over the whole period | requests | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        for name, times in result.latencies_ms.items():
            lines.append(
                f"| {result.backend} | {name} | {len(times)} | {statistics.median(times):.0f} ms "
                f"| {percentile(times, 0.99):.0f} ms |"
            )
    lines.append("")
    for result in results:
        p99 = percentile(next(iter(result.latencies_ms.values())), 0.99)
        verdict = "meets" if p99 <= TARGET_P99_MS else "misses"
        lines.append(
            f"- {result.backend}: a district over {args.days} days, p99 {p99:.0f} ms: "
            f"{verdict} the target of {TARGET_P99_MS:.0f} ms"
        )
    return "\n".join(lines)


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000, help="terminals in the fleet")
    parser.add_argument("--days", type=int, default=365, help="days of roll-ups")
    parser.add_argument("--requests", type=int, default=100, help="requests per query shape")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TERMFLEET_BENCH_POSTGRES", DEFAULT_POSTGRES),
        help="a PostgreSQL server to make a throwaway database on ('' leaves it out)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    fleet = plan(args.devices, random.Random(args.seed))
    results = []
    tally = Tally()  # the same rows for each database: counted once
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="termfleet-bench-stats-db-") as folder:
            url = f"sqlite://{folder}/stats.sqlite3"
            results.append(measure("SQLite", url, fleet, args, tally))
    if args.postgres:
        with temporary_postgres(args.postgres) as url:
            results.append(measure("PostgreSQL", url, fleet, args, Tally() if results else tally))
    print(report(fleet, tally, args, results))


if __name__ == "__main__":
    main()
