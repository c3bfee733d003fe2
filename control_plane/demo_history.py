"""Whether the demo's database has a usage history yet, and the month the demo backfills.

On its first start the demo has its simulator backfill the district's past weeks through the
real ingest (``termfleet simulate --backfill-days``, docs/demo-month.md), so that statistics,
好差评 scores and work orders have a history to show. It does so only while the database holds
no usage or review record and no roll-up: a demo started again, or one whose history was
pruned into roll-ups, is not backfilled twice. (The simulator's own ledger refuses a second
backfill of the same days too.)
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from edge.schedule import DEFAULT_ZONE
from edge.simulator.backfill_plan import backfill_days
from edge.simulator.district import load_district

DEMO_BACKFILL_DAYS = 28
"""Four whole weeks: every weekday as often, inside the control plane's 30 days of lateness."""


def has_usage_history(database_file: Path) -> bool:
    """Whether the SQLite database holds usage or review records, or roll-ups of them."""
    if not database_file.exists():
        return False
    with closing(sqlite3.connect(f"file:{database_file}?mode=ro", uri=True)) as db:
        try:
            found = db.execute(
                "SELECT EXISTS (SELECT 1 FROM record WHERE channel IN ('usage', 'review'))"
                " OR EXISTS (SELECT 1 FROM rollup_day)"
            ).fetchone()
        except sqlite3.OperationalError:  # no tables yet: nothing was ever stored
            return False
    return bool(found[0])


def backfill_span(days: int = DEMO_BACKFILL_DAYS, today: date | None = None) -> list[date]:
    """The days a backfill started now covers, in the district's (and statistics') zone."""
    return backfill_days(today or datetime.now(DEFAULT_ZONE).date(), days)


def district_node(name: str) -> str:
    """The 行政区划 code of the demo district ``name`` (Conghua: 440117)."""
    nodes = load_district(name)["jurisdiction"]
    return str(next(node["code"] for node in nodes if node["level"] == "district"))


@dataclass
class DemoHistory:
    """The demo's simulated past: whether this start backfills it, and how to read it back."""

    database_file: Path
    district: str
    days: int = DEMO_BACKFILL_DAYS
    backfilling: bool = False

    def simulator_options(self) -> list[str]:
        """On the first start, the district's past weeks, backfilled while it runs live."""
        if self.days <= 0 or has_usage_history(self.database_file):
            return []
        self.backfilling = True
        return ["--backfill-days", str(self.days), "--keep-running"]

    def hint(self, token: str, api_url: str) -> list[str]:
        """The simulated month's figures, as the seed table's call asks for them."""
        if not self.backfilling:
            return []
        span = backfill_span(self.days)
        headline = (
            f"  history     {len(span)} days backfilled through the ingest (simulator.log says"
            " when done; the figures follow the next roll-up, within 5 minutes):"
        )
        stats = (
            f"TERMFLEET_TOKEN={token} termfleet stats cases --by level"
            f" --node {district_node(self.district)} --from {span[0]} --to {span[-1]}"
            f" --server {api_url}"
        )
        return [headline, f"    {stats}"]
