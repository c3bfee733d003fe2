"""`termfleet simulate --backfill-days`, and the demo's first-start backfill.

Bad input is refused before anything starts, a second backfill of the same days is refused
before a record is written, and the demo backfills only a database without a usage history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from control_plane.cli import cli
from control_plane.db import database
from control_plane.demo_history import (
    DemoHistory,
    backfill_span,
    district_node,
    has_usage_history,
)
from control_plane.services.processes import free_port
from edge.agent.outbox import OUTBOX_FILE, Outbox
from edge.protocol import Rating, Review
from edge.schedule import DEFAULT_ZONE
from edge.simulator.backfill_ledger import claim_days
from edge.simulator.backfill_plan import backfill_days
from tests.support.stats_fixture import store


def simulate(*args: str) -> tuple[int, str]:
    unused = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens: nothing may connect
    result = CliRunner().invoke(
        cli, ["simulate", "--mqtt-url", unused, "--devices", "2", *args], catch_exceptions=False
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("days", ["0", "30", "-3"])
def test_a_span_out_of_range_is_a_usage_error(days: str, tmp_path: Path) -> None:
    code, output = simulate("--backfill-days", days, "--state-dir", str(tmp_path))
    assert code == 2
    assert "--backfill-days must be from 1 to 29" in output
    assert not any(tmp_path.iterdir())  # refused before a single outbox was made


def test_a_scale_that_is_not_positive_is_a_usage_error(tmp_path: Path) -> None:
    code, output = simulate(
        "--backfill-days", "3", "--backfill-scale", "0", "--state-dir", str(tmp_path)
    )
    assert code == 2
    assert "--backfill-scale must be above 0" in output


def test_days_backfilled_before_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    today = datetime.now(DEFAULT_ZONE).date()
    claim_days(tmp_path, backfill_days(today, 1))
    code, output = simulate("--backfill-days", "3", "--state-dir", str(tmp_path))
    assert code == 1
    assert "refusing to backfill" in output
    assert "already backfilled" in output
    assert "count those days twice" in output
    outbox_files = list(tmp_path.glob(f"*/{OUTBOX_FILE}"))
    assert len(outbox_files) == 2  # the terminals were set up, then refused
    for outbox_file in outbox_files:
        outbox = Outbox(outbox_file)
        try:
            assert outbox.backlog() == 0
        finally:
            outbox.close()


async def test_the_demo_backfills_only_a_database_without_usage_history(
    sqlite_url: str, tmp_path: Path
) -> None:
    assert not has_usage_history(tmp_path / "missing.sqlite3")
    database_file = Path(sqlite_url.removeprefix("sqlite://"))
    assert not has_usage_history(database_file)  # migrated, empty
    first_start = DemoHistory(database_file, "conghua", days=28)
    assert first_start.simulator_options() == ["--backfill-days", "28", "--keep-running"]
    hint = first_start.hint("tok", "http://127.0.0.1:8080")
    assert "--node 440117" in hint[1]
    assert f"--from {backfill_span(28)[0]}" in hint[1]
    review = Review(case_number="c-1", rating=Rating.SATISFIED, item_code="RS-0012")
    async with database(sqlite_url):
        await store([("pad-1", review, datetime.now(UTC))])
    assert has_usage_history(database_file)
    again = DemoHistory(database_file, "conghua", days=28)
    assert again.simulator_options() == []
    assert again.hint("tok", "http://127.0.0.1:8080") == []
    assert DemoHistory(tmp_path / "missing.sqlite3", "conghua", days=0).simulator_options() == []


def test_the_demos_span_and_district_node() -> None:
    span = backfill_span(28)
    assert len(span) == 28
    assert span[-1] < datetime.now(DEFAULT_ZONE).date()
    assert district_node("conghua") == "440117"
