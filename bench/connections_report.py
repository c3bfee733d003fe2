"""The section ``bench/connections.py`` writes: what was measured, as markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import connections_probe as probe

PER_BROKER_MAX = 17_000
SPREAD_S = 10.0
"""The sampled terminals are dropped (and later reconnected) one after another over this long."""
CATCH_UP_S = 180.0
CAUGHT_UP = 0.99
"""The control plane has caught up with the ramp once it has handled this share of the heartbeats
sent so far (and counts every terminal online)."""
FELL_BEHIND = 0.9
"""Handling fewer than this share of the heartbeats sent in the steady window is falling behind."""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Results:
    total: int
    edges: int
    rate: float
    connacked_s: list[float] = field(default_factory=list)
    """When each CONNACK came, from the start of the ramp."""
    catch_up_s: float | None = None
    steady_s: float = 0.0
    connections: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss: dict[str, int] = field(default_factory=dict)
    beats_sent: int = 0
    beats_handled: int = 0
    drop: Latencies | None = None
    back: Latencies | None = None
    presence: dict[str, int] = field(default_factory=dict)
    """The control plane's count at the end, by presence (``termfleet_devices``)."""
    held: int = 0
    loads: list[tuple[float, float, float]] = field(default_factory=list)


@dataclass
class Latencies:
    events: int
    core_s: list[float]
    api_s: list[float]
    poll_s: list[float]
    """How long each poll of the device list took."""


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:,.0f}" if values else "n/a"


def report(r: Results) -> str:
    mib = 1024 * 1024
    rows = []
    for name, cpu_s in r.cpu_s.items():
        handled = r.beats_handled
        per = f"{cpu_s / handled * 1e6:,.0f}" if name == "control plane" and handled else ""
        conns = r.connections.get(name)
        rows.append(
            f"| {name} | {'' if conns is None else f'{conns:,}'} | {r.rss[name] / mib:,.0f} "
            f"| {cpu_s / r.steady_s * 100:.1f} | {per} |"
        )
    lat = []
    polls: list[float] = []
    for label, event in (("drop → offline", r.drop), ("reconnect → online", r.back)):
        if event is None:
            continue
        polls += event.poll_s
        for where, values in (("core broker", event.core_s), ("control plane API", event.api_s)):
            lat.append(
                f"| {label} | {where} | {len(values)} of {event.events} | {_ms(values, 0.5)} "
                f"| {_ms(values, 0.99)} | {_ms(values, 1.0)} |"
            )
    catch = f"{r.catch_up_s:.0f} s" if r.catch_up_s else f"not within {CATCH_UP_S:.0f} s"
    loads = " → ".join(", ".join(f"{x:.2f}" for x in load) for load in r.loads)
    online = r.presence.get("online", 0)
    verdict = "all of them" if online == r.total else f"**{r.total - online:,} missing**"
    shown = ", ".join(f"{n:,} {p}" for p, n in sorted(r.presence.items()) if n)
    acked = r.connacked_s
    ramp = (
        f"{len(acked):,} CONNACKs, half of them {percentile(acked, 0.5):.1f} s after the first "
        f"CONNECT, 99 % after {percentile(acked, 0.99):.1f} s, the last after "
        f"{max(acked, default=0):.1f} s (**{len(acked) / max(max(acked, default=0), 1e-9):,.0f}"
        "/s** overall)"
    )
    return "\n".join(
        [
            "## Connections: terminals held across several brokers, and presence latency",
            "",
            (
                f"{r.total:,} terminals on {r.edges} edge Mosquitto processes (≤ "
                f"{PER_BROKER_MAX:,} each: one process may open 20,000 files here), each bridged "
                "(MQTT 5, QoS 1, `up/+/+` out, `down/+/+` in) to one core Mosquitto that "
                "`termfleet server run` (SQLite) subscribes to, as deployed. One worker process "
                "per edge broker holds its terminals, each an MQTT 5 connection saying what an "
                "agent says: last will, retained online presence, a heartbeat every 30 s (full "
                "every tenth, else uptime, CPU, memory), a ping between. The terminals are unknown "
                "to the control plane before their first presence (it records them then)."
            ),
            "",
            (
                f"Ramp at {r.rate:,.0f} connections/s asked: {ramp}; the control plane counted "
                f"all of them online, and had handled the heartbeats sent, {catch} after the "
                "ramp began. At the end it counts "
                f"**{online:,} online** ({verdict}; all it shows: {shown}); the workers hold "
                f"{r.held:,}. Load average (1, 5, 15 min) before → after the steady window "
                f"→ end: {loads}."
            ),
            "",
            (
                f"Steady {r.steady_s:.0f} s with every terminal held, from one heartbeat "
                "interval after the last connection (each terminal's first heartbeat writes its "
                "inventory once; the catch-up above includes that): the terminals sent "
                f"{r.beats_sent:,} heartbeats ({r.beats_sent / r.steady_s:,.0f}/s), the control "
                f"plane handled {r.beats_handled:,} ({r.beats_handled / r.steady_s:,.0f}/s). "
                "CPU per heartbeat is the control plane's CPU over the window divided by the "
                "heartbeats it handled."
                + (
                    " **The control plane fell behind**: presence messages wait behind the "
                    "heartbeats in its queue, and a terminal whose heartbeats wait longer than the "
                    "heartbeat timeout (90 s) counts as offline (`silent`)."
                    if r.beats_handled < FELL_BEHIND * r.beats_sent
                    else ""
                )
            ),
            "",
            "| process | established TCP | RSS MiB | CPU % of a core | µs CPU per heartbeat |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            (
                f"Presence latency on a sample of terminals (booths), one after another over "
                f"{SPREAD_S:.0f} s while the {r.total:,} others stay held. *Drop*: the socket "
                "closed without DISCONNECT; from the close to the will's arrival at a subscriber "
                "on the core broker (the edge broker noticing the close, the will, the bridge) "
                "and to the control plane's device list showing it offline. *Reconnect*: from "
                "the new connection to its online presence at the core, and in the list. The "
                f"list is polled every {probe.POLL_S * 1000:.0f} ms (a poll took "
                f"{_ms(polls, 0.5)} ms at the median): the API figures are late by up to that."
            ),
            "",
            "| event | seen at | terminals | p50 ms | p99 ms | max ms |",
            "|---|---|---:|---:|---:|---:|",
            *lat,
            "",
        ]
    )
