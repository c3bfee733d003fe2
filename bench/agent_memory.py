"""Where the edge agent's idle memory goes: RSS of a fresh interpreter importing layer by layer.

The agent's idle RSS target (25 MB) sits below what CPython and the parts the agent is made of
cost before any agent code runs. Each row is a new process that imports the layers up to it and
reports its own RSS (``/proc/self/status``), median of a few runs; the difference to the row
above is what that layer adds, with the standard library it brings along. The rows from the
second on run without ``site`` (``python -S``, the packages found on ``sys.path`` directly),
so that the ``.pth`` files of the environment the benchmark runs in (the first row: a
development install's) are not counted in them. The parts named by the issue and the project
come first: ``ssl`` (TLS; paho imports it, and so does asyncio), the SQLite outbox, msgspec,
psutil and paho (which imports ``urllib.request`` at module level); then asyncio and aiomqtt,
which the agent's event loop adds. The last row is loaded only by an agent whose config drives
peripherals.
"""

from __future__ import annotations

import site
import statistics
import subprocess
import sys
from pathlib import Path

MB = 10**6
TARGET_RSS_BYTES = 25 * MB
ROOT = Path(__file__).resolve().parent.parent
NAMED_PARTS_ROW = "+ paho.mqtt.client (with urllib.request)"
"""The last of the parts the issue and the project name; the agent's event loop comes after."""
EVENT_LOOP_ROW = "+ aiomqtt"
LAYERS = (
    ("python, for reference (site, this environment's .pth files)", ""),
    ("python -S (no site-packages)", None),
    ("+ ssl (TLS)", "ssl"),
    ("+ sqlite3 (the outbox)", "sqlite3"),
    ("+ msgspec, msgspec.toml", "msgspec, msgspec.toml"),
    ("+ psutil (health)", "psutil"),
    (NAMED_PARTS_ROW, "paho.mqtt.client"),
    ("+ asyncio", "asyncio"),
    (EVENT_LOOP_ROW, "aiomqtt"),
    ("+ edge.protocol", "edge.protocol"),
    ("+ the agent (edge.agent.startup, runner, telemetry)", "edge.agent.startup"),
    (
        "+ peripherals (pyusb, libusb, every driver; only with peripherals = usb)",
        "edge.agent.peripheral_setup, usb.backend.libusb1, usb.core",
    ),
)
REPORT = "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"


def rss_kb(imports: list[str], *, site_row: bool) -> int:
    """RSS in KiB of a new interpreter importing ``imports``; ``site_row``: with ``site``."""
    if site_row:
        argv = [sys.executable, "-c", REPORT]
    else:
        path = [str(ROOT), *site.getsitepackages()]
        code = f"import sys\nsys.path[:0] = {path!r}\n"
        code += "".join(f"import {m}\n" for m in imports) + REPORT
        argv = [sys.executable, "-S", "-c", code]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)  # noqa: S603
    return int(done.stdout.strip())


def ladder(rounds: int) -> list[tuple[str, float]]:
    rows = []
    imports: list[str] = []
    for name, module in LAYERS:
        if module:
            imports.append(module)
        samples = [rss_kb(imports, site_row=module == "") for _ in range(rounds)]
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
    for n, (name, mb) in enumerate(rows):
        added = "-" if previous is None else f"{mb - previous:+.1f}"
        lines.append(f"| {name} | {mb:.1f} | {added} |")
        previous = mb if n else None  # the reference row is no step of the ladder
    named, with_loop = dict(rows)[NAMED_PARTS_ROW], dict(rows)[EVENT_LOOP_ROW]
    lines += [
        "",
        (
            f"The parts the agent must be made of (CPython, TLS, SQLite, msgspec, psutil, paho) "
            f"come to **{named:.1f} MB** before any agent code runs, and "
            f"**{with_loop:.1f} MB** with its event loop (asyncio, aiomqtt), against a target of "
            f"{TARGET_RSS_BYTES / MB:.0f} MB for the idle agent."
        ),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
