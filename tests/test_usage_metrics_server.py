"""The usage counters of a real control plane: departments and placements read at its start."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from control_plane.db import database
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.services.broker import BrokerSettings
from edge.protocol import Channel, PrintJob, Transaction, encode_records
from edge.protocol import topics as wire
from tests.support.control_plane import running_control_plane
from tests.support.stats_fixture import seed_inventory
from tests.test_ingest import metric_value, publish


async def test_a_kiosks_transaction_is_counted_under_its_department_and_hall_level(
    broker: BrokerSettings, database_url: str, device_prefix: str
) -> None:
    kiosk = f"{device_prefix}-kiosk"
    seed = json.loads(seed_inventory())
    seed["departments"] = [{"code": "GA", "name": "公安"}]
    seed["devices"].append({"device_id": kiosk, "kind": "kiosk", "site": "s440117101"})
    async with database(database_url):
        await import_inventory(read_json(json.dumps(seed), "seed.json"))
    at = datetime.now(UTC) - timedelta(seconds=1)
    records = [
        Transaction(seq=1, at=at, department="GA", item_code="440117-GA-001"),
        Transaction(seq=2, at=at, department="NOT-REGISTERED", item_code="440117-XX-001"),
        PrintJob(seq=3, at=at, pages=2),
    ]
    async with running_control_plane(broker, database_url) as cp:
        await publish(broker, (wire.uplink(kiosk, Channel.USAGE), encode_records(records)))

        async def counted() -> str | None:
            text = await cp.metrics()
            name = "termfleet_ingest_publish_to_commit_seconds_count"
            return text if metric_value(text, name) >= len(records) else None

        text = await cp.wait_for(counted)
        transactions = "termfleet_transactions_total"
        assert metric_value(text, transactions, department="GA", level="town") == 1
        assert metric_value(text, transactions, department="other", level="town") == 1
        assert metric_value(text, "termfleet_printed_pages_total", level="town") == 2
        assert metric_value(text, "termfleet_usage_events_total", event="print", level="town") == 1
