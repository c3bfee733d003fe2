"""The device list over the real HTTP API, for a province-sized fleet, on SQLite and PostgreSQL.

A jurisdiction tree shaped like Guangdong's (cities of six districts, districts of 13 towns and
streets, towns of 16 villages: 1 + 21 + 126 + 1,638 + 26,208 nodes at 100,000 terminals, where
Guangdong has 21 cities, 122 county-level divisions, 1,609 towns and about 26,000 villages) gets
its halls and stations with the terminals the seeds describe: a district hall with 15 kiosks and
a review pad at each of its 40 windows, a town centre with 2 kiosks, a booth and 10 pads, a
village station with its PC and a review pad, and a 粤智助 kiosk in three villages of four. The
rows go straight into the database (with labels and peripherals, a few of them faulty); then
``termfleet server run`` answers ``--requests`` requests per query shape, one at a time, from a
client in this process, and the report gives p50 and p99 of each against the issue's target:
a subtree page in p99 ≤ 50 ms.

    .venv/bin/python -m bench.api_devices                                # 100,000 terminals
    .venv/bin/python -m bench.api_devices --devices 5000 --postgres ''   # a smoke run
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiohttp
from tortoise.models import Model

from bench.ingest import temporary_postgres
from bench.stand import stand
from control_plane.db import client, database
from control_plane.db.inventory_models import DeviceLabel, PeripheralInventory
from control_plane.db.models import Device, JurisdictionNode, Site

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
TARGET_P99_MS = 50.0
HTTP_OK = 200
WARM_UP = 3
BATCH = 1000
DISTRICTS_PER_CITY = 6
TOWNS_PER_DISTRICT = 13
VILLAGES_PER_TOWN = 16
HALL = {"kiosk": 15, "review_pad": 40}
TOWN_CENTRE = {"kiosk": 2, "booth": 1, "review_pad": 10}
STATION = {"station_pc": 1, "review_pad": 1}
VILLAGE_KIOSK_SHARE = 0.75
"""Villages with a 粤智助 kiosk beside the station: most of Guangdong's have one."""
FAULTY_SHARE = 0.03
"""Terminals with a receipt printer at fault: a few percent, as paper runs out somewhere."""
AT = datetime(2026, 3, 2, tzinfo=UTC)
M = TypeVar("M", bound=Model)


