"""The benchmark harness's own logic, without running a benchmark (that is `bench/run.py`'s job).

A benchmark that fails becomes a section saying so and keeps the others; the ingest ladder's
verdicts credit a consumer only with the steps it kept up with and without loss; the machine's
idle share is measured over the load's window; every report names the machine's speed.
"""

from __future__ import annotations

import re
import time

from bench import ingest, loadgen
from bench.loadgen import Load
from bench.run import context, measured


def test_a_failing_benchmark_becomes_a_section_naming_the_error_without_local_paths() -> None:
    def broken() -> str:
        msg = "no such file: /home/someone/work/termfleet/bench/thing.db"
        raise FileNotFoundError(msg)

    section = measured("thing", broken)

    assert section.startswith("## `bench/thing.py` failed")
    assert "FileNotFoundError: no such file: .../thing.db" in section
    assert "/home/someone" not in section
    assert "*`bench/thing.py`:" in section
    assert "load average (1 min)" in section


def result(
    consumer: str, rate: int, delivered: float, *, lost: int = 0, p99: float = 50.0
) -> ingest.Result:
    load = Load(rate=rate, duration_s=10.0, devices=200)
    sent = rate * 10
    return ingest.Result(
        consumer, load, delivered, sent - lost, sent, 10.0, p99, 40.0, 100.0, idle_pct=12.4
    )


def test_verdicts_credit_only_the_steps_kept_up_without_loss() -> None:
    rows = [
        [result("mosquitto_sub -q 1", 5_000, 5_000), result("ours", 5_000, 4_990)],
        [result("mosquitto_sub -q 1", 10_000, 10_000), result("ours", 10_000, 9_950, p99=250)],
        # Fast enough, but it lost records: not kept up.
        [result("mosquitto_sub -q 1", 20_000, 20_000), result("ours", 20_000, 19_900, lost=7)],
        [result("mosquitto_sub -q 1", 30_000, 30_000), result("ours", 30_000, 21_000)],
    ]

    verdict = "\n".join(ingest.verdicts(rows))

    kept = "- ours, 1 record(s) per message: kept up to 9,950 records/s (0.99 of the reference)"
    assert kept in verdict
    assert "p99 250 ms at 10,000/s" in verdict
    assert "7 lost." in verdict


def test_the_report_shows_how_much_of_the_machine_stood_idle() -> None:
    rows = [[result("mosquitto_sub -q 1", 5_000, 5_000), result("ours", 5_000, 4_990)]]

    table = ingest.report(rows)

    assert "| idle % |" in table
    assert "| 5,000 | 1 | ours | 4,990 | 1.00 | 0 | 10 | 50 | 40 | 100 | 12 |" in table


def test_the_idle_share_is_measured_over_the_load_window() -> None:
    into: list[float] = []
    began = time.monotonic()

    loadgen._idle_share(time.time() + 0.2, 0.3, into)  # noqa: SLF001 - the window's own measure

    assert time.monotonic() - began >= 0.5
    assert len(into) == 1
    assert 0.0 <= into[0] <= 1.0


def test_every_report_names_the_machine_speed_of_its_run() -> None:
    header = context()

    found = re.search(r"machine yardstick: `json.loads` of a \d+-byte heartbeat ([\d,]+)/s", header)
    assert found is not None, header
    assert int(found.group(1).replace(",", "")) > 0
