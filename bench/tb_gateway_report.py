"""The markdown section of ``bench/tb_gateway.py``: what was measured, the figures, the ratios."""

from __future__ import annotations

import platform
import re
import statistics
from dataclasses import dataclass

from bench.tb_gateway_setup import TB_GATEWAY_VERSION, VENV_ENV

MB = 10**6
MIB = 2**20
PROBE_NOTE = "a WAL database with `synchronous=FULL`, one small row per commit"
MAX_REASON_CHARS = 600
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)*[\w.+-]+")
TITLE = "## Edge agent beside ThingsBoard's IoT Gateway"
NAMES = {
    "agent": "edge agent (`python -m edge.agent`)",
    "gateway": "thingsboard-gateway",
}


@dataclass(frozen=True)
class Idle:
    name: str
    """``agent`` or ``gateway``."""
    rss_bytes: int
    uss_bytes: int
    cpu_percent: float
    threads: int
    connections: int
    """Its TCP connections to the broker at the end of the window."""
    telemetry_sent: int
    """Heartbeats (agent) or sensor readings (gateway) that reached the broker in the window."""
    window_s: float


@dataclass(frozen=True)
class Burst:
    name: str
    records: int
    """Distinct records that reached the broker upstream."""
    messages: int
    """The messages they came in (both pack records into one message when several wait)."""
    arrived_s: float
    """From the first record offered to the last one at the broker."""
    acknowledged_s: float | None
    """The agent's: until the control plane acknowledged the last one (its outbox empty)."""
    cpu_s: float
    peak_rss_bytes: int


def unavailable(reason: str) -> str:
    """The section when nothing could be measured, with why (a log tail flattened to a line)."""
    # The report goes into the repo: no path of this machine in it.
    why = ABSOLUTE_PATH.sub("…", " ".join(reason.split()))
    if len(why) > MAX_REASON_CHARS:
        why = why[:MAX_REASON_CHARS] + " …"
    return "\n".join([
        TITLE,
        "",
        (
            f"Not measured: {why}. The benchmark installs thingsboard-gateway "
            f"{TB_GATEWAY_VERSION} from PyPI into a virtualenv in the user's cache on first use; "
            f"`{VENV_ENV}` can name one that already has it."
        ),
        "",
    ])  # fmt: skip


def report(  # noqa: PLR0913 - the run's settings and its three measurements
    version: str,
    *,
    interval_s: float,
    settle_s: float,
    idle: list[Idle],
    bursts: list[Burst],
    commit_s: float,
    update_check_failed: bool,
) -> str:
    return "\n".join([
        *intro(version, interval_s, settle_s, idle[0].window_s, bursts),
        *idle_table(idle),
        "",
        *burst_table(bursts),
        "",
        *summary(idle, bursts, commit_s),
        *notes(update_check_failed=update_check_failed),
    ])  # fmt: skip


def intro(
    version: str, interval_s: float, settle_s: float, window_s: float, bursts: list[Burst]
) -> list[str]:
    records = bursts[0].records
    return [
        TITLE,
        "",
        (
            f"The same work on both sides, both running at once against one Mosquitto: an MQTT "
            f"connection upstream, telemetry every {interval_s:.0f} s, a persistent local "
            f"buffer. **Edge agent**: `python -m edge.agent` (with a trigger for the burst, "
            f"`bench/tb_gateway_agent.py`), heartbeat every {interval_s:.0f} s, outbox SQLite "
            "in WAL with an fsync per record, records acknowledged by the real control plane "
            f"after its commit. **thingsboard-gateway {version}** from PyPI (Python "
            f"{platform.python_version()}), the package's sample config with the broker as "
            "its ThingsBoard (the bench answers its `getSessionLimits` request: no rate "
            "limits), remote configuration off, `sqlite` storage (WAL, batched commits, "
            f"`synchronous=NORMAL`), and its MQTT connector reading a sensor topic on which "
            f"the bench publishes one reading every {interval_s:.0f} s. Idle: {settle_s:.0f} s "
            f"after both are up, CPU over {window_s:.0f} s, memory at its end; USS is the "
            "memory only that process uses. Burst: each in turn takes "
            f"{records:,} records as fast as it accepts them (the agent through "
            "`Agent.record`, the gateway from `mosquitto_pub -l` at QoS 1 on its sensor topic, "
            "each reading with its own timestamp), timed from the first until a subscriber has "
            "counted every one at the broker; CPU of that process only, peak RSS its `VmHWM`. "
            "Ratios are agent / gateway."
        ),
        "",
    ]


