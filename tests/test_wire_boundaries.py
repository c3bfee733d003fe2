"""The house rules that keep the wire contract in one place, checked on the source tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from paho.mqtt.client import topic_matches_sub

from edge.protocol import topics as wire
from edge.protocol.topics import CHANNELS_BY_DIRECTION, Direction

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "control_plane", "firmware_bridge", "monitoring", "provisioning")
IO_LIBRARIES = {
    "paho",
    "aiomqtt",
    "aiohttp",
    "tortoise",
    "usb",
    "grafana_client",
    "asyncpg",
    "psutil",
}


def python_files() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_topic_strings_outside_the_protocol_package() -> None:
    pattern = re.compile(r"""["'](termfleet|fleet)/v\d+/""")
    offenders = [
        str(p.relative_to(ROOT))
        for p in python_files()
        if "protocol" not in p.relative_to(ROOT).parts and pattern.search(p.read_text())
    ]
    assert offenders == [], f"topic strings formatted outside edge/protocol: {offenders}"


PURE_PACKAGES = (
    "edge/protocol",
    "edge/catalog",
    "firmware_bridge/codecs",
    "control_plane/rollouts",
    "control_plane/twin",
)
"""Codecs, planners and value types (STYLE.md 2): no IO library, so they test without any."""


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_import_no_io_library(package: str) -> None:
    paths = list((ROOT / package).rglob("*.py"))
    assert paths
    for path in paths:
        assert not imported_roots(path) & IO_LIBRARIES, f"{path} imports an IO library"


def test_only_the_adapter_knows_the_mqtt_client_library() -> None:
    knowers = sorted(
        str(p.relative_to(ROOT)) for p in python_files() if imported_roots(p) & {"paho", "aiomqtt"}
    )
    assert knowers == ["edge/mqtt.py"]


def _unshared(topic_filter: str) -> str:
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter


@pytest.mark.parametrize("channel", sorted(CHANNELS_BY_DIRECTION[Direction.UP]))
def test_ingest_subscribes_every_uplink_channel_exactly_once(channel: wire.Channel) -> None:
    topic = wire.uplink("kiosk-440117000-01", channel)
    filters = wire.ingest_filters()
    matching = [f for f in filters if topic_matches_sub(_unshared(f), topic)]
    assert len(matching) == 1, matching
    # State and health must reach every replica (MQTT 5 sends no retained messages to a new
    # shared subscription, and each replica keeps the whole fleet); records are split.
    expect_shared = channel not in wire.EVERY_REPLICA_CHANNELS
    if channel is wire.Channel.HEALTH:
        assert not expect_shared, "every replica needs every heartbeat"
    assert matching[0].startswith(f"$share/{wire.INGEST_SHARE_GROUP}/") is expect_shared


def test_ingest_filters_unshared_for_a_single_replica() -> None:
    filters = wire.ingest_filters(shared_group=None)
    assert not any(f.startswith("$share/") for f in filters)
    assert len(filters) == len(CHANNELS_BY_DIRECTION[Direction.UP])


@pytest.mark.parametrize("channel", sorted(CHANNELS_BY_DIRECTION[Direction.DOWN]))
def test_agent_subscription_covers_every_downlink_channel_of_its_own_only(
    channel: wire.Channel,
) -> None:
    mine = wire.device_downlink_filter("kiosk-440117000-01")
    assert topic_matches_sub(mine, wire.downlink("kiosk-440117000-01", channel))
    assert not topic_matches_sub(mine, wire.downlink("kiosk-440117000-02", channel))
    assert not topic_matches_sub(mine, wire.uplink("kiosk-440117000-01", wire.Channel.PRESENCE))
