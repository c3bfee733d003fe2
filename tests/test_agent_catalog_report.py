"""What a terminal can serve now of its installed catalog: summed up, reported, exposed.

Layer 1: ``summarise`` (pure). Layer 2: ``CatalogReport`` on a real content store with packages
installed as the agent installs them, and the heartbeat's diff. Layer 3: a kiosk agent on its
simulated peripherals, a real Mosquitto and an in-process control plane: the receipt printer
runs out of paper and the print-needing items turn query-only, in the device API and in the
metric.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.catalog_report import CatalogReport, summarise
from edge.agent.config import AgentConfig
from edge.agent.peripheral_setup import simulated_bridge
from edge.agent.peripherals import PeripheralMonitor
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.agent.startup import build_agent
from edge.agent.telemetry import SystemHealth, heartbeat_diff
from edge.catalog import CATALOG_FILE, Catalog, ServiceChannel, ServiceItem, encode_catalog
from edge.catalog.servable import servable
from edge.content.install import ContentStore
from edge.content.manifest import PackageKind
from edge.content.package import open_package, pack
from edge.content.source import scan_directory
from edge.protocol import (
    DeviceKind,
    ItemsSummary,
    MissingPeripheral,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
)
from firmware_bridge.simulated.printer import VirtualReceiptPrinter
from tests.support.control_plane import RunningControlPlane, running_control_plane
from tests.test_catalog_cli import TRUSTED
from tests.test_content_repo import CREATED, KEY

TODAY = date(2026, 3, 2)
WAIT_S = 20.0
K = PeripheralKind
_fresh = itertools.count()


def item(
    code: str,
    *,
    needs: tuple[K, ...] = (),
    query: tuple[K, ...] = (),
    **more: Any,  # noqa: ANN401 - the other fields of ServiceItem
) -> ServiceItem:
    channels = more.pop("channels", (ServiceChannel.KIOSK, ServiceChannel.WINDOW))
    return ServiceItem(code=code, name=f"事项 {code}", department="rs", channels=channels,
                       needs=needs, query_needs=query, **more)  # fmt: skip


def kiosk_catalog(name: str = "conghua", version: int = 1) -> Catalog:
    return Catalog(
        catalog_id=name,
        version=version,
        items=(
            item("RS-1", needs=(K.RECEIPT_PRINTER,), query=(K.ID_CARD_READER,)),  # prints
            item("RS-2", query=(K.ID_CARD_READER,)),  # only reads the card
            item("RS-3", needs=(K.A4_PRINTER,)),  # a kiosk has no A4 printer
            item("RS-4", channels=(ServiceChannel.WINDOW,)),  # at the window only
            item("RS-5", query=(K.CITIZEN_CARD_READER,), needs=(K.RECEIPT_PRINTER,)),
            item("RS-6", effective_to=date(2020, 12, 31)),  # expired
        ),
    )


def kiosk_peripherals(printer: PeripheralState, reason: str = "") -> tuple[PeripheralStatus, ...]:
    return (
        PeripheralStatus(name="printer0", kind=K.RECEIPT_PRINTER, state=printer, reason=reason),
        PeripheralStatus(name="idreader0", kind=K.ID_CARD_READER, state=PeripheralState.OK),
        PeripheralStatus(name="camera0", kind=K.CAMERA, state=PeripheralState.OK),
    )


PAPER_OUT = ItemsSummary(
    catalog_id="conghua",
    version=1,
    full=1,
    query_only=2,
    unavailable=1,
    not_effective=1,
    not_offered=1,
    missing=(  # by kind
        MissingPeripheral(kind=K.A4_PRINTER, query_only=1),
        MissingPeripheral(kind=K.CITIZEN_CARD_READER, unavailable=1),
        MissingPeripheral(kind=K.RECEIPT_PRINTER, query_only=1, unavailable=1),
    ),
    unavailable_codes=("RS-5",),
    query_only_codes=("RS-1", "RS-3"),
)


def install(root: Path, catalog: Catalog | None, *, raw: bytes | None = None) -> None:
    """Pack ``catalog`` (or ``raw`` as catalog.json) and install it as the agent's store does."""
    source = root.parent / f"src-{next(_fresh)}"
    source.mkdir(parents=True)
    (source / CATALOG_FILE).write_bytes(raw if raw is not None else encode_catalog(catalog))  # type: ignore[arg-type]
    name, version = (catalog.catalog_id, catalog.version) if catalog else ("broken", 1)
    out = root.parent / f"{name}-{version}-{next(_fresh)}.tfpkg"
    pack(scan_directory(source), out, kind=PackageKind.CATALOG, name=name, version=version,
         key=KEY, created_at=CREATED)  # fmt: skip
    ContentStore(root).install(open_package(out, TRUSTED))


