"""Two control-plane replicas sharing the uplink, and one of them killed mid-run.

Measured on one broker (the project's Mosquitto configuration) and one throwaway PostgreSQL
database, with two ``termfleet server run`` replicas in the ingest's ``$share/`` group
(``bench/replicas_cluster.py``), fed by simulated terminals that deliver as the agent does:
keep each record until its ``Ack``, resend after the ack timeout with backoff
(``bench/replicas_devices.py``).

- **Throughput**: a ladder of offered rates, each step run with both replicas and then, in the
  same run, with one replica alone (the other stopped with SIGTERM, which leaves the share
  group): delivered rate and its ratio to one replica, each replica's share of the records, CPU
  µs per record (both replicas together), publish→ack p50/p99.
- **Kill**: a steady load; one replica gets a real SIGKILL mid-run and either stays down or is
  started again. Afterwards every (device_id, seq) made is looked up in the ``record`` table
  (``bench/replicas_verify.py``): missing, doubled, lost (acknowledged yet not stored), and
  still held by a device; the devices' resends, the time until the delivered rate is back, the
  worst made→ack of the records made after the kill, the records per replica.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench import replicas_devices as devices
from bench.replicas_cluster import Cluster, Replica, cluster, offers_option
from bench.replicas_report import SAMPLE_S, report
from bench.replicas_verify import Verdict, verify
from edge.agent.delivery import ACK_TIMEOUT_S

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
"""As bench/run.py's."""
DEVICES = 300
QUIET_S = 1.0
QUIESCE_MAX_S = 30.0
"""After a step, wait (this long at most) until neither replica's record counter moves, so that
a backlog left by one step is not charged to the next."""
KILL_RATE = 5_000
SESSION_EXPIRY_OPTION = "--ingest-session-expiry"


@dataclass(frozen=True)
class Step:
    traffic: devices.Traffic
    replicas: int
    delivery: devices.Delivery
    records: list[float]
    """Records each replica committed during the step (duplicates included)."""
    cpu_s: float
    """CPU of all replicas during the step."""
    verdict: Verdict

    @property
    def delivered_per_s(self) -> float:
        return self.delivery.acknowledged / max(self.delivery.elapsed_s, 1e-9)

    def percentile_ms(self, fraction: float) -> float | None:
        ordered = sorted(self.delivery.latencies_s)
        if len(ordered) < 100:  # noqa: PLR2004 - too few for a p99
            return None
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


@dataclass(frozen=True)
class KillRun:
    variant: str
    traffic: devices.Traffic
    kill_at_s: float
    restart_at_s: float | None
    delivery: devices.Delivery
    verdict: Verdict
    records: list[float]
    load_average: float


def ladder(*, quick: bool) -> list[tuple[float, int]]:
    """(offered records/s, records per message): live traffic, then backlogs draining."""
    if quick:
        return [(5_000, 1), (20_000, 100)]
    return [(5_000, 1), (10_000, 1), (20_000, 1), (20_000, 100), (40_000, 100)]


def run(*, quick: bool = False, postgres_admin_url: str | None = None) -> str:
    if not postgres_admin_url:
        return (
            "## Two control-plane replicas sharing the uplink\n\n"
            "Not run: it needs a PostgreSQL server (`--postgres URL`) for the replicas to share.\n"
        )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        load_before = os.getloadavg()[0]
        steps = throughput(workdir / "throughput", postgres_admin_url, quick=quick)
        kills = [
            kill_run(workdir / f"kill{n}", postgres_admin_url, variant, quick=quick)
            for n, variant in enumerate(kill_variants())
        ]
    return report(steps, kills, load_before)


def throughput(workdir: Path, admin_url: str, *, quick: bool) -> list[Step]:
    duration_s = 5.0 if quick else 6.0
    steps = []
    with cluster(workdir, admin_url) as running:
        first, second = running.replicas
        for n, (rate, per_message) in enumerate(ladder(quick=quick)):
            traffic = devices.Traffic(f"tp{n}-two", rate, duration_s, DEVICES, per_message)
            steps.append(measure(running, traffic, [first, second]))
            second.stop()
            alone = replace(traffic, prefix=f"tp{n}-one")
            steps.append(measure(running, alone, [first]))
            second.start()
    return steps