def idle_table(rows: list[Idle]) -> list[str]:
    lines = [
        (
            "| idle, side by side | RSS MB | RSS MiB | USS MiB | CPU % | threads "
            "| connections to the broker | telemetry messages in the window |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {NAMES[row.name]} | {row.rss_bytes / MB:.1f} | {row.rss_bytes / MIB:.1f} | "
        f"{row.uss_bytes / MIB:.1f} | {row.cpu_percent:.3f} | {row.threads} | "
        f"{row.connections} | {row.telemetry_sent} |"
        for row in rows
    )
    agent, gateway = rows
    lines.append(
        f"| **agent / gateway** | {_ratio(agent.rss_bytes, gateway.rss_bytes)} | | "
        f"{_ratio(agent.uss_bytes, gateway.uss_bytes)} | "
        f"{_ratio(agent.cpu_percent, gateway.cpu_percent)} | | | |"
    )
    return lines


def burst_table(bursts: list[Burst]) -> list[str]:
    lines = [
        (
            "| burst | process | records at the broker | in messages | s until all at the broker "
            "| records/s "
            "| s until all acknowledged | CPU µs/record | peak RSS MiB |"
        ),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, b in enumerate(bursts, 1):
        acknowledged = "-" if b.acknowledged_s is None else f"{b.acknowledged_s:.1f}"
        lines.append(
            f"| {n} | {NAMES[b.name]} | {b.records:,} | {b.messages:,} | {b.arrived_s:.1f} | "
            f"{b.records / b.arrived_s:,.0f} | {acknowledged} | "
            f"{b.cpu_s / b.records * 1e6:,.0f} | {b.peak_rss_bytes / MIB:.1f} |"
        )
    agent, gateway = _medians(bursts, "agent"), _medians(bursts, "gateway")
    lines.append(
        f"| median | **agent / gateway** | | | {_ratio(agent[0], gateway[0])} | "
        f"{_ratio(gateway[0], agent[0])} | | {_ratio(agent[1], gateway[1])} | "
        f"{_ratio(agent[2], gateway[2])} |"
    )
    return lines


def summary(idle: list[Idle], bursts: list[Burst], commit_s: float) -> list[str]:
    agent, gateway = idle
    a, g = _medians(bursts, "agent"), _medians(bursts, "gateway")
    return [
        (
            f"Idle, the agent holds **{_ratio(agent.rss_bytes, gateway.rss_bytes)}** of the "
            f"gateway's RSS ({agent.rss_bytes / MB:.1f} MB against "
            f"{gateway.rss_bytes / MB:.1f} MB) and uses "
            f"**{_ratio(agent.cpu_percent, gateway.cpu_percent)}** of its CPU "
            f"({agent.cpu_percent:.3f} % against {gateway.cpu_percent:.3f} %). Under the burst "
            f"it spends **{_ratio(a[1], g[1])}** of the gateway's CPU per record "
            f"({a[1] * 1e6:,.0f} µs against {g[1] * 1e6:,.0f} µs) and takes "
            f"{_ratio(a[0], g[0])} of its time to get them all to the broker. The agent stores "
            "each record durably before `record` returns: one SQLite commit with an fsync, "
            f"which takes **{commit_s * 1e3:.1f} ms** on this disk (measured in the same run, "
            f"{PROBE_NOTE}), so {bursts[0].records:,} records cannot take less than "
            f"{bursts[0].records * commit_s:.1f} s. The gateway's MQTT client acknowledges a "
            "reading before it is stored, and its storage commits in batches without an fsync; "
            "its records leave the storage once the broker has them, the agent's only once "
            "the control plane has committed them."
        ),
        "",
    ]


def notes(*, update_check_failed: bool) -> list[str]:
    update = (
        " Its update check (a request to ThingsBoard's update service at start and every hour) "
        "found no internet here and was logged as a warning."
        if update_check_failed
        else ""
    )
    return [
        (
            "What the gateway needed to do this work: an answer to `getSessionLimits` (without "
            "one it connects, stores every reading and never sends any), and a timestamp in "
            "each reading (readings it stamps itself on arrival, several in one millisecond, "
            "are merged into one entry and all but one value lost). Its idle CPU is its "
            "threads waking on short timeouts (in 3.8.5's code the main loop every 20 to "
            "100 ms, the storage thread every 200 ms, the sender every 50 ms), not its "
            "traffic." + update
        ),
        "",
    ]


def _medians(bursts: list[Burst], name: str) -> tuple[float, float, float]:
    """Median seconds to the broker, CPU seconds per record, peak RSS bytes."""
    mine = [b for b in bursts if b.name == name]
    return (
        statistics.median(b.arrived_s for b in mine),
        statistics.median(b.cpu_s / b.records for b in mine),
        statistics.median(b.peak_rss_bytes for b in mine),
    )


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs > 0 else "-"
