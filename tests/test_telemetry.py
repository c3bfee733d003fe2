"""Heartbeat diffs against the last reading, and real readings from this machine via psutil."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import psutil
import pytest

from edge import __version__
from edge.agent.telemetry import HealthSource, SystemHealth, heartbeat_diff, network_type
from edge.protocol import (
    Channel,
    Heartbeat,
    Network,
    NetworkType,
    PayloadError,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    decode,
    encode,
)

AT_1 = datetime(2024, 6, 11, 9, 0, 0, tzinfo=UTC)
AT_2 = datetime(2024, 6, 11, 9, 0, 30, tzinfo=UTC)

PRINTER_OK = PeripheralStatus(
    name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK
)
PRINTER_LOW = PeripheralStatus(
    name="printer0",
    kind=PeripheralKind.RECEIPT_PRINTER,
    state=PeripheralState.DEGRADED,
    reason="paper_near_end",
)
READER_OK = PeripheralStatus(
    name="idreader0", kind=PeripheralKind.ID_CARD_READER, state=PeripheralState.OK
)

DIFFED_FIELDS = (
    "uptime_s",
    "cpu_percent",
    "memory_percent",
    "disk_percent",
    "temperature_c",
    "network",
    "agent_version",
    "os",
    "hardware_model",
    "outbox_backlog",
    "peripherals",
    "items",
)

BASE = Heartbeat(
    seq=1,
    at=AT_1,
    full=True,
    uptime_s=1000,
    cpu_percent=12.5,
    memory_percent=40.0,
    disk_percent=42.0,
    temperature_c=45.5,
    network=Network(type=NetworkType.ETHERNET),
    agent_version="1.0.0",
    outbox_backlog=0,
    peripherals=(PRINTER_OK, READER_OK),
)


def test_the_diff_covers_every_field_but_the_envelope() -> None:
    names = {f.name for f in msgspec.structs.fields(Heartbeat)}

    assert names - set(DIFFED_FIELDS) == {"v", "session", "seq", "at", "full"}


def test_no_previous_gives_the_full_reading() -> None:
    current = msgspec.structs.replace(BASE, full=False)

    diff = heartbeat_diff(None, current)

    assert diff.full is True
    assert diff == msgspec.structs.replace(current, full=True)


def test_unchanged_fields_are_none_and_changed_ones_included() -> None:
    current = msgspec.structs.replace(
        BASE, seq=2, at=AT_2, uptime_s=1030, cpu_percent=13.0, memory_percent=40.0
    )

    diff = heartbeat_diff(BASE, current)

    assert diff.full is False
    assert diff.uptime_s == 1030
    assert diff.cpu_percent == 13.0
    unchanged = [name for name in DIFFED_FIELDS if name not in {"uptime_s", "cpu_percent"}]
    assert {name: getattr(diff, name) for name in unchanged} == dict.fromkeys(unchanged)


def test_identical_readings_leave_only_the_envelope_on_the_wire() -> None:
    current = msgspec.structs.replace(BASE, seq=2, at=AT_2)

    diff = heartbeat_diff(BASE, current)

    assert all(getattr(diff, name) is None for name in DIFFED_FIELDS)
    assert set(json.loads(encode(diff))) == {"v", "seq", "at"}


def test_seq_and_at_come_from_the_current_reading() -> None:
    current = msgspec.structs.replace(BASE, seq=7, at=AT_2, cpu_percent=50.0)

    diff = heartbeat_diff(BASE, current)

    assert (diff.seq, diff.at) == (7, AT_2)


def test_a_peripheral_change_sends_the_whole_peripheral_list() -> None:
    current = msgspec.structs.replace(BASE, seq=2, at=AT_2, peripherals=(PRINTER_LOW, READER_OK))

    diff = heartbeat_diff(BASE, current)

    assert diff.peripherals == (PRINTER_LOW, READER_OK)
    assert diff.cpu_percent is None
    assert diff.full is False


def test_a_peripheral_that_disappears_is_a_change() -> None:
    current = msgspec.structs.replace(BASE, seq=2, at=AT_2, peripherals=(READER_OK,))

    assert heartbeat_diff(BASE, current).peripherals == (READER_OK,)


def test_a_network_change_is_included() -> None:
    wifi = Network(type=NetworkType.WIFI)
    current = msgspec.structs.replace(BASE, seq=2, at=AT_2, network=wifi)

    assert heartbeat_diff(BASE, current).network == wifi


def test_a_diff_round_trips_on_the_health_channel() -> None:
    current = msgspec.structs.replace(BASE, seq=2, at=AT_2, temperature_c=47.0)
    diff = heartbeat_diff(BASE, current)

    assert decode(Channel.HEALTH, encode(diff)) == diff


# --- SystemHealth -----------------------------------------------------------------------------


def test_system_health_is_a_health_source() -> None:
    source: HealthSource = SystemHealth()

    assert isinstance(source.read(), Heartbeat)


def test_system_health_reads_plausible_values() -> None:
    reading = SystemHealth().read()

    assert reading.full is True
    assert reading.uptime_s is not None
    assert reading.uptime_s > 0
    for percent in (reading.cpu_percent, reading.memory_percent, reading.disk_percent):
        assert percent is not None
        assert 0.0 <= percent <= 100.0
    assert reading.memory_percent is not None
    assert reading.memory_percent > 0.0
    assert reading.temperature_c is None or -40.0 < reading.temperature_c < 150.0
    assert reading.agent_version == __version__
    assert reading.agent_version
    assert reading.outbox_backlog == 0
    assert reading.network == Network(type=network_type(psutil.net_if_stats()))
    assert reading.peripherals == ()


def test_system_health_reports_the_peripherals_its_source_gives() -> None:
    reading = SystemHealth(peripherals=lambda: (PRINTER_LOW, READER_OK)).read()

    assert reading.peripherals == (PRINTER_LOW, READER_OK)


def test_system_health_round_trips_on_the_health_channel_once_sequenced() -> None:
    # The runner stamps seq and at on every reading before sending it, as done here.
    reading = msgspec.structs.replace(
        SystemHealth(peripherals=lambda: (PRINTER_OK,)).read(), seq=1, at=datetime.now(UTC)
    )

    decoded = decode(Channel.HEALTH, encode(reading))

    assert decoded == reading
    assert isinstance(decoded, Heartbeat)
    assert decoded.full is True


def test_an_unsequenced_reading_is_not_a_valid_message() -> None:
    with pytest.raises(PayloadError, match=r"missing required field `seq`"):
        decode(Channel.HEALTH, encode(SystemHealth().read()))


class _If:
    def __init__(self, *, up: bool) -> None:
        self.isup = up


@pytest.mark.parametrize(
    ("interfaces", "expected"),
    [
        ({"lo": _If(up=True), "eth0": _If(up=True)}, NetworkType.ETHERNET),
        ({"lo": _If(up=True), "enp3s0": _If(up=False), "wlp2s0": _If(up=True)}, NetworkType.WIFI),
        ({"wwan0": _If(up=True), "wlan0": _If(up=False)}, NetworkType.CELLULAR_4G),
        ({"eth0": _If(up=True), "wwan0": _If(up=True)}, NetworkType.ETHERNET),
        ({"lo": _If(up=True)}, NetworkType.UNKNOWN),
        ({}, NetworkType.UNKNOWN),
    ],
)
def test_network_type_from_interface_names(
    interfaces: dict[str, _If], expected: NetworkType
) -> None:
    assert network_type(interfaces) is expected
