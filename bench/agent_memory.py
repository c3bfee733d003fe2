"""Where the edge agent's idle memory goes: RSS of a fresh interpreter importing layer by layer.

The agent's idle RSS target (25 MB) sits close to what CPython, asyncio and the libraries the
agent must use cost before any agent code runs. Each row is a new process that imports the
layers up to it and reports its own RSS (``/proc/self/status``), median of a few runs; the
difference to the row above is what that layer adds. ``ssl`` is loaded by asyncio and by paho
whatever the agent's TLS setting; ``urllib.request`` is imported by paho at module level. The
last row is loaded only by an agent whose config drives peripherals.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

MB = 10**6
TARGET_RSS_BYTES = 25 * MB
LAYERS = (
    ("python -S (no site-packages)", None),
    ("python (site, .pth files)", ""),
    ("+ asyncio", "asyncio"),
    ("+ ssl", "ssl"),
    ("+ sqlite3 (the outbox)", "sqlite3"),
    ("+ msgspec, msgspec.toml", "msgspec, msgspec.toml"),
    ("+ psutil (health)", "psutil"),
    ("+ paho.mqtt.client (with urllib.request)", "paho.mqtt.client"),
    ("+ aiomqtt", "aiomqtt"),
    ("+ edge.protocol", "edge.protocol"),
    ("+ the agent (edge.agent.startup, runner, telemetry)", "edge.agent.startup"),
    (
        "+ peripherals (pyusb, libusb, every driver; only with peripherals = usb)",
        "edge.agent.peripheral_setup, usb.backend.libusb1, usb.core",
    ),
)
REPORT = "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"


def rss_kb(imports: list[str], *, site: bool) -> int:
    code = "".join(f"import {m}\n" for m in imports) + REPORT
    argv = [sys.executable, *([] if site else ["-S"]), "-c", code]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)  # noqa: S603
    return int(done.stdout.strip())


def ladder(rounds: int) -> list[tuple[str, float]]:
    rows = []
    imports: list[str] = []
    for name, module in LAYERS:
        if module:
            imports.append(module)
        site = module is not None
        samples = [rss_kb(imports, site=site) for _ in range(rounds)]
        rows.append((name, statistics.median(samples) * 1024 / MB))
    return rows


def run(*, quick: bool = False) -> str:
    rows = ladder(3 if quick else 7)
    lines = [
        "## Where the agent's idle memory goes",
        "",
        __doc__.split("\n\n", 1)[1].strip(),
        "",
        "| layer | RSS MB | added MB |",
        "|---|---|---|",
    ]
    previous = None
    for name, mb in rows:
        added = "-" if previous is None else f"{mb - previous:+.1f}"
        lines.append(f"| {name} | {mb:.1f} | {added} |")
        previous = mb
    floor = dict(rows)["+ aiomqtt"]
    lines += [
        "",
        (
            "CPython with asyncio and the libraries the agent is built on (paho through "
            f"aiomqtt, SQLite, msgspec, psutil) comes to **{floor:.1f} MB** before any agent "
            f"code runs, against a target of {TARGET_RSS_BYTES / MB:.0f} MB for the idle agent."
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
