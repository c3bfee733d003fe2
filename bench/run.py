"""Run termfleet's benchmarks and write docs/benchmarks.md.

    .venv/bin/python bench/run.py            # all benchmarks, report to docs/benchmarks.md
    .venv/bin/python bench/run.py --quick    # fewer rounds, for a smoke run
    .venv/bin/python bench/run.py --only ingest replicas   # some of them, printed only

Each figure is measured side by side with its reference in one run and reported as a ratio,
because this machine is shared and absolute numbers drift with its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402 - needs the repo root on sys.path first
    agent,
    agent_memory,
    codec,
    connections,
    content_serving,
    ingest,
    ingest_profile,
    mqtt_client,
    nodered,
    replicas,
    rollout_fanout,
    rollout_waves,
    tb_gateway,
)

ABSOLUTE_PATH = re.compile(r"(?:/[^/\s:'\"]+)+/([^/\s:'\"]+)")
"""A path of this machine in an error: only its last part goes into the report."""
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


def context() -> str:
    commit = subprocess.run(  # noqa: S603 - fixed argv
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"commit `{commit or 'unknown'}`, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine yardstick: {codec.yardstick()}"
    )


def ingest_with_peer(*, quick: bool, postgres: str | None) -> str:
    """The ingest ladder with Node-RED as a peer, or a line saying why it is not there."""
    peer, about = nodered.ladder_consumer()
    if peer is None:
        return ingest.run(quick=quick, postgres_admin_url=postgres) + (
            f"\nNode-RED could not be installed or started here:\n\n{about}\n"
        )
    section = ingest.run(quick=quick, postgres_admin_url=postgres, more_consumers=[peer])
    return section + f"\nThe peer: {about} (`bench/nodered.py`).\n"


def measured(name: str, bench: Callable[[], str]) -> str:
    """One benchmark's section, ending with when it ran and the load it ran under.

    A full run takes most of an hour, and the machine's load changes meanwhile: the load
    average at the start of the report would not describe the later sections.
    """
    print(f"bench/run.py: {name} ...", file=sys.stderr, flush=True)
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        section = bench().rstrip("\n")
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others
        traceback.print_exc()
        where = ABSOLUTE_PATH.sub(r".../\1", f"{type(exc).__name__}: {exc}")
        section = f"## `bench/{name}.py` failed\n\n```\n{where}\n```"
    minutes = (time.monotonic() - began) / 60
    load_after = os.getloadavg()[0]
    return (
        f"{section}\n\n*`bench/{name}.py`: {minutes:.1f} min, load average (1 min) "
        f"{load_before:.2f} before and {load_after:.2f} after, "
        f"ended {datetime.now(UTC):%H:%M} UTC.*\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the report (default docs/benchmarks.md; with --only, stdout only)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("TERMFLEET_BENCH_POSTGRES", DEFAULT_POSTGRES),
        help="a PostgreSQL server to create throwaway databases on ('' to leave it out)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these benchmarks (module names in bench/); the report holds only them",
    )
    args = parser.parse_args()
    postgres = args.postgres or None
    benchmarks: list[tuple[str, Callable[[], str]]] = [
        ("codec", lambda: codec.run(quick=args.quick)),
        ("mqtt_client", lambda: mqtt_client.run(quick=args.quick)),
        ("ingest", lambda: ingest_with_peer(quick=args.quick, postgres=postgres)),
        (
            "ingest_profile",
            lambda: ingest_profile.run(quick=args.quick, postgres_admin_url=postgres),
        ),
        ("connections", lambda: connections.run(quick=args.quick)),
        ("replicas", lambda: replicas.run(quick=args.quick, postgres_admin_url=postgres)),
        ("agent", lambda: agent.run(quick=args.quick)),
        ("agent_memory", lambda: agent_memory.run(quick=args.quick)),
        ("tb_gateway", lambda: tb_gateway.run(quick=args.quick)),
        ("content_serving", lambda: content_serving.run(quick=args.quick)),
        ("rollout_fanout", lambda: rollout_fanout.run(quick=args.quick)),
        ("rollout_waves", lambda: rollout_waves.run(quick=args.quick)),
    ]
    unknown = set(args.only or ()) - {name for name, _ in benchmarks}
    if unknown:
        parser.error(f"no benchmark named {', '.join(sorted(unknown))}")
    chosen = [(name, bench) for name, bench in benchmarks if not args.only or name in args.only]
    report = "# Benchmarks\n\nGenerated by `python bench/run.py`; " + context() + ".\n\n"
    report += "\n".join(measured(name, bench) for name, bench in chosen)
    report += f"\nMachine yardstick at the end: {codec.yardstick()}.\n"
    out = args.out or (None if args.only else ROOT / "docs" / "benchmarks.md")
    if out is not None:
        out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
