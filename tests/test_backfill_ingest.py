"""A backfill through the real path: outboxes, a real Mosquitto, the control plane's ingest, SQLite.

Three days of the Conghua district at half the seeds' scale (about 700 handled cases) go
through every terminal's outbox, the broker and the ingest; then the roll-up job counts them and
the statistics API must show exactly what the simulator says it produced, by hall level,
department and item, kiosk self-service counts included, with the seeds' split by hall level.
Every record is stored once (a second backfill of the same days is refused), every review is a
好差评 review and every bad one has opened a work order.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from control_plane.db import database
from control_plane.db.models import StoredRecord
from control_plane.db.review_models import ReviewRow, WorkOrderRow
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.services.broker import BrokerSettings
from edge.agent.runner import AgentTiming
from edge.mqtt import BrokerAddress
from edge.schedule import DEFAULT_ZONE
from edge.simulator import fleet
from edge.simulator.backfill import BackfillPlan, BackfillResult, run_backfill
from edge.simulator.backfill_ledger import BackfillRefusedError
from edge.simulator.backfill_plan import backfill_days
from edge.simulator.backfill_progress import Progress
from edge.simulator.backfill_visits import FIGURES, Produced
from edge.simulator.district import district_file, opening_hours, terminals
from edge.simulator.items import self_service_items
from tests.support.control_plane import running_control_plane
from tests.support.stats_api import stats_api

pytestmark = pytest.mark.slow

DAYS, SCALE, SEED = 3, 0.5, 11
SEED_SHARES = {"district": 0.84, "town": 0.13, "village": 0.03}
SHARE_TOLERANCE = {"district": 0.05, "town": 0.05, "village": 0.025}
"""Percentage points either side of the seeds' split: several standard deviations of the
Poisson noise at about 700 cases (a level's target is met in expectation, not exactly)."""
CASE_FIGURES = [name for name in FIGURES if name not in {"reviews", "bad_reviews"}]


async def _backfill(
    broker: BrokerSettings, database_url: str, state_dir: Path, plan: BackfillPlan
) -> tuple[BackfillResult, str]:
    """Run the backfill against a real control plane; the result and the progress printed."""
    district = terminals("conghua")
    hours = opening_hours("conghua")
    out = io.StringIO()
    async with running_control_plane(broker, database_url):
        agents = fleet.build_agents(
            district,
            BrokerAddress(broker.host, broker.port),
            AgentTiming(heartbeat_interval_s=5.0),
            SEED,
            state_dir,
        )
        try:
            result = await run_backfill(
                agents, district, hours, plan, state_dir=state_dir,
                progress=Progress(out, tty=False),
            )  # fmt: skip
            with pytest.raises(BackfillRefusedError, match="count those days twice"):
                await run_backfill(
                    agents, district, hours, plan, state_dir=state_dir,
                    progress=Progress(out, tty=False),
                )  # fmt: skip
            assert all(agent.outbox.backlog() == 0 for agent in agents)
        finally:
            fleet.close_agents(agents)
    return result, out.getvalue()


def _by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, int]]:
    return {item[key] or "": {name: item[name] for name in CASE_FIGURES} for item in items}


def _expected(rows: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {key: {name: counts[name] for name in CASE_FIGURES} for key, counts in rows.items()}


@pytest.mark.timeout(600)
async def test_a_backfill_reaches_the_statistics_once_and_in_the_seeds_shape(
    own_broker: tuple[BrokerSettings, object], sqlite_url: str, tmp_path: Path
) -> None:
    broker, _ = own_broker
    async with database(sqlite_url):
        await import_inventory(read_json(district_file("conghua").read_text(), "conghua.json"))
    started = datetime.now(UTC)
    days = backfill_days(datetime.now(DEFAULT_ZONE).date(), DAYS)
    plan = BackfillPlan.make(
        terminals("conghua"), opening_hours("conghua"), days, scale=SCALE, seed=SEED
    )
    result, progress = await _backfill(broker, sqlite_url, tmp_path / "state", plan)
    produced: Produced = result.produced
    assert progress.splitlines()[-1].startswith(
        f"backfilled records acknowledged: {produced.records:,}"
    )
    window_cases = produced.total()["window_cases"]
    assert window_cases > 0.8 * sum(p.target for p in plan.levels.values())

    query = f"node=440117&from={days[0]}&to={days[-1]}"
    async with stats_api(sqlite_url) as (api, roll_up):
        # Every record stored exactly once: as many usage and review records as were written.
        stored = await StoredRecord.filter(channel__in=["usage", "review"]).count()
        assert stored == produced.records
        reviews = await ReviewRow.all().count()
        assert reviews == produced.total()["reviews"]
        orders = [row["opened_at"] for row in await WorkOrderRow.all().values("opened_at")]
        assert len(orders) == produced.total()["bad_reviews"] > 0
        # A backfilled bad review's work order opens when it arrives, not on its past day.
        assert all(opened >= started for opened in orders)
        midnight = datetime.combine(datetime.now(DEFAULT_ZONE).date(), time(0), DEFAULT_ZONE)
        rated = [row["rated_at"] for row in await ReviewRow.all().values("rated_at")]
        assert max(rated) < midnight  # rated on its own past day

        await roll_up()
        token = await api.token()
        by_level = await api.ok(f"/api/v1/stats/cases?by=level&{query}", token)
        by_department = await api.ok(f"/api/v1/stats/cases?by=department&{query}", token)
        by_item = await api.ok(f"/api/v1/stats/cases?by=item&{query}", token)
        review_levels = await api.ok(f"/api/v1/stats/reviews?by=level&{query}", token)

    # The statistics are exactly what the simulator says it produced...
    assert _by(by_level["items"], "level") == _expected(produced.by_level)
    items = {k: v for k, v in _by(by_item["items"], "item").items() if k}
    assert items == _expected(produced.by_item)
    departments = {k: v for k, v in _by(by_department["items"], "department").items() if k}
    assert departments == _expected(produced.by_department)
    bad = {item["level"]: item["bad_reviews"] for item in review_levels["items"]}
    assert bad == {level: c["bad_reviews"] for level, c in produced.by_level.items()}
    # ...kiosk self-service counts included: prints, ID-card reads, transactions by item...
    total = by_level["total"]
    assert total["pages_printed"] == produced.total()["pages_printed"] > 0
    assert total["id_card_reads"] == produced.total()["id_card_reads"] > 0
    self_served = {code for code, counts in items.items() if counts["transactions_completed"]}
    assert self_served
    assert self_served <= {item.code for item in self_service_items().items}
    # ...and the handled cases split by hall level as the seeds' quarter does.
    for level, share in SEED_SHARES.items():
        level_cases = produced.by_level[level]["window_cases"]
        assert abs(level_cases / window_cases - share) <= SHARE_TOLERANCE[level], (level, items)
