"""Ingest throughput and publish→commit latency, beside what the broker alone can deliver.

One run, one machine, side by side at each offered rate of a ladder:

- **reference**: ``mosquitto_sub -q 1`` receiving the same load: what the broker can hand a
  consumer here, the line our ingest is measured against;
- **database off**: the ingest's own code (MQTT connection, decoding, validation, fleet state,
  batching, the acknowledgement) with the commit replaced by a stand-in that stores nothing
  (``bench/ingest_nodb.py``), in its own process: the gap to the next line is the database's;
- **termfleet**: the full ingest (``termfleet server run`` on SQLite and on PostgreSQL) storing
  every record and acknowledging it after the commit.

Further consumers (another product's ingest) are measured by the same yardstick when passed to
``run`` as ``more_consumers``; each is a ``Consumer``, its rows follow ours.

The load comes from ``bench/loadgen.py``: open loop, one connection per simulated device, one
record per message (live traffic) or 100 (a terminal draining its backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from bench.ingest_nodb import nodb_stand
from bench.loadgen import Load, LoadResult, run_load
from bench.stand import stand
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import free_port
from edge.protocol import Channel
from edge.protocol import topics as wire

DEVICES = 200
REFERENCE_DRAIN_S = 1.0
"""After the load, how long mosquitto_sub gets to print what the broker still delivers."""
REFERENCE_BACKSTOP_S = 300
MIN_FOR_P99 = 100
LIVE = 1
DRAIN = 100
"""Records per message: a terminal sends a live record alone and a backlog 100 at a time."""


@dataclass(frozen=True)
class Result:
    consumer: str
    load: Load
    delivered_per_s: float
    delivered: int
    sent: int
    p50_ms: float | None
    p99_ms: float | None
    cpu_us_per_record: float | None
    rss_mib: float | None
    idle_pct: float | None = None
    """The machine's CPU left idle during the step (``LoadResult.idle_share``)."""


def count_lines(process: subprocess.Popen[bytes]) -> int:
    return sum(1 for _ in process.stdout or ())


def run_reference(workdir: Path, load: Load) -> Result:
    """mosquitto_sub receiving the same load: every line it prints is one message."""
    broker = BrokerSettings(workdir / "ref-broker", free_port())
    broker_process = start_broker(broker)
    try:
        # Read all along (a pipe left unread fills, and mosquitto_sub would stall on it);
        # SIGTERM after the load ends it as its -W timeout does, flushing what it printed, and
        # -W is only the backstop: one sized to the load cut it short on a busy machine, where
        # the generator's processes take seconds to start.
        topic = wire.uplink_filter(Channel.USAGE)
        argv = ["mosquitto_sub", "-V", "mqttv5", "-p", str(broker.port), "-q", "1",
                "-t", topic, "-W", str(int(load.duration_s + REFERENCE_BACKSTOP_S))]  # fmt: skip
        consumer = subprocess.Popen(argv, stdout=subprocess.PIPE)  # noqa: S603
        with ThreadPoolExecutor(1) as reader:
            try:
                lines = reader.submit(count_lines, consumer)
                time.sleep(0.5)
                watch = psutil.Process(consumer.pid)
                cpu_before = sum(watch.cpu_times()[:2])
                result = run_load(
                    broker.host, broker.port, dataclasses.replace(load, want_acks=False)
                )
                cpu = sum(watch.cpu_times()[:2]) - cpu_before
                rss = watch.memory_info().rss / 2**20
                time.sleep(REFERENCE_DRAIN_S)
            finally:
                consumer.terminate()
            received = lines.result(timeout=30) * load.records_per_message
            consumer.wait(timeout=30)
    finally:
        broker_process.stop()
    return Result("mosquitto_sub -q 1", load, received / result.elapsed_s, received,
                  result.sent, None, None, cpu / max(received, 1) * 1e6, rss,
                  _pct(result.idle_share))  # fmt: skip


Consumer = Callable[[Path, Load], Result]
"""One line of the table: takes the load in a fresh work directory, reports what it delivered."""


