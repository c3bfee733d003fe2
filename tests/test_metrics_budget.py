"""The series budget: a 100,000-terminal province exposes at most ``SERIES_BUDGET`` series.

Every gauge computed from the fleet state is scraped over ``tests/support/province_fleet.py``
(21 cities, 120 districts, 1,600 towns, 33,600 villages; the four kinds; about 15 % offline;
every known peripheral fault and unknown ones; backlogs up to 200,000). Every labelled counter
and gauge of ``ControlPlaneMetrics`` is driven through every label value the domain allows, and
the collectors ``server.py`` adds to the same registry (rollouts, config layers, work orders,
halls' reviews) are filled to a busy day's size. A scrape's series are counted as Prometheus
would read them. How long that scrape takes is measured by ``bench/metrics_scrape.py``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.fleet import FleetState
from control_plane.hall_review_metrics import HallCount, HallReviewGauges
from control_plane.metrics import ControlPlaneMetrics
from control_plane.reviews.chain_check import ProblemKind
from control_plane.reviews.intake import RefusalReason
from control_plane.rollout_metrics import RolloutCollector
from control_plane.rollouts import DeviceStep, RolloutPhase
from control_plane.site_labels import SiteLabels
from control_plane.twin import LayerCounts
from control_plane.twin_publish import TwinCollector
from control_plane.usage_metrics import EVENTS, LEVELS, OTHER_DEPARTMENT, UNKNOWN_EVENT
from control_plane.workorder_metrics import WorkOrderGauges
from edge.protocol import Channel, Rating, RejectReason, TransactionOutcome
from monitoring.metrics import MAX_DEPARTMENTS, SERIES_BUDGET, TOP_SITES
from provisioning.claims import Refusal
from provisioning.reconcile import DriftKind
from tests.support.province_fleet import NOW, TERMINALS, province

ROLLOUTS_UNDER_WAY = 3
CONFIG_LAYERS = 8


@pytest.fixture(scope="module")
def province_fleet() -> FleetState:
    return province().fleet()


def drive_every_label(metrics: ControlPlaneMetrics) -> None:
    """Every labelled counter and gauge of ``metrics`` through every value its domain allows."""
    for channel in Channel:
        metrics.ingest_messages.labels(channel.value).inc()
    for reason in RejectReason:
        metrics.ingest_rejected.labels(reason.value).inc()
    metrics.ingest_errors.inc()
    metrics.ingest_records.inc()
    metrics.ingest_commit_seconds.observe(0.01)
    metrics.mqtt_connected.set(1)
    departments = [f"{n:03}" for n in range(MAX_DEPARTMENTS)] + [OTHER_DEPARTMENT]
    assert len(departments) == MAX_DEPARTMENTS + 1
    for level in LEVELS:
        for rating in Rating:
            metrics.reviews.labels(rating.value, level).inc()
        metrics.work_orders_opened.labels(level).inc()
        for department in departments:
            metrics.transactions.labels(department, level).inc()
        for outcome in TransactionOutcome:
            metrics.transaction_outcomes.labels(outcome.value, level).inc()
        for event in (*EVENTS, UNKNOWN_EVENT):
            metrics.usage_events.labels(event, level).inc()
        metrics.printed_pages.labels(level).inc()
    metrics.publish_to_commit_seconds.observe_all([0.01, 5.0, 7200.0])
    drive_reviews_and_provisioning(metrics)


def drive_reviews_and_provisioning(metrics: ControlPlaneMetrics) -> None:
    for refusal in RefusalReason:
        metrics.review_refusals.labels(refusal.value).inc()
    for problem in ProblemKind:
        metrics.review_chain_problems.labels(problem.value).inc()
    for claim in ("accepted", *(r.value for r in Refusal)):
        metrics.enrollments.labels(claim).inc()
    for drift in DriftKind:
        metrics.broker_drift.labels(drift.value).set(1)
    for result in ("ok", "failed"):
        metrics.broker_reconciles.labels(result).inc()
    metrics.broker_save_failures.inc()
    metrics.broker_file_in_step().set(1)


def add_server_collectors(metrics: ControlPlaneMetrics) -> None:
    """What ``server.py`` registers besides, each at a busy day's size."""
    tracked = [
        SimpleNamespace(
            rollout_id=f"r{n}",
            final=n >= ROLLOUTS_UNDER_WAY,
            state=SimpleNamespace(phase=phase, wave=1),
            devices={f"d{i}": SimpleNamespace(step=step) for i, step in enumerate(DeviceStep)},
        )
        for n, phase in enumerate(RolloutPhase)
    ]
    executor = SimpleNamespace(rollouts={t.rollout_id: t for t in tracked})
    metrics.registry.register(RolloutCollector(lambda: cast("Any", executor)))
    layers = {f"layer-{n}": LayerCounts() for n in range(CONFIG_LAYERS)}
    metrics.registry.register(TwinCollector(cast("Any", SimpleNamespace(counts=layers))))
    work_orders = WorkOrderGauges(lambda: NOW)
    work_orders.open = Counter(dict.fromkeys(LEVELS, 3))
    work_orders.overdue = Counter(dict.fromkeys(LEVELS, 1))
    metrics.registry.register(work_orders)
    halls = HallReviewGauges(lambda: NOW)
    where = SiteLabels("4401", "440117", "town")
    halls.halls = [HallCount(f"t{n}", where, 1, 9) for n in range(TOP_SITES)]
    metrics.registry.register(halls)


def series_by_metric(exposition: str) -> Counter[str]:
    """Series per metric family, as Prometheus would store them."""
    return Counter(
        family.name for family in text_string_to_metric_families(exposition) for _ in family.samples
    )


def test_a_province_of_100k_terminals_stays_within_the_series_budget(
    province_fleet: FleetState,
) -> None:
    metrics = ControlPlaneMetrics(province_fleet, lambda: NOW)
    drive_every_label(metrics)
    add_server_collectors(metrics)

    series = series_by_metric(generate_latest(metrics.registry).decode())

    total = sum(series.values())
    breakdown = "\n".join(f"{n:6} {name}" for name, n in series.most_common())
    assert total <= SERIES_BUDGET, f"{total} series > {SERIES_BUDGET}:\n{breakdown}"
    print(f"\n{total} series for {len(province_fleet)} terminals:\n{breakdown}")  # noqa: T201


def test_the_province_is_what_the_budget_claims(province_fleet: FleetState) -> None:
    """The fleet is as big and as troubled as the budget test says, or the test proves little."""
    metrics = ControlPlaneMetrics(province_fleet, lambda: NOW)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in family.samples
    }

    def total(name: str, **labels: str) -> float:
        return sum(
            v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)
        )

    assert len(province_fleet) == TERMINALS
    assert 0.10 <= total("termfleet_devices", presence="offline_unexpected") / TERMINALS <= 0.20
    assert total("termfleet_devices", presence="offline_expected") > 0
    assert (
        len({dict(ls)["district"] for n, ls in samples if n == "termfleet_district_devices"}) > 120
    )
    faults = [v for (n, _), v in samples.items() if n == "termfleet_peripheral_faults"]
    assert min(faults) > 0  # every known pair is faulty somewhere
    # Each site gauge is full: the province has more troubled sites than TOP_SITES.
    for name in (
        "termfleet_site_devices_offline_unexpected",
        "termfleet_site_windows_without_pad",
    ):
        assert len({dict(ls)["site"] for n, ls in samples if n == name}) == TOP_SITES
    assert total("termfleet_outbox_backlog_records_bucket", le="+Inf") > 0.8 * TERMINALS
    assert datetime.now(UTC) > NOW  # the fixed moment is in the past: no future hours
