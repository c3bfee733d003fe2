"""Where the ingest's time goes where it falls short: py-spy on ``termfleet server run``.

The ladder (``bench/ingest.py``) shows that one record per message is where the ingest stops
keeping up. This samples the control plane's process with py-spy (every thread, on-CPU only,
aggregated by function) while the same load generator offers that load, and reports the
functions that held the CPU themselves ("own") and the ones the samples passed through
("total"). C code (msgspec, sqlite3, the event loop's selector) shows as the Python function
that called it.

    python -m bench.ingest_profile [--quick] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.ingest import DEVICES, LIVE, temporary_postgres
from bench.loadgen import Load, run_load
from bench.stand import stand

RATE = 20_000
SAMPLES_PER_S = 250
TOP = 14
_ABSOLUTE = re.compile(r"\((?:/[^/():]+)*/([^/():]+/[^/():]+):")
"""An absolute file path in a frame: only its last two parts go into the report."""


@dataclass(frozen=True)
class Profile:
    samples: int
    own: Counter[str]
    total: Counter[str]
    delivered_per_s: float


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def profile(workdir: Path, database_url: str, load: Load, binary: str) -> Profile:
    raw = workdir / "profile.raw"
    with stand(workdir, database_url) as running:
        # --nonblocking: the server is not paused at each sample, so it runs as measured.
        argv = [binary, "record", "--pid", str(running.server.pid), "--duration",
                str(int(load.duration_s + 4)), "--rate", str(SAMPLES_PER_S), "--function",
                "--nonblocking", "--format", "raw", "--output", str(raw)]  # fmt: skip
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
        result = run_load(running.broker.host, running.broker.port, load)
        _, err = spy.communicate(timeout=load.duration_s + 60)
        if spy.returncode != 0 or not raw.exists():
            msg = f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-300:]}"
            raise RuntimeError(msg)
    own, total, samples = collapse(raw.read_text())
    return Profile(samples, own, total, result.acknowledged / result.elapsed_s)


def collapse(text: str) -> tuple[Counter[str], Counter[str], int]:
    """Own and total samples by function, from py-spy's raw (collapsed stack) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _ABSOLUTE.sub(r"(\1:", stack).split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return own, total, samples


def report(found: Profile, load: Load, backend: str) -> str:
    lines = [
        "## Where the ingest's time goes at one record per message",
        "",
        (
            f"py-spy ({SAMPLES_PER_S} samples/s, every thread, on-CPU only, by function) on "
            f"`termfleet server run` ({backend}) while `bench/loadgen.py` offers "
            f"{load.rate:,.0f} records/s, {load.records_per_message} per message, from "
            f"{load.devices} connections for {load.duration_s:.0f} s: the step where the ladder "
            f"above shows the ingest falling behind. It delivered {found.delivered_per_s:,.0f}/s "
            f"while sampled; {found.samples:,} samples. *Own*: the function itself held the CPU "
            "(C code it called included); *total*: it was on the stack."
        ),
        "",
        "| function | own | total |",
        "|---|---:|---:|",
    ]
    for frame, count in found.own.most_common(TOP):
        share = count / found.samples
        lines.append(f"| `{frame}` | {share:.1%} | {found.total[frame] / found.samples:.1%} |")
    return "\n".join(lines) + "\n"


def run(*, quick: bool = False, postgres_admin_url: str | None = None) -> str:
    binary = py_spy()
    if binary is None:
        return (
            "## Where the ingest's time goes at one record per message\n\n"
            "Not measured: py-spy is not installed (`pip install -e '.[dev]'` brings it).\n"
        )
    load = Load(rate=RATE, duration_s=5.0 if quick else 10.0, devices=DEVICES,
                records_per_message=LIVE)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        if postgres_admin_url:
            with temporary_postgres(postgres_admin_url) as url:
                return report(profile(Path(tmp), url, load, binary), load, "PostgreSQL")
        url = f"sqlite://{Path(tmp) / 'tf.sqlite3'}"
        return report(profile(Path(tmp), url, load, binary), load, "SQLite")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", default=os.environ.get("TERMFLEET_BENCH_POSTGRES", ""))
    args = parser.parse_args()
    print(run(quick=args.quick, postgres_admin_url=args.postgres or None))