def run_termfleet(workdir: Path, load: Load, database_url: str) -> Result:
    with stand(workdir / "termfleet", database_url) as running:
        measured = _acknowledged(running.server.pid, running.broker, load)
    backend = database_url.split(":", maxsplit=1)[0]
    return measured(f"termfleet ingest ({backend})")


def run_sqlite(workdir: Path, load: Load) -> Result:
    return run_termfleet(workdir, load, f"sqlite://{workdir}/tf.sqlite3")


def run_postgres(admin_url: str, workdir: Path, load: Load) -> Result:
    with temporary_postgres(admin_url) as url:
        return run_termfleet(workdir, load, url)


def run_without_database(workdir: Path, load: Load) -> Result:
    with nodb_stand(workdir / "nodb") as running:
        measured = _acknowledged(running.server.pid, running.broker, load)
    return measured("termfleet ingest, database off")


def _acknowledged(pid: int, broker: BrokerSettings, load: Load) -> Callable[[str], Result]:
    """Run ``load`` against a consumer that acknowledges with ``Ack``; its CPU and RSS."""
    time.sleep(1.0)
    watch = psutil.Process(pid)
    cpu_before = sum(watch.cpu_times()[:2])
    result = run_load(broker.host, broker.port, load)
    cpu = sum(watch.cpu_times()[:2]) - cpu_before
    rss = watch.memory_info().rss / 2**20
    p50, p99 = _percentiles(result)
    return functools.partial(
        Result, load=load, delivered_per_s=result.acknowledged / result.elapsed_s,
        delivered=result.acknowledged, sent=result.sent, p50_ms=p50, p99_ms=p99,
        cpu_us_per_record=cpu / max(result.acknowledged, 1) * 1e6, rss_mib=rss,
        idle_pct=_pct(result.idle_share),
    )  # fmt: skip


def _pct(share: float | None) -> float | None:
    return None if share is None else share * 100


def _percentiles(result: LoadResult) -> tuple[float | None, float | None]:
    ordered = sorted(result.latencies_s)
    p50 = statistics.median(ordered) * 1000 if ordered else None
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000 if len(ordered) >= MIN_FOR_P99 else None
    return p50, p99


RATES = (5_000, 10_000, 20_000, 30_000, 40_000)


def ladder(*, quick: bool) -> list[Load]:
    """Each rate with live messages (1 record), then with backlog messages (100)."""
    duration_s = 5.0 if quick else 10.0
    if quick:
        steps = [(5_000, LIVE), (20_000, LIVE), (20_000, DRAIN)]
    else:
        steps = [(rate, per_message) for per_message in (LIVE, DRAIN) for rate in RATES]
    return [
        Load(rate=rate, duration_s=duration_s, devices=DEVICES, records_per_message=per_message)
        for rate, per_message in steps
    ]


