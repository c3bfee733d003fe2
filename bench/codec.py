"""Wire-contract decoding: what the ingest pays per message before it touches the database.

Reference line: ``json.loads`` of the same bytes, which only parses and validates nothing. Our
decode parses, type-checks every field, checks the schema version and the required fields, and
builds frozen structs.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge.protocol import (
    Channel,
    Heartbeat,
    Network,
    NetworkType,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    Presence,
    PresenceState,
    Rating,
    Review,
    Transaction,
    decode,
    encode,
)

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
SAMPLES: dict[Channel, bytes] = {
    Channel.PRESENCE: encode(Presence(state=PresenceState.ONLINE, session=17, at=NOW)),
    Channel.HEALTH: encode(
        Heartbeat(
            seq=12,
            at=NOW,
            full=True,
            uptime_s=86400,
            cpu_percent=12.5,
            memory_percent=48.0,
            disk_percent=42.0,
            temperature_c=47.5,
            network=Network(type=NetworkType.CELLULAR_4G, signal_dbm=-91),
            agent_version="0.1.0",
            outbox_backlog=0,
            peripherals=tuple(
                PeripheralStatus(name=f"p{i}", kind=k, state=PeripheralState.OK, model="sim")
                for i, k in enumerate(list(PeripheralKind)[:6])
            ),
        )
    ),
    Channel.USAGE: encode(
        Transaction(seq=4242, at=NOW, department="rs", item_code="440117-RS-0012", duration_s=84.0)
    ),
    Channel.REVIEW: encode(
        Review(seq=99, at=NOW, case_number="44011720261122000123", rating=Rating.SATISFIED)
    ),
}


def _rate(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, time.perf_counter() - start)
    return rounds / best


YARDSTICK_ROUNDS = 20_000


def yardstick() -> str:
    """The machine's speed on one core, comparable from run to run: ``json.loads`` of a heartbeat.

    The host this machine runs on is shared: its single-core speed has been seen to halve
    between two runs a few hours apart, which moves every absolute figure of a run.
    """
    data = SAMPLES[Channel.HEALTH]
    rate = _rate(functools.partial(json.loads, data), YARDSTICK_ROUNDS)
    return f"`json.loads` of a {len(data)}-byte heartbeat {rate:,.0f}/s on one core"


def run(*, quick: bool = False) -> str:
    rounds = 5_000 if quick else 50_000
    intro = f"Messages per second on one core, best of 5 runs of {rounds:,}; reference: "
    lines = [
        "## Wire-contract decoding",
        "",
        intro + "`json.loads` of the same bytes.",
        "",
        "| channel | bytes | `json.loads` msg/s | `edge.protocol.decode` msg/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for channel, data in SAMPLES.items():
        reference = _rate(functools.partial(json.loads, data), rounds)
        ours = _rate(functools.partial(decode, channel, data), rounds)
        lines.append(
            f"| {channel.value} | {len(data)} | {reference:,.0f} | {ours:,.0f} | "
            f"{ours / reference:.2f} |"
        )
    return "\n".join(lines) + "\n"