def measure(running: Cluster, traffic: devices.Traffic, members: list[Replica]) -> Step:
    running.sample()
    records_before = [m.total_records for m in members]
    cpu_before = sum(m.total_cpu_s for m in members)
    host, port = running.broker.host, running.broker.port
    with devices.running(host, port, traffic) as load:
        while not load.pending.ready():
            running.sample()
            time.sleep(SAMPLE_S)
        delivery = load.result()
    quiesce(running)
    records = [m.total_records - before for m, before in zip(members, records_before, strict=True)]
    cpu_s = sum(m.total_cpu_s for m in members) - cpu_before
    verdict = verify(running.database_url, traffic.prefix, delivery)
    return Step(traffic, len(members), delivery, records, cpu_s, verdict)


def quiesce(running: Cluster) -> None:
    deadline = time.monotonic() + QUIESCE_MAX_S
    last: list[float] = []
    while time.monotonic() < deadline:
        running.sample()
        now = [r.total_records for r in running.replicas]
        if now == last:
            return
        last = now
        time.sleep(QUIET_S)


@dataclass(frozen=True)
class KillVariant:
    name: str
    prefix: str
    """Of its devices' ids."""
    restart: bool
    options: tuple[str, ...] = ()
    """Given to both replicas' ``server run``."""


def kill_variants() -> list[KillVariant]:
    variants = [
        KillVariant("killed, stays down", "down", restart=False),
        KillVariant("killed, restarted", "restarted", restart=True),
    ]
    # The setting meant for several replicas, where this control plane has it: the broker
    # drops a dead replica's session at once instead of queueing its share for it.
    if offers_option(SESSION_EXPIRY_OPTION):
        options = (SESSION_EXPIRY_OPTION, "0")
        name = f"killed, stays down, `{' '.join(options)}`"
        variants.append(KillVariant(name, "down-expiry0", restart=False, options=options))
    return variants


def kill_run(workdir: Path, admin_url: str, variant: KillVariant, *, quick: bool) -> KillRun:
    """Steady load; SIGKILL the second replica at ``kill_at_s``, maybe start it again later."""
    restart = variant.restart
    duration_s, kill_at_s, down_s = (20.0, 7.0, 5.0) if quick else (40.0, 15.0, 10.0)
    restart_at_s = kill_at_s + down_s if restart else None
    # Stays down: long enough after the load for every record it swallowed to be resent once.
    drain_s = 20.0 if restart else ACK_TIMEOUT_S + 2.0
    traffic = devices.Traffic(variant.prefix, KILL_RATE, duration_s, DEVICES, drain_s=drain_s)
    load_average = os.getloadavg()[0]
    with cluster(workdir, admin_url, variant.options) as running:
        _, victim = running.replicas
        host, port = running.broker.host, running.broker.port
        with devices.running(host, port, traffic) as load:
            while not load.pending.ready():
                elapsed = time.time() - load.start_at
                if not victim.kills and elapsed >= kill_at_s:
                    victim.kill()
                elif restart_at_s is not None and not victim.alive() and elapsed >= restart_at_s:
                    victim.start()
                running.sample()
                time.sleep(SAMPLE_S)
            delivery = load.result()
        quiesce(running)
        records = [r.total_records for r in running.replicas]
        verdict = verify(running.database_url, variant.prefix, delivery)
    return KillRun(
        variant.name, traffic, kill_at_s, restart_at_s, delivery, verdict, records, load_average
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter steps")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("TERMFLEET_BENCH_POSTGRES", DEFAULT_POSTGRES),
        help="a PostgreSQL server to create the throwaway database on",
    )
    args = parser.parse_args()
    print(run(quick=args.quick, postgres_admin_url=args.postgres or None))


if __name__ == "__main__":
    main()