# --- layer 1: the summary ------------------------------------------------------------------------


def test_a_printer_out_of_paper_turns_the_printing_items_query_only() -> None:
    catalog = kiosk_catalog()
    working = servable(catalog, kiosk_peripherals(PeripheralState.OK), TODAY,
                       channel=ServiceChannel.KIOSK)  # fmt: skip
    paper_out = servable(catalog, kiosk_peripherals(PeripheralState.FAULT, "paper_out"), TODAY,
                         channel=ServiceChannel.KIOSK)  # fmt: skip

    assert summarise(paper_out) == PAPER_OUT
    ok = summarise(working)
    assert (ok.full, ok.query_only, ok.unavailable) == (2, 1, 1)
    assert ok.query_only_codes == ("RS-3",)
    assert ok.missing == (
        MissingPeripheral(kind=K.A4_PRINTER, query_only=1),
        MissingPeripheral(kind=K.CITIZEN_CARD_READER, unavailable=1),
    )


def test_codes_are_bounded_worst_first_and_the_rest_counted() -> None:
    catalog = Catalog(
        catalog_id="big",
        version=2,
        items=tuple(item(f"A-{n:03}", needs=(K.RECEIPT_PRINTER,)) for n in range(30))
        + tuple(item(f"B-{n:03}", query=(K.CITIZEN_CARD_READER,)) for n in range(30)),
    )
    judged = servable(catalog, kiosk_peripherals(PeripheralState.ABSENT), TODAY)

    summary = summarise(judged, max_codes=40)
    small = summarise(judged, max_codes=10)

    assert (summary.query_only, summary.unavailable) == (30, 30)
    assert summary.unavailable_codes == tuple(f"B-{n:03}" for n in range(30))
    assert summary.query_only_codes == tuple(f"A-{n:03}" for n in range(10))
    assert summary.codes_left_out == 20
    assert (len(small.unavailable_codes), small.query_only_codes) == (10, ())
    assert small.codes_left_out == 50
    # The wire bound holds at the default: a summary of any catalog encodes and decodes.
    default = summarise(judged)
    assert len(default.unavailable_codes) + len(default.query_only_codes) == 50
    assert msgspec.json.decode(msgspec.json.encode(default), type=ItemsSummary) == default


# --- layer 2: the installed catalog and the heartbeat ---------------------------------------------


def test_the_report_reads_the_installed_catalog_once_per_version(tmp_path: Path) -> None:
    root = tmp_path / "content"
    report = CatalogReport(root, kind=DeviceKind.KIOSK, today=lambda: TODAY)
    assert report.summary(kiosk_peripherals(PeripheralState.OK)) is None, "no store yet"

    install(root, kiosk_catalog())
    assert report.summary(kiosk_peripherals(PeripheralState.FAULT, "paper_out")) == PAPER_OUT
    assert report.installed() is report.installed(), "decoded once, not per heartbeat"
    out = kiosk_peripherals(PeripheralState.FAULT, "paper_out")
    assert report.summary(out) is report.summary(out), "judged again only on a change"

    newer = kiosk_catalog(version=2)
    install(root, msgspec.structs.replace(newer, items=newer.items[:2]))
    summary = report.summary(kiosk_peripherals(PeripheralState.OK))
    assert summary is not None
    assert (summary.version, summary.full, summary.query_only) == (2, 2, 0)


def test_of_several_catalogs_the_one_installed_last_counts(tmp_path: Path) -> None:
    root = tmp_path / "content"
    install(root, kiosk_catalog("baiyun", 4))
    install(root, kiosk_catalog("conghua", 1))
    # Installed in this order; the links' times say so even on a coarse clock.
    os.utime(root / "baiyun" / "current", ns=(1_000_000_000, 1_000_000_000), follow_symlinks=False)
    (root / "guide").mkdir()  # a content package's directory, with no catalog in it

    catalog = CatalogReport(root, kind=DeviceKind.STATION_PC).installed()

    assert catalog is not None
    assert (catalog.catalog_id, catalog.version) == ("conghua", 1)


def test_a_catalog_this_build_cannot_read_is_logged_and_not_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "content"
    install(root, None, raw=b'{"v":2,"catalog_id":"broken","version":1}')
    report = CatalogReport(root, kind=DeviceKind.KIOSK)

    with caplog.at_level(logging.WARNING):
        assert report.summary(kiosk_peripherals(PeripheralState.OK)) is None
        assert report.summary(kiosk_peripherals(PeripheralState.OK)) is None

    [warning] = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert "unsupported_format" in warning.getMessage() or "format 2" in warning.getMessage()


