"""After a run: every record the devices made, looked up in PostgreSQL's ``record`` table.

Each (device_id, seq) made must be stored exactly once. A record missing from the table is
*lost* when its device was told it was stored (its ``Ack`` came, so the device deleted it), and
only *not yet stored* when the device still holds it and would send it again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from bench.replicas_devices import Delivery


@dataclass(frozen=True)
class Verdict:
    made: int
    stored: int
    """Distinct (device_id, seq) made by the devices and found in the table."""
    doubled: int
    """Rows beyond the first for one (device_id, seq)."""
    lost: int
    """Acknowledged to the device, yet not in the table."""
    held: int
    """Not in the table and still in its device's outbox (unacknowledged: it would be resent)."""
    unacked_stored: int
    """In the table and still in its device's outbox (its Ack had not come by the end)."""
    unexpected: int
    """Rows of these devices with a seq they never made."""

    @property
    def missing(self) -> int:
        return self.made - self.stored


def verify(database_url: str, prefix: str, delivery: Delivery) -> Verdict:
    rows = asyncio.run(_fetch(database_url, prefix))
    stored: dict[str, set[int]] = defaultdict(set)
    doubled = unexpected = 0
    for device_id, seq, copies in rows:
        doubled += copies - 1
        if 1 <= seq <= delivery.made.get(device_id, 0):
            stored[device_id].add(seq)
        else:
            unexpected += 1
    lost = held = unacked_stored = 0
    for device_id, last in delivery.made.items():
        unacked = set(delivery.unacked.get(device_id, ()))
        absent = set(range(1, last + 1)) - stored[device_id]
        lost += len(absent - unacked)
        held += len(absent & unacked)
        unacked_stored += len(unacked - absent)
    return Verdict(
        made=delivery.sent,
        stored=sum(map(len, stored.values())),
        doubled=doubled,
        lost=lost,
        held=held,
        unacked_stored=unacked_stored,
        unexpected=unexpected,
    )


async def _fetch(database_url: str, prefix: str) -> list[tuple[str, int, int]]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        # Grouped, so that a doubled row shows even though (device_id, seq) is declared unique.
        found = await conn.fetch(
            "SELECT device_id, seq, count(*) AS copies FROM record "
            "WHERE device_id LIKE $1 GROUP BY device_id, seq",
            f"{prefix}-%",
        )
    finally:
        await conn.close()
    return [(r["device_id"], r["seq"], r["copies"]) for r in found]
