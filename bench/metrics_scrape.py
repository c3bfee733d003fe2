"""One /metrics scrape of a 100,000-terminal province: how long, and how many series.

The fleet is ``tests/support/province_fleet.py``'s (the series budget test's): 21 cities, 120
districts, 1,600 towns, 33,600 villages, about 15 % offline, faults of every kind. Measured:
``generate_latest`` of the control plane's registry (every fleet gauge, computed at scrape time
from memory), median and worst of ``--runs`` scrapes, and the series it holds.

Reference line: ``FleetState.counts`` over the same fleet, one pass that computes every
device's availability and nothing else (what the first collector, devices by kind and presence,
cost), so the ratio shows what the per-level, per-district, per-site, fault and backlog gauges
add to it, whatever the machine's load.

Run from the repo root: ``python -m bench.metrics_scrape [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.metrics import ControlPlaneMetrics
from tests.support.province_fleet import NOW, province


def timed(action: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="scrapes to time (default 5)")
    args = parser.parse_args()

    fleet = province().fleet()
    metrics = ControlPlaneMetrics(fleet, lambda: NOW)
    exposition = generate_latest(metrics.registry).decode()
    series = sum(len(f.samples) for f in text_string_to_metric_families(exposition))

    scrape = timed(lambda: generate_latest(metrics.registry), args.runs)
    reference = timed(lambda: fleet.counts(NOW), args.runs)

    median, base = statistics.median(scrape), statistics.median(reference)
    print(f"terminals: {len(fleet)}; series: {series}; exposition: {len(exposition)} bytes")
    print(
        f"scrape (generate_latest): median {median * 1000:.0f} ms, max {max(scrape) * 1000:.0f} ms"
    )
    print(f"reference (FleetState.counts): median {base * 1000:.0f} ms")
    print(f"ratio scrape / reference: {median / base:.2f}")
    print(f"cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
