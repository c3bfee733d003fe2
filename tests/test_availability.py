"""Schedule-aware presence through the running control plane.

An offline terminal is ``offline_expected`` while its site is closed and ``offline_unexpected``
while it is open or when it is placed nowhere.
"""

from __future__ import annotations

import json
from pathlib import Path

from control_plane.db import database
from control_plane.inventory_files import read
from control_plane.inventory_store import import_inventory
from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.protocol import Channel, DeviceKind, OfflineReason, Presence, PresenceState, encode
from edge.protocol import topics as wire
from tests.support.control_plane import running_control_plane
from tests.test_ingest import metric_value


def inventory_file(tmp_path: Path, prefix: str) -> Path:
    """Two sites: one always open, one never (closed every day of the week)."""
    document = {
        "jurisdiction": [{"code": "44", "name": "广东省", "level": "province", "parent": None}],
        "sites": [
            {"code": f"{prefix}-open", "name": "24h", "level": "province", "node": "44",
             "hours": "24/7"},
            {"code": f"{prefix}-shut", "name": "shut", "level": "province", "node": "44",
             "hours": "mon closed"},
        ],
        "devices": [
            {"device_id": f"{prefix}-a", "kind": "kiosk", "site": f"{prefix}-open"},
            {"device_id": f"{prefix}-b", "kind": "kiosk", "site": f"{prefix}-shut"},
        ],
    }  # fmt: skip
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(document))
    return path


async def test_offline_is_expected_only_at_a_closed_site(
    broker: BrokerSettings, database_url: str, device_prefix: str, tmp_path: Path
) -> None:
    async with database(database_url):
        inventory = read(inventory_file(tmp_path, device_prefix))
        inventory.check()
        await import_inventory(inventory)
    address = mqtt.BrokerAddress(broker.host, broker.port)
    async with running_control_plane(broker, database_url) as cp:
        async with mqtt.connect(address, mqtt.SessionOptions(client_id=device_prefix)) as conn:
            for suffix in ("a", "b", "c"):  # c is placed nowhere
                offline = Presence(
                    state=PresenceState.OFFLINE,
                    session=1,
                    reason=OfflineReason.SHUTDOWN,
                    kind=DeviceKind.KIOSK,
                )
                topic = wire.uplink(f"{device_prefix}-{suffix}", Channel.PRESENCE)
                await conn.publish(mqtt.Outgoing(topic, encode(offline)))

        async def views() -> dict[str, dict[str, object]] | None:
            body = await cp.get_json("/api/v1/devices?presence=offline&limit=500")
            found = {
                str(d["device_id"]): d
                for d in body["items"]
                if str(d["device_id"]).startswith(device_prefix)
            }
            return found if len(found) == 3 else None

        seen = await cp.wait_for(views)
        availability = {k.removeprefix(device_prefix): v["availability"] for k, v in seen.items()}
        assert availability == {
            "-a": "offline_unexpected",
            "-b": "offline_expected",
            "-c": "offline_unexpected",
        }
        assert seen[f"{device_prefix}-b"]["site"] == f"{device_prefix}-shut"
        expected = await cp.get_json("/api/v1/devices?presence=offline_expected&limit=500")
        ids = [d["device_id"] for d in expected["items"]]
        assert [i for i in ids if i.startswith(device_prefix)] == [f"{device_prefix}-b"]
        text = await cp.metrics()
        closed = metric_value(text, "termfleet_devices", kind="kiosk", presence="offline_expected")
        assert closed == 1