def run(
    *,
    quick: bool = False,
    postgres_admin_url: str | None = None,
    more_consumers: Sequence[Consumer] = (),
) -> str:
    """The ladder, each step against the reference.

    Then the ingest without its database, on SQLite, on PostgreSQL (given a server), and
    ``more_consumers`` last.
    """
    consumers: list[Consumer] = [run_reference, run_without_database, run_sqlite]
    if postgres_admin_url:
        consumers.append(functools.partial(run_postgres, postgres_admin_url))
    consumers += more_consumers
    rows: list[list[Result]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, load in enumerate(ladder(quick=quick)):
            rows.append(
                [consume(Path(tmp) / f"{n}-{k}", load) for k, consume in enumerate(consumers)]
            )
    return report(rows)


def report(rows: list[list[Result]]) -> str:
    first = rows[0][0].load
    lines = [
        "## Ingest: offered load, delivered rate and publish→commit latency",
        "",
        (
            f"{first.devices} device connections in {first.workers} generator processes "
            f"(`bench/loadgen.py`, speaking through the ingest's own MQTT client, not paho, "
            "so that the generator does not take the cores the control plane is measured on), "
            f"QoS 1, open loop, {first.duration_s:.0f} s per step. "
            "*Records per message* is 1 for live traffic and 100 for a terminal draining its "
            "backlog. *Database off* is the ingest's own code with a stand-in commit that stores "
            "nothing (`bench/ingest_nodb.py`): the gap between it and the SQLite and PostgreSQL "
            "lines is what storing costs. "
            "Delivered = records the consumer got (reference) or that were acknowledged "
            "after their commit (termfleet), per second from the first publish to the later of "
            "the last publish and the last acknowledgement (a consumer that falls behind is not "
            "credited with the offered rate); ratio to the reference at the same step; lost = "
            "sent and never acknowledged within 20 s of the end; latency from handing a record "
            "to the client to the arrival of its `Ack`; *idle* = the machine's CPU (both "
            "cores) left idle while the load was offered: the generator, the broker and the "
            "consumer share the two cores, and near 0 % the latencies include waiting for one."
        ),
        "",
        (
            "| offered/s | records per message | consumer | delivered/s | ratio | lost "
            "| p50 ms | p99 ms | CPU µs/record | RSS MiB | idle % |"
        ),
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for step in rows:
        for row in step:
            ratio = _ratio(row, [step])
            lines.append(
                f"| {row.load.rate:,.0f} | {row.load.records_per_message} | {row.consumer} | "
                f"{row.delivered_per_s:,.0f} | {ratio:.2f} | {row.sent - row.delivered:,} | "
                f"{_whole(row.p50_ms)} | {_whole(row.p99_ms)} | "
                f"{row.cpu_us_per_record or 0:,.0f} | {row.rss_mib or 0:.0f} | "
                f"{_whole(row.idle_pct)} |"
            )
    lines += ["", *verdicts(rows)]
    return "\n".join(lines) + "\n"


KEPT_UP = 0.98
"""A consumer keeps up at a step when it delivers at least this share of the offered rate."""


def verdicts(rows: list[list[Result]]) -> list[str]:
    """The delivery issue's targets against this run, per consumer and message shape."""
    ours = [row for step in rows for row in step[1:]]
    lines = [
        (
            "Against the targets (≥ 30,000 records/s durable and ≥ 0.5 of the reference, p99 ≤ "
            "100 ms at 10,000/s, no loss; the database-off line stores nothing, so it is a "
            "ceiling, not a durable figure):"
        ),
        "",
    ]
    for consumer in sorted({row.consumer for row in ours}):
        for per_message in sorted({row.load.records_per_message for row in ours}):
            mine = [
                r
                for r in ours
                if (r.consumer, r.load.records_per_message) == (consumer, per_message)
            ]
            kept_up = [
                r for r in mine
                if r.delivered_per_s >= KEPT_UP * r.load.rate and r.sent == r.delivered
            ]  # fmt: skip
            at_10k = next((r for r in mine if r.load.rate == 10_000), None)  # noqa: PLR2004
            p99 = f"p99 {_whole(at_10k.p99_ms)} ms at 10,000/s" if at_10k else "no 10,000/s step"
            top = max(kept_up, key=lambda r: r.delivered_per_s, default=None)
            best = (
                f"kept up to {top.delivered_per_s:,.0f} records/s "
                f"({_ratio(top, rows):.2f} of the reference)"
                if top
                else "kept up at no step"
            )
            lost = sum(r.sent - r.delivered for r in mine)
            lines.append(
                f"- {consumer}, {per_message} record(s) per message: {best}; {p99}; {lost:,} lost."
            )
    return lines


@contextlib.contextmanager
def temporary_postgres(admin_url: str) -> Iterator[str]:
    """A fresh database on the server at ``admin_url``, dropped afterwards."""
    name = f"termfleet_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _ratio(result: Result, rows: list[list[Result]]) -> float:
    """``result``'s delivered rate over the reference's at the same step."""
    reference = next(step[0] for step in rows if result in step)
    return result.delivered_per_s / reference.delivered_per_s if reference.delivered_per_s else 0


def _whole(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three steps of 5 s")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="a PostgreSQL server for throwaway databases",
    )
    args = parser.parse_args()
    print(run(quick=args.quick, postgres_admin_url=args.postgres))


if __name__ == "__main__":
    main()
