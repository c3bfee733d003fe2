"""`termfleet stats` against the real server on SQLite and PostgreSQL, and the job by hand.

`cases` and `reviews` print tables (and JSON with --json) from the API with the token of the
environment, and exit non-zero with the API's message; `rollup` and `prune` work on the
database, audited.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from click.testing import CliRunner, Result

from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.db import database
from control_plane.db.models import AuditEntry, StoredRecord
from control_plane.db.rollup_models import DailyRollup
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.services.broker import BrokerSettings
from edge.protocol import Rating, Review, Transaction
from tests.support.control_plane import running_control_plane
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_B, document
from tests.support.stats_fixture import store
from tests.support.tokens import issue_token

JAN = datetime(2026, 1, 15, 2, tzinfo=UTC)
PERIOD = ["--from", "2026-01-01", "--to", "2026-01-31"]


def run(*args: str, token: str = "") -> Result:
    return CliRunner().invoke(
        cli, list(args), prog_name="termfleet", env={"TERMFLEET_TOKEN": token}
    )


async def in_thread(*args: str, token: str = "") -> Result:
    """The command in a thread of its own: it runs its own event loop, and the server ours."""
    return await asyncio.to_thread(run, *args, token=token)


async def some_usage(database_url: str) -> None:
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        await store(
            [
                ("kiosk-a", Transaction(item_code="I"), JAN),
                ("kiosk-a", Transaction(item_code="I"), JAN),
                ("pad-a1", Review(case_number="1", rating=Rating.DISSATISFIED), JAN),
                ("pad-a1", Review(case_number="2", rating=Rating.SATISFIED), JAN),
                ("kiosk-b", Transaction(item_code="I"), JAN),
                ("kiosk-d", Transaction(item_code="I"), JAN),
            ]
        )


async def test_stats_cases_and_reviews_print_the_apis_figures(
    broker: BrokerSettings, database_url: str
) -> None:
    await some_usage(database_url)
    town_a = await issue_token(database_url, Role.OPERATOR, TOWN_A)
    rolled = await in_thread("stats", "rollup", "--database-url", database_url)
    async with running_control_plane(broker, database_url, role=Role.AUDITOR) as cp:
        table = await in_thread(
            "stats", "cases", "--server", cp.url, "--by", "level", "--node", DISTRICT, *PERIOD,
            token=cp.token,
        )  # fmt: skip
        as_json = await in_thread(
            "stats", "cases", "--server", cp.url, "--by", "level,site", *PERIOD, "--json",
            token=town_a,
        )  # fmt: skip
        reviews = await in_thread(
            "stats", "reviews", "--server", cp.url, "--by", "site", *PERIOD, token=town_a
        )
        api = await cp.get_json(f"/api/v1/stats/cases?by=level&node={DISTRICT}&from=2026-01-01")

    assert rolled.exit_code == 0, rolled.output
    assert "counted 6 of 6 new records (up to record 6)" in rolled.output
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["LEVEL", "CASES", "WINDOW_CASES", "SELF_SERVICE_CASES"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["district", "1"],
        ["town", "3"],
        ["village", "2"],
        ["TOTAL", "6"],
    ]
    assert "2026-01-01 to 2026-01-31, node 440117" in table.stderr
    assert api["total"]["cases"] == 6
    body = json.loads(as_json.stdout)
    assert [(item["level"], item["site"], item["cases"]) for item in body["items"]] == [
        ("town", f"s{TOWN_A}", 2),
        ("village", "s440117001001", 2),
    ]
    assert reviews.exit_code == 0, reviews.output
    village = next(line for line in reviews.stdout.splitlines() if "s440117001001" in line)
    assert village.split()[-3:] == ["0", "1", "50.0%"]  # very dissatisfied, bad, satisfaction


async def test_stats_exit_non_zero_with_the_apis_message(
    broker: BrokerSettings, database_url: str
) -> None:
    await some_usage(database_url)
    town_a = await issue_token(database_url, Role.OPERATOR, TOWN_A)
    async with running_control_plane(broker, database_url) as cp:
        outside = await in_thread(
            "stats", "cases", "--server", cp.url, "--node", TOWN_B, token=town_a
        )
        backwards = await in_thread(
            "stats", "reviews", "--server", cp.url, "--from", "2026-03-01", "--to", "2026-02-01",
            token=town_a,
        )  # fmt: skip
        bad_token = await in_thread("stats", "cases", "--server", cp.url, token="tf_" + "x" * 49)
    without_token = await in_thread("stats", "cases", "--server", "http://127.0.0.1:9")

    assert outside.exit_code == 1
    assert f"{cp.url}/api/v1/stats/cases: HTTP 403: outside this token's scope" in outside.stderr
    assert backwards.exit_code == 1
    assert "HTTP 400: from (2026-03-01) is after to (2026-02-01)" in backwards.stderr
    assert bad_token.exit_code == 1
    assert "HTTP 401" in bad_token.stderr
    assert "TERMFLEET_TOKEN" in bad_token.stderr
    assert without_token.exit_code == 2
    assert "no API token" in without_token.stderr


async def test_stats_rollup_since_a_day_re_rolls_and_refuses_a_day_to_come(
    database_url: str,
) -> None:
    await some_usage(database_url)
    assert (await in_thread("stats", "rollup", "--database-url", database_url)).exit_code == 0
    async with database(database_url):
        await DailyRollup.all().update(transactions_completed=99)

    rerolled = await in_thread(
        "stats", "rollup", "--since", "2026-01-15", "--database-url", database_url
    )
    as_json = await in_thread("stats", "rollup", "--json", "--database-url", database_url)
    future = await in_thread(
        "stats", "rollup", "--since", "2999-01-01", "--database-url", database_url
    )

    assert rerolled.exit_code == 0, rerolled.output
    assert "6 records counted again" in rerolled.output
    assert json.loads(as_json.stdout)["rolled_up"]["last_record_id"] == 6
    assert future.exit_code == 1
    assert "2999-01-01 has not begun yet" in future.stderr
    async with database(database_url):
        assert {row.transactions_completed for row in await DailyRollup.all()} == {0, 1, 2}
        assert await AuditEntry.filter(action="rollup.reroll").count() == 1


async def test_stats_prune_applies_retention_by_hand_and_audits_it(database_url: str) -> None:
    await some_usage(database_url)
    prune = ("stats", "prune", "--records-days", "1", "--database-url", database_url)
    not_yet = await in_thread(*prune)
    await in_thread("stats", "rollup", "--database-url", database_url)

    pruned = await in_thread(*prune, "--json")

    assert not_yet.exit_code == 0, not_yet.output
    assert "deleted 0 records, 0 hourly and 0 daily roll-ups" in not_yet.output
    assert pruned.exit_code == 0, pruned.output
    assert json.loads(pruned.stdout)["records"] == 6
    async with database(database_url):
        assert await StoredRecord.all().count() == 0
        entry = await AuditEntry.get(action="records.prune")
    assert entry.after == {"records": 6, "hourly_rollups": 0, "daily_rollups": 0}
