"""A small district with review pads at windows, for the tests of cases, notices and defaults.

    44 → 4401 → 440117 district ─┬ hall-d (district hall): W01 one pad, W02 none, W03 two pads,
                                 │   W04 a retired pad, W05 a pad and a retired one, a kiosk
                                 ├ 440117001 town A: town-a W01 one pad
                                 └ 440117002 town B: town-b W01 one pad
    plus a review pad placed nowhere, and one at hall-d but at no window.

Device ids start with ``prefix``, so that tests sharing a broker never meet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from control_plane.db.models import Device
from control_plane.db.review_models import ReviewPolicy
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from edge import mqtt
from edge.protocol import CaseNotice, Channel, decode
from edge.protocol import topics as wire

DISTRICT, TOWN_A, TOWN_B = "440117", "440117001", "440117002"
NODES = (
    ("44", "province", None),
    ("4401", "city", "44"),
    (DISTRICT, "district", "4401"),
    (TOWN_A, "town", DISTRICT),
    (TOWN_B, "town", DISTRICT),
)
LEVELS = {code: level for code, level, _ in NODES}
SITES = {"hall-d": DISTRICT, "town-a": TOWN_A, "town-b": TOWN_B}
WINDOWS = (
    ("hall-d", "W01"),
    ("hall-d", "W02"),
    ("hall-d", "W03"),
    ("hall-d", "W04"),
    ("hall-d", "W05"),
    ("town-a", "W01"),
    ("town-b", "W01"),
)


@dataclass(frozen=True)
class World:
    prefix: str

    def id(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def pad_d1(self) -> str:
        """The one pad at hall-d W01."""
        return self.id("pad-d1")

    @property
    def pad_a1(self) -> str:
        """The one pad at town-a W01."""
        return self.id("pad-a1")

    @property
    def pad_b1(self) -> str:
        return self.id("pad-b1")

    @property
    def pad_d5(self) -> str:
        """The pad in service at hall-d W05, beside a retired one."""
        return self.id("pad-d5")


# Each device: its name, kind, site, window, and whether it is retired.
DEVICES = (
    ("pad-d1", "review_pad", "hall-d", "W01", False),
    ("pad-d3a", "review_pad", "hall-d", "W03", False),
    ("pad-d3b", "review_pad", "hall-d", "W03", False),
    ("pad-d4", "review_pad", "hall-d", "W04", True),
    ("pad-d5", "review_pad", "hall-d", "W05", False),
    ("pad-d5old", "review_pad", "hall-d", "W05", True),
    ("kiosk-d", "kiosk", "hall-d", "W01", False),
    ("pad-a1", "review_pad", "town-a", "W01", False),
    ("pad-b1", "review_pad", "town-b", "W01", False),
    ("pad-nowindow", "review_pad", "hall-d", None, False),
    ("pad-loose", "review_pad", None, None, False),
)


def document(prefix: str = "") -> str:
    return json.dumps(
        {
            "jurisdiction": [
                {"code": code, "name": f"n{code}", "level": level, "parent": parent}
                for code, level, parent in NODES
            ],
            "departments": [{"code": "gongan", "name": "公安"}],
            "sites": [
                {"code": code, "name": f"site {code}", "level": LEVELS[node], "node": node,
                 "hours": "24/7"}
                for code, node in SITES.items()
            ],
            "windows": [
                {"site": site, "number": number, "departments": ["gongan"]}
                for site, number in WINDOWS
            ],
            "devices": [
                {"device_id": f"{prefix}{name}", "kind": kind, "site": site, "window": window}
                for name, kind, site, window, _ in DEVICES
            ],
        }
    )  # fmt: skip


async def load_world(prefix: str = "") -> World:
    """The district above in the open database; the retired pads retired."""
    await import_inventory(read_json(document(prefix), "cases.json"))
    retired = [f"{prefix}{name}" for name, *_, is_retired in DEVICES if is_retired]
    await Device.filter(device_id__in=retired).update(lifecycle="retired")
    return World(prefix)


async def set_policy(node: str, rate_within_days: int) -> None:
    """A review policy on ``node``: cases at sites below it are rated within that many days."""
    await ReviewPolicy.create(
        node_code=node,
        deadline_working_days=5,
        rate_within_days=rate_within_days,
        updated_at=datetime.now(UTC),
        updated_by="local:test",
    )


class RecordingConnection:
    """A broker connection that keeps what it is handed; ``broken`` refuses, as a lost one does.

    ``unacknowledged`` is what a test says the broker has not acknowledged yet.
    """

    def __init__(self) -> None:
        self.sent: list[mqtt.Outgoing] = []
        self.broken_after: int | None = None
        self.unacknowledged = 0

    def publish_nowait(self, message: mqtt.Outgoing) -> None:
        if self.broken_after is not None and len(self.sent) >= self.broken_after:
            msg = "the connection is lost"
            raise mqtt.MqttError(msg)
        self.sent.append(message)

    def notices(self) -> list[tuple[str, CaseNotice]]:
        """Each message as its pad's device id and the notice it carries."""
        decoded = []
        for message in self.sent:
            topic = wire.parse(message.topic)
            assert (topic.channel, message.qos, message.retain) == (Channel.CASE, 1, False)
            notice = decode(Channel.CASE, message.payload)
            assert isinstance(notice, CaseNotice)
            decoded.append((topic.subject, notice))
        return decoded

    def case_numbers(self) -> list[str]:
        return [notice.case_number for _, notice in self.notices()]


class Downlink:
    """The ingest as the notices see it: the connection it has now, or None."""

    def __init__(self, connection: RecordingConnection | None = None) -> None:
        self.downlink = connection