@dataclass
class Fleet:
    """The tree's codes by level, and the terminals planned, in order."""

    districts: list[str] = field(default_factory=list)
    towns: list[str] = field(default_factory=list)
    nodes: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(code, level, parent) from the root down."""
    sites: list[tuple[str, str, str]] = field(default_factory=list)
    """(site code, level, node code)."""
    devices: list[tuple[str, str, str]] = field(default_factory=list)
    """(device id, kind, site code)."""


def _terminals(fleet: Fleet, site: str, counts: dict[str, int]) -> None:
    for kind, count in counts.items():
        fleet.devices += [(f"{kind}-{site}-{n:02d}", kind, site) for n in range(1, count + 1)]


def plan(devices: int, rng: random.Random) -> Fleet:
    """Districts are added whole until the fleet has ``devices`` terminals (then cut to it)."""
    fleet = Fleet(nodes=[("44", "province", None)])
    district_no = 0
    while len(fleet.devices) < devices:
        city = f"44{district_no // DISTRICTS_PER_CITY + 1:02d}"
        if district_no % DISTRICTS_PER_CITY == 0:
            fleet.nodes.append((city, "city", "44"))
        district = f"{city}{district_no % DISTRICTS_PER_CITY + 1:02d}"
        district_no += 1
        fleet.nodes.append((district, "district", city))
        fleet.districts.append(district)
        fleet.sites.append((district, "district", district))
        _terminals(fleet, district, HALL)
        for t in range(1, TOWNS_PER_DISTRICT + 1):
            town = f"{district}{t:03d}"
            fleet.nodes.append((town, "town", district))
            fleet.towns.append(town)
            fleet.sites.append((town, "town", town))
            _terminals(fleet, town, TOWN_CENTRE)
            for v in range(1, VILLAGES_PER_TOWN + 1):
                village = f"{town}{v:03d}"
                fleet.nodes.append((village, "village", town))
                fleet.sites.append((village, "village", village))
                _terminals(
                    fleet,
                    village,
                    STATION | ({"kiosk": 1} if rng.random() < VILLAGE_KIOSK_SHARE else {}),
                )
    del fleet.devices[devices:]
    return fleet


def _batches(rows: list[M]) -> Iterator[list[M]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


async def load(url: str, fleet: Fleet, rng: random.Random) -> float:
    """Write the fleet into a fresh database (migrated by ``database``); seconds taken."""
    started = time.perf_counter()
    async with database(url) as ctx:
        node_ids = await _load_tree(fleet)
        await _load_sites(fleet, node_ids)
        await _load_devices(fleet, rng)
        if url.startswith("postgres"):
            # As an import does: fresh statistics, or the planner takes the tables for empty.
            await client(ctx).execute_script("ANALYZE")
    return time.perf_counter() - started


async def _load_tree(fleet: Fleet) -> dict[str, int]:
    """The nodes, a level at a time (a node needs its parent's id); their ids by code."""
    ids: dict[str, int] = {}
    paths: dict[str, str] = {}
    for level in ("province", "city", "district", "town", "village"):
        rows = []
        for code, node_level, parent in fleet.nodes:
            if node_level == level:
                paths[code] = f"{paths[parent] if parent else '/'}{code}/"
                parent_id = ids[parent] if parent else None
                rows.append(
                    JurisdictionNode(
                        code=code, name=f"节点{code}", level=level, parent_id=parent_id,
                        path=paths[code],
                    )
                )  # fmt: skip
        for batch in _batches(rows):
            await JurisdictionNode.bulk_create(batch)
        for code, node_id in await JurisdictionNode.filter(level=level).values_list("code", "id"):
            ids[str(code)] = int(node_id)
    return ids


async def _load_sites(fleet: Fleet, node_ids: dict[str, int]) -> None:
    hours = "mon-fri 08:30-12:00,14:00-17:30"
    sites = [
        Site(
            code=code, name=f"{code}便民服务中心", level=level, node_id=node_ids[node], hours=hours
        )
        for code, level, node in fleet.sites
    ]
    for batch in _batches(sites):
        await Site.bulk_create(batch)


async def _load_devices(fleet: Fleet, rng: random.Random) -> None:
    """Devices with a vendor label each, and a receipt printer at kiosks and stations."""
    site_ids = {str(code): int(i) for code, i in await Site.all().values_list("code", "id")}
    devices, labels, printers = [], [], []
    for n, (device_id, kind, site) in enumerate(fleet.devices):
        vendor = rng.choice(("inspur", "hisense", "zhongke"))
        devices.append(
            Device(device_id=device_id, kind=kind, site_id=site_ids[site], serial=f"SN{n:07d}",
                   labels={"vendor": vendor})
        )  # fmt: skip
        labels.append(DeviceLabel(device_id=device_id, key="vendor", value=vendor))
        if kind in {"kiosk", "station_pc"}:
            faulty = rng.random() < FAULTY_SHARE
            printers.append(
                PeripheralInventory(
                    device_id=device_id, name="printer0", kind="receipt_printer",
                    status="fault" if faulty else "ok", reason="paper_out" if faulty else "",
                    status_since=AT, changed_at=AT,
                )
            )  # fmt: skip
    for device_batch in _batches(devices):
        await Device.bulk_create(device_batch)
    for label_batch in _batches(labels):
        await DeviceLabel.bulk_create(label_batch)
    for printer_batch in _batches(printers):
        await PeripheralInventory.bulk_create(printer_batch)


@dataclass(frozen=True)
class Shape:
    name: str
    query: str
    """The query string, with {district} and {town} to fill in."""
    target: bool = False
    """Whether the issue's target applies to it."""


SHAPES = (
    Shape("district subtree, first page of 100", "node={district}&limit=100", target=True),
    Shape("district subtree, page 4 of 100", "node={district}&limit=100", target=True),
    Shape("town subtree, first page", "node={town}&limit=100", target=True),
    Shape("whole tree, first page", "limit=100"),
    Shape("district + kind + label", "node={district}&kind=kiosk&label=vendor=inspur&limit=100"),
    Shape("printer faults, whole tree", "fault=receipt_printer&limit=100"),
    Shape("district, presence matching none", "node={district}&presence=online&limit=100"),
    Shape("text search, whole tree", "q=SN00012&limit=100"),
)


async def ask(
    api: str, token: str, fleet: Fleet, requests: int, seed: int
) -> dict[str, list[float]]:
    """Each shape's requests, one at a time after a few to warm up; latencies in ms."""
    rng = random.Random(seed)
    latencies: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for shape in SHAPES:
            times = latencies.setdefault(shape.name, [])
            for n in range(requests + WARM_UP):
                query = shape.query.format(district=rng.choice(fleet.districts),
                                           town=rng.choice(fleet.towns))  # fmt: skip
                pages = 4 if "page 4" in shape.name else 1
                cursor = ""
                for _ in range(pages):
                    started = time.perf_counter()
                    async with http.get(f"{api}/api/v1/devices?{query}{cursor}") as response:
                        body = await response.json()
                        # A benchmark of wrong answers measures nothing.
                        assert response.status == HTTP_OK, body  # noqa: S101
                    cursor = f"&cursor={body['next_cursor']}" if body["next_cursor"] else ""
                if n >= WARM_UP:
                    times.append((time.perf_counter() - started) * 1000)
    return latencies


@dataclass(frozen=True)
class Measured:
    backend: str
    load_s: float
    latencies_ms: dict[str, list[float]]


def measure(backend: str, url: str, fleet: Fleet, requests: int, seed: int) -> Measured:
    load_s = asyncio.run(load(url, fleet, random.Random(seed)))
    with (
        tempfile.TemporaryDirectory(prefix="termfleet-bench-devices-") as workdir,
        stand(Path(workdir), url, with_token=True) as running,
    ):
        assert running.token is not None  # noqa: S101 - asked for above
        latencies = asyncio.run(ask(running.api, running.token, fleet, requests, seed))
    return Measured(backend, load_s, latencies)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def report(fleet: Fleet, requests: int, results: list[Measured]) -> str:
    lines = [
        f"## Device list API: {len(fleet.devices):,} terminals",
        "",
        (
            f"{len(fleet.districts)} districts, {len(fleet.towns):,} towns, {len(fleet.nodes):,}"
            f" nodes, {len(fleet.sites):,} sites; {requests} requests per shape, one at a time,"
            f" through `termfleet server run`; {os.cpu_count()} cores, load"
            f" {os.getloadavg()[0]:.2f}. Target: a subtree page in p99 ≤ {TARGET_P99_MS:.0f} ms."
        ),
        "",
        "| database | load | query | p50 | p99 | target |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for shape in SHAPES:
            times = result.latencies_ms[shape.name]
            p99 = percentile(times, 0.99)
            verdict = ("met" if p99 <= TARGET_P99_MS else "**missed**") if shape.target else ""
            lines.append(
                f"| {result.backend} | {result.load_s:.0f} s | {shape.name} "
                f"| {statistics.median(times):.1f} ms | {p99:.1f} ms | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def run(*, quick: bool = False, postgres_admin_url: str | None = DEFAULT_POSTGRES) -> str:
    """The report's section, as ``bench/run.py`` takes them (``quick``: a smoke run)."""
    devices, requests = (5000, 20) if quick else (100_000, 200)
    return measure_all(devices, requests, postgres_admin_url=postgres_admin_url)


def measure_all(
    devices: int,
    requests: int,
    *,
    postgres_admin_url: str | None,
    seed: int = 1,
    sqlite: bool = True,
) -> str:
    fleet = plan(devices, random.Random(seed))
    results = []
    if sqlite:
        with tempfile.TemporaryDirectory(prefix="termfleet-bench-devices-db-") as folder:
            url = f"sqlite://{folder}/devices.sqlite3"
            results.append(measure("SQLite", url, fleet, requests, seed))
    if postgres_admin_url:
        with temporary_postgres(postgres_admin_url) as url:
            results.append(measure("PostgreSQL", url, fleet, requests, seed))
    return report(fleet, requests, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000, help="terminals in the fleet")
    parser.add_argument("--requests", type=int, default=200, help="requests per query shape")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TERMFLEET_BENCH_POSTGRES", DEFAULT_POSTGRES),
        help="a PostgreSQL server to make a throwaway database on ('' leaves it out)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--quick", action="store_true", help="5,000 terminals, 20 requests")
    args = parser.parse_args()
    print(
        measure_all(
            5000 if args.quick else args.devices,
            20 if args.quick else args.requests,
            postgres_admin_url=args.postgres or None,
            seed=args.seed,
            sqlite=not args.no_sqlite,
        )
    )


if __name__ == "__main__":
    main()
