"""The markdown section of ``bench/nodered.py``: Node-RED beside ``mosquitto_sub -q 1``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bench.loadgen import ACK_WAIT_S

if TYPE_CHECKING:
    from bench.ingest import Result
    from bench.nodered import NodeRedRun

TITLE = "## Node-RED as a peer: MQTT in → JSON → SQLite"
ABSOLUTE_PATH = re.compile(r"(?:/[\w.+-]+)+/([\w.+-]+)")
"""A path of the machine that ran it, which the committed report must not show."""
REASON_LINES = 12


def unavailable(reason: str) -> str:
    why = "Not measured: Node-RED could not be installed or started here."
    return f"{TITLE}\n\n{why}\n\n{quoted(reason)}\n"


def report(steps: list[tuple[Result, NodeRedRun | str]]) -> str:
    runs = [peer for _, peer in steps if not isinstance(peer, str)]
    first = steps[0][0].load
    lines = [
        TITLE,
        "",
        (
            "Node-RED running `bench/nodered/flows.json`: `mqtt in` (QoS 1, MQTT v5, the "
            "ingest's uplink filter) → `json` → a function node making one message per record "
            "→ `node-red-node-sqlite` inserting each with a prepared statement, `INSERT OR "
            "IGNORE` keyed on (device, seq) like the ingest, in a WAL database with "
            "`synchronous=FULL` (the flow sets both pragmas on its connection and reads them "
            "back). The node runs one statement per message, so every record is its own "
            "transaction. The load is `bench/loadgen.py`'s: "
            f"{first.devices} device connections, open loop, {first.duration_s:.0f} s per "
            "step, nothing waiting for acks. Delivered = rows in SQLite once the count stands "
            f"still while Node-RED idles (at most {ACK_WAIT_S:.0f} s after the load; the rest "
            "count as lost), per second from the first publish to the later of the last publish "
            "and the last insert; ratio to `mosquitto_sub -q 1` on its own broker at the same "
            "step. Latency = SQLite's clock when the insert runs (its commit follows) minus the "
            "record's `at`, stamped just before publishing. CPU = user + system of the Node-RED "
            "process from the load's start until settled; RSS = the largest seen."
        ),
        "",
        (
            "| offered/s | records per message | consumer | delivered/s | ratio | lost "
            "| p50 ms | p99 ms | CPU µs/record | RSS MiB |"
        ),
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    failures = []
    for reference, peer in steps:
        load = reference.load
        head = f"| {load.rate:,.0f} | {load.records_per_message} "
        lines.append(
            f"{head}| {reference.consumer} | {reference.delivered_per_s:,.0f} | 1.00 | "
            f"{reference.sent - reference.delivered:,} | - | - | "
            f"{reference.cpu_us_per_record or 0:,.0f} | {reference.rss_mib or 0:.0f} |"
        )
        if isinstance(peer, str):
            lines.append(f"{head}| Node-RED | not measured (below) | | | | | | |")
            failures += [
                f"{load.rate:,.0f}/s, {load.records_per_message} per message:",
                "",
                quoted(peer),
                "",
            ]
            continue
        ratio = peer.delivered_per_s / reference.delivered_per_s if reference.delivered_per_s else 0
        lines.append(
            f"{head}| Node-RED | {peer.delivered_per_s:,.0f} | {ratio:.2f} | "
            f"{peer.sent - peer.delivered:,} | {_ms(peer.p50_ms)} | {_ms(peer.p99_ms)} | "
            f"{peer.cpu_us_per_record:,.0f} | {peer.rss_mib:.0f} |"
        )
    lines.append("")
    if runs:
        versions = ", ".join(f"{name} {version}" for name, version in runs[0].versions.items())
        lines.append(f"Versions: {versions}. Pragmas read back by the flow: `{runs[0].pragmas}`.")
    if failures:
        lines += ["", "Steps Node-RED could not run:", "", *failures[:-1]]
    return "\n".join(lines) + "\n"


def quoted(reason: str) -> str:
    """The reason's last lines, each path cut to its last part, as a code block."""
    tail = reason.strip().splitlines()[-REASON_LINES:]
    text = "\n".join(ABSOLUTE_PATH.sub(r".../\1", line) for line in tail)
    return f"```\n{text}\n```"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