def test_the_summary_rides_the_full_snapshot_and_a_diff_only_when_it_changed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "content"
    install(root, kiosk_catalog())
    statuses = [kiosk_peripherals(PeripheralState.OK)]
    report = CatalogReport(root, kind=DeviceKind.KIOSK, today=lambda: TODAY)
    health = SystemHealth(lambda: statuses[0], report.summary)

    first = health.read()
    same = health.read()
    statuses[0] = kiosk_peripherals(PeripheralState.FAULT, "paper_out")
    changed = health.read()

    assert first.items is not None
    assert first.items.full == 2
    assert heartbeat_diff(first, same).items is None, "unchanged: left out of the diff"
    assert heartbeat_diff(same, changed).items == PAPER_OUT
    assert SystemHealth(lambda: statuses[0]).read().items is None, "no catalog report: none"


# --- layer 3: agent, broker, control plane -----------------------------------------------------


async def device_items(cp: RunningControlPlane, device_id: str) -> dict[str, Any] | None:
    async with cp.http.get(f"{cp.url}/api/v1/devices/{device_id}") as resp:
        if resp.status != 200:  # not stored yet
            return None
        health = (await resp.json())["health"] or {}
    items: dict[str, Any] | None = health.get("items")
    return items


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    prefix = f"{name}{{{wanted}}} "
    return next((float(line[len(prefix):]) for line in text.splitlines()
                 if line.startswith(prefix)), None)  # fmt: skip


async def test_a_kiosk_out_of_paper_reports_its_print_items_query_only_to_the_control_plane(
    broker: BrokerSettings, device_prefix: str, database_url: str, tmp_path: Path
) -> None:
    device_id = f"{device_prefix}-kiosk"
    root = tmp_path / "state" / "content"
    install(root, kiosk_catalog())
    bridge, simulated = simulated_bridge(
        AgentConfig(device_id=device_id, kind=DeviceKind.KIOSK, peripherals="simulated")
    )
    printer = simulated.devices["printer0"]
    assert isinstance(printer, VirtualReceiptPrinter)
    monitor = PeripheralMonitor(bridge, lambda: datetime.now(UTC), interval_s=0.1)
    report = CatalogReport(root, kind=DeviceKind.KIOSK)
    agent = Agent(
        AgentIdentity(device_id, DeviceKind.KIOSK),
        mqtt.BrokerAddress(broker.host, broker.port),
        SystemHealth(monitor.statuses, report.summary),
        MemorySessionCounter(1),
        timing=AgentTiming(heartbeat_interval_s=0.2, keepalive_s=5),
        peripherals=monitor,
    )
    stop = asyncio.Event()
    async with running_control_plane(broker, database_url) as cp:
        running = asyncio.create_task(agent.run(stop))
        try:

            async def served(query_only: int) -> dict[str, Any] | None:
                items = await device_items(cp, device_id)
                return items if items and items["query_only"] == query_only else None

            working = await cp.wait_for(lambda: served(1), WAIT_S)
            before = await cp.metrics()
            printer.paper_out()
            paper_out = await cp.wait_for(lambda: served(2), WAIT_S)
            after = await cp.metrics()
        finally:
            stop.set()
            await asyncio.wait_for(running, WAIT_S)
            agent.close()

    assert (working["full"], working["query_only_codes"]) == (2, ["RS-3"])
    assert paper_out == json.loads(msgspec.json.encode(PAPER_OUT))
    receipt = {"level": "query_only", "peripheral_kind": "receipt_printer"}
    assert metric(before, "termfleet_catalog_items_unavailable", **receipt) == 0
    assert metric(after, "termfleet_catalog_items_unavailable", **receipt) == 1
    assert metric(after, "termfleet_catalog_items_unavailable", level="unavailable",
                  peripheral_kind="citizen_card_reader") == 1  # fmt: skip
    assert metric(after, "termfleet_catalog_items", level="full") == 1
    assert metric(after, "termfleet_catalog_items", level="query_only") == 2


def test_a_started_agent_reports_the_catalog_in_its_content_dir(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "kiosk-1"\nkind = "kiosk"\nstate_dir = "{tmp_path / "state"}"\n'
        'peripherals = "simulated"\n'
    )
    install(tmp_path / "state" / "content", kiosk_catalog())
    agent = build_agent(config)
    try:
        items = agent._health.read().items  # noqa: SLF001 - the start-up's wiring is the point
    finally:
        agent.close()
    assert items is not None
    assert (items.catalog_id, items.not_offered) == ("conghua", 1)
