"""The ingest against a real broker and database.

Good messages land; bad ones are refused, counted by reason, and never stop it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.protocol import Channel, DeviceKind, Heartbeat, Presence, PresenceState, encode
from edge.protocol import topics as wire
from tests.support.control_plane import RunningControlPlane, running_control_plane


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (over the others)."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    if not values:
        raise AssertionError(f"{name}{labels} not in metrics")
    return sum(values)


async def publish(broker: BrokerSettings, *messages: tuple[str, bytes]) -> None:
    address = mqtt.BrokerAddress(broker.host, broker.port)
    async with mqtt.connect(address, mqtt.SessionOptions(client_id="test-publisher")) as conn:
        for topic, payload in messages:
            await conn.publish(mqtt.Outgoing(topic, payload, qos=1))


def presence(state: PresenceState, session: int, kind: DeviceKind = DeviceKind.KIOSK) -> bytes:
    return encode(Presence(state=state, session=session, kind=kind, at=datetime.now(UTC)))


async def find_device(cp: RunningControlPlane, device_id: str) -> dict | None:  # type: ignore[type-arg]
    items = (await cp.get_json("/api/v1/devices?limit=500"))["items"]
    return next((d for d in items if d["device_id"] == device_id), None)


BAD_MESSAGES = [
    pytest.param("{prefix}-a", Channel.PRESENCE, b"{not json", "json", id="bad-json"),
    pytest.param(
        "{prefix}-a", Channel.PRESENCE, b'{"v":1,"session":"one"}', "schema", id="wrong-type"
    ),
    pytest.param(
        "{prefix}-a",
        Channel.PRESENCE,
        b'{"v":1,"state":"online"}',
        "missing_field",
        id="missing-field",
    ),
    pytest.param("{prefix}-a", Channel.HEALTH, b'{"v":9,"seq":1}', "version", id="unknown-version"),
    pytest.param(
        "{prefix}-a", Channel.USAGE, b'{"type":"print","seq":-1}', "schema", id="negative-seq"
    ),
]


@pytest.mark.parametrize(("device", "channel", "payload", "reason"), BAD_MESSAGES)
async def test_bad_payload_is_counted_and_ingest_keeps_going(
    broker: BrokerSettings,
    database_url: str,
    device_prefix: str,
    device: str,
    channel: Channel,
    payload: bytes,
    reason: str,
) -> None:
    device_id = device.format(prefix=device_prefix)
    good_id = f"{device_prefix}-good"
    async with running_control_plane(broker, database_url) as cp:
        before = metric_value(await cp.metrics(), "termfleet_ingest_rejected_total", reason=reason)
        await publish(
            broker,
            (wire.uplink(device_id, channel), payload),
            (wire.uplink(good_id, Channel.PRESENCE), presence(PresenceState.ONLINE, 1)),
        )

        async def good_online() -> bool:
            # The listing joins the stored row with the presence the server holds in memory, and
            # the ingest stores a new device before it updates memory: for that moment the good
            # device is listed with presence "unknown".
            found = await find_device(cp, good_id)
            return bool(found and found["presence"] == "online")

        await cp.wait_for(good_online)
        after = metric_value(await cp.metrics(), "termfleet_ingest_rejected_total", reason=reason)
        assert after == before + 1
        assert await find_device(cp, device_id) is None


async def test_unparsable_topic_is_counted(
    broker: BrokerSettings, sqlite_url: str, device_prefix: str
) -> None:
    # The ingest subscribes per channel (termfleet/v1/up/+/<channel>), so a topic it receives
    # can only be wrong in its id: too long, or starting with a character ids may not start with.
    async with running_control_plane(broker, sqlite_url) as cp:
        before = metric_value(await cp.metrics(), "termfleet_ingest_rejected_total", reason="topic")
        await publish(
            broker,
            (f"termfleet/v1/up/{'x' * 80}/presence", presence(PresenceState.ONLINE, 1)),
            (f"termfleet/v1/up/-{device_prefix}/health", b'{"v":1,"seq":1}'),
        )

        async def counted() -> bool:
            now = metric_value(
                await cp.metrics(), "termfleet_ingest_rejected_total", reason="topic"
            )
            return now == before + 2

        await cp.wait_for(counted)


async def test_presence_and_health_reach_database_metrics_and_api(
    broker: BrokerSettings, database_url: str, device_prefix: str
) -> None:
    kiosk, pad = f"{device_prefix}-kiosk", f"{device_prefix}-pad"
    async with running_control_plane(broker, database_url) as cp:
        await publish(
            broker,
            (wire.uplink(kiosk, Channel.PRESENCE), presence(PresenceState.ONLINE, 5)),
            (
                wire.uplink(pad, Channel.PRESENCE),
                presence(PresenceState.ONLINE, 2, DeviceKind.REVIEW_PAD),
            ),
            (
                wire.uplink(kiosk, Channel.HEALTH),
                encode(Heartbeat(seq=1, full=True, cpu_percent=12.5)),
            ),
            # A late last will of an earlier connection must not take the kiosk offline.
            (wire.uplink(kiosk, Channel.PRESENCE), presence(PresenceState.OFFLINE, 4)),
        )

        async def health_stored() -> dict | None:  # type: ignore[type-arg]
            found = await find_device(cp, kiosk)
            return found if found and found["health"] else None

        stored = await cp.wait_for(health_stored)
        assert stored["presence"] == "online"
        assert stored["kind"] == "kiosk"
        assert stored["health"]["cpu_percent"] == 12.5
        text = await cp.metrics()
        assert metric_value(text, "termfleet_devices", kind="kiosk", presence="online") >= 1
        assert metric_value(text, "termfleet_devices", kind="review_pad", presence="online") >= 1

        await publish(
            broker, (wire.uplink(kiosk, Channel.PRESENCE), presence(PresenceState.OFFLINE, 5))
        )

        async def went_offline() -> bool:
            found = await find_device(cp, kiosk)
            return bool(found and found["presence"] == "offline")

        await cp.wait_for(went_offline)


async def test_state_survives_a_control_plane_restart(
    broker: BrokerSettings, database_url: str, device_prefix: str
) -> None:
    kiosk = f"{device_prefix}-kiosk"
    async with running_control_plane(broker, database_url) as cp:
        await publish(
            broker, (wire.uplink(kiosk, Channel.PRESENCE), presence(PresenceState.ONLINE, 3))
        )

        async def landed() -> dict | None:  # type: ignore[type-arg]
            return await find_device(cp, kiosk)

        await cp.wait_for(landed)
    async with running_control_plane(broker, database_url) as cp:
        found = await find_device(cp, kiosk)
        assert found is not None
        assert found["presence"] == "online"
        text = await cp.metrics()
        assert metric_value(text, "termfleet_devices", kind="kiosk", presence="online") >= 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be between"),
        ("limit=abc", "limit must be an integer"),
        ("kind=toaster", "kind must be one of"),
        ("presence=maybe", "presence must be one of"),
    ],
)
async def test_api_refuses_out_of_range_requests(
    broker: BrokerSettings, sqlite_url: str, query: str, message: str
) -> None:
    async with (
        running_control_plane(broker, sqlite_url) as cp,
        cp.http.get(f"{cp.url}/api/v1/devices?{query}") as resp,
    ):
        assert resp.status == 400
        body = await resp.json()
        assert body["error"]["code"] == "invalid_parameter"
        assert message in body["error"]["message"]


async def test_a_silent_online_device_is_shown_offline_until_it_is_heard_again(
    broker: BrokerSettings, sqlite_url: str, device_prefix: str
) -> None:
    kiosk = f"{device_prefix}-kiosk"
    async with running_control_plane(broker, sqlite_url, heartbeat_timeout_s=1.0) as cp:
        await publish(
            broker, (wire.uplink(kiosk, Channel.PRESENCE), presence(PresenceState.ONLINE, 3))
        )

        async def silent() -> dict | None:  # type: ignore[type-arg]
            found = await find_device(cp, kiosk)
            return found if found and found["presence_reason"] == "silent" else None

        found = await cp.wait_for(silent, timeout_s=10)
        assert found["presence"] == "offline"
        text = await cp.metrics()
        assert (
            metric_value(text, "termfleet_devices", kind="kiosk", presence="offline_unexpected")
            >= 1
        )

        await publish(
            broker, (wire.uplink(kiosk, Channel.HEALTH), encode(Heartbeat(session=3, seq=1)))
        )

        async def heard() -> bool:
            found = await find_device(cp, kiosk)
            return bool(found and found["presence"] == "online")

        await cp.wait_for(heard)
