"""The markdown section of ``bench/replicas.py``: throughput beside one replica, then the kills."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.replicas_devices import LATE_S

SAMPLE_S = 0.5
"""How often the replicas' counters and CPU are read."""

if TYPE_CHECKING:
    from bench.replicas import KillRun, Step

RECOVERED = 0.9
"""Throughput is back once every second delivers at least this share of the offered rate."""
WINDOW_S = 5


def report(steps: list[Step], kills: list[KillRun], load_before: float) -> str:
    first = steps[0].traffic
    lines = [
        "## Two control-plane replicas sharing the uplink",
        "",
        (
            "One Mosquitto (the project's configuration), one throwaway PostgreSQL database "
            "migrated once, two `termfleet server run` replicas with their own client ids in the "
            "ingest's `$share/` group (the second `--no-rollouts`). "
            f"{first.devices} simulated terminals in {first.workers} generator processes "
            "(`bench/replicas_devices.py`: one MQTT connection each through "
            "`control_plane.uplink`, QoS 1, open loop) deliver as the agent does: every record "
            "is kept until its `Ack` and resent after "
            f"{first.ack_timeout_s:.0f} s without one (then after twice as long, and so on), "
            "within the agent's window (`edge.agent.delivery.InFlight`). "
            f"Load average (1 min) {load_before:.2f} at the start."
        ),
        "",
        "### Throughput: two replicas beside one",
        "",
        (
            f"Each step runs {first.duration_s:.0f} s with both replicas, then with the second "
            "stopped (SIGTERM, which leaves the share group). Delivered = records acknowledged "
            "after their commit, per second from the first record to the last `Ack`; two ÷ one "
            "= the ratio of the two rows; unacked = made and not acknowledged "
            f"{first.drain_s:.0f} s after the load; lost / doubled from the `record` table; "
            "CPU of both replicas per acknowledged record; records per replica from each "
            "replica's `termfleet_ingest_records_total`."
        ),
        "",
        (
            "| offered/s | records per message | replicas | delivered/s | two ÷ one | unacked "
            "| lost | doubled | p50 ms | p99 ms | CPU µs/record | records per replica |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for two, one in zip(steps[::2], steps[1::2], strict=True):
        for step in (two, one):
            ratio = f"{two.delivered_per_s / one.delivered_per_s:.2f}" if step is two else ""
            delivery = step.delivery
            lines.append(
                f"| {step.traffic.rate:,.0f} | {step.traffic.records_per_message} "
                f"| {step.replicas} | {step.delivered_per_s:,.0f} | {ratio} "
                f"| {delivery.sent - delivery.acknowledged:,} | {step.verdict.lost:,} "
                f"| {step.verdict.doubled:,} | {_ms(step.percentile_ms(0.5))} "
                f"| {_ms(step.percentile_ms(0.99))} "
                f"| {step.cpu_s / max(delivery.acknowledged, 1) * 1e6:,.0f} "
                f"| {_shares(step.records)} |"
            )
    lines += ["", *kill_section(kills), "", *verdict(steps, kills)]
    return "\n".join(lines) + "\n"


def kill_section(kills: list[KillRun]) -> list[str]:
    first = kills[0]
    lines = [
        "### One replica killed mid-run",
        "",
        (
            f"{first.traffic.rate:,.0f} records/s, one per message, for "
            f"{first.traffic.duration_s:.0f} s; at {first.kill_at_s:.0f} s the second replica "
            "gets SIGKILL. It either stays down or is started again "
            f"{_down_s(kills):.0f} s later with the same client id (resuming its broker session). "
            "The devices go on resending for "
            + " / ".join(f"{k.traffic.drain_s:.0f} s" for k in kills)
            + " after the load; then every (device_id, seq) made is looked up in the `record` "
            "table. *Held* = not stored and still in its device's outbox, to be resent (not "
            "lost); *lost* = acknowledged to its device and not stored. A killed replica's "
            "broker session outlives it (the ingest's session expiry), and the share group "
            "goes on queueing its turn of the messages for it meanwhile; a resend reaches the "
            "survivor only when its turn falls there. Records per replica: each one's "
            f"`termfleet_ingest_records_total`, read every {SAMPLE_S} s (a killed replica's "
            "last reading before the kill, plus its next life's), duplicates included."
        ),
        "",
        "| | " + " | ".join(k.variant for k in kills) + " |",
        "|---|" + "---:|" * len(kills),
    ]
    rows: list[tuple[str, list[str]]] = [
        ("load average (1 min) at the start", [f"{k.load_average:.2f}" for k in kills]),
        ("records made", [f"{k.verdict.made:,}" for k in kills]),
        ("stored exactly once", [f"{k.verdict.stored - k.verdict.doubled:,}" for k in kills]),
        ("missing from the table", [f"{k.verdict.missing:,}" for k in kills]),
        ("… of which lost (acknowledged)", [f"{k.verdict.lost:,}" for k in kills]),
        ("… of which held by their devices", [f"{k.verdict.held:,}" for k in kills]),
        ("doubled rows", [f"{k.verdict.doubled:,}" for k in kills]),
        ("stored, Ack not yet arrived", [f"{k.verdict.unacked_stored:,}" for k in kills]),
        ("records resent by the devices", [f"{k.delivery.resent:,}" for k in kills]),
        ("throughput back (≥ 90 % offered) after", [_recovered(k) for k in kills]),
        ("worst made→Ack of those made after the kill", [_worst(k) for k in kills]),
        (f"made after the kill: acked > {LATE_S:.0f} s / never", [_late(k) for k in kills]),
        ("records per replica (survivor / killed)", [_shares(k.records) for k in kills]),
    ]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    lines += ["", "Delivered records/s by window (s from the start of the load):", ""]
    lines += ["| window | " + " | ".join(k.variant for k in kills) + " |"]
    lines += ["|---|" + "---:|" * len(kills)]
    end = int(max(k.traffic.duration_s + k.traffic.drain_s for k in kills))
    for start in range(0, end, WINDOW_S):
        seconds = range(start, start + WINDOW_S)
        rates = [sum(k.delivery.acked_by_second[s] for s in seconds) / WINDOW_S for k in kills]
        cells = " | ".join(f"{rate:,.0f}" for rate in rates)
        lines.append(f"| {start} to {start + WINDOW_S} | {cells} |")
    return lines


def verdict(steps: list[Step], kills: list[KillRun]) -> list[str]:
    lost = sum(s.verdict.lost for s in steps) + sum(k.verdict.lost for k in kills)
    doubled = sum(s.verdict.doubled for s in steps) + sum(k.verdict.doubled for k in kills)
    held = {k.variant: k.verdict.held for k in kills}
    return [
        f"Verdict: {lost:,} records lost and {doubled:,} doubled in the whole run. Not yet "
        "stored at the end, still held by their devices: "
        + ", ".join(f"{n:,} ({variant})" for variant, n in held.items())
        + "."
    ]


def _recovered(run: KillRun) -> str:
    kill_s = int(run.kill_at_s)
    end = int(run.traffic.duration_s)
    target = RECOVERED * run.traffic.rate
    acked = run.delivery.acked_by_second
    for second in range(kill_s, end):
        if all(acked[t] >= target for t in range(second, end)):
            return f"{second - run.kill_at_s:.0f} s"
    return f"not within the load ({end - kill_s} s after the kill)"


def _after_kill(run: KillRun, by_second: dict[int, float] | dict[int, int]) -> list[float]:
    return [float(v) for s, v in by_second.items() if s >= int(run.kill_at_s)]


def _worst(run: KillRun) -> str:
    worst = _after_kill(run, run.delivery.worst_by_second)
    return f"{max(worst):.1f} s" if worst else "-"


def _late(run: KillRun) -> str:
    made = sum(_after_kill(run, run.delivery.made_by_second))
    late = sum(_after_kill(run, run.delivery.late_by_second))
    never = sum(_after_kill(run, run.delivery.never_by_second))
    return f"{late:,.0f} / {never:,.0f} of {made:,.0f}"


def _down_s(kills: list[KillRun]) -> float:
    return next((k.restart_at_s - k.kill_at_s for k in kills if k.restart_at_s is not None), 0.0)


def _shares(records: list[float]) -> str:
    total = sum(records)
    if not total:
        return "-"
    return " / ".join(f"{n:,.0f} ({n / total:.0%})" for n in records)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
