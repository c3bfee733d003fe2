"""What ``bench/connections.py`` observes: presence at the core broker and in the control plane.

Two observers of the same sample of terminals (registered as booths, so the device list can ask
for them alone):

- ``CoreWatch`` subscribes at the core broker to each sampled terminal's presence topic and notes
  when each new (not retained-replayed) presence message arrives: a last will published by an edge
  broker and carried over its bridge, or the online presence of a reconnected terminal.
- ``poll_devices`` asks the control plane's device list (``GET /api/v1/devices?kind=booth``)
  every ``POLL_S`` and notes when each sampled terminal first shows the presence awaited: what
  an operator, or anything built on the API, would see. Its resolution is the poll period plus
  one request.

``fleet_presence`` reads the control plane's ``termfleet_devices`` gauge from ``/metrics``: how
many terminals it counts online, offline and so on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection

import aiohttp

from control_plane import uplink
from edge import mqtt
from edge.protocol import Channel, DeviceKind, Presence, PresenceState, ProtocolError, decode
from edge.protocol import topics as wire

POLL_S = 0.25
"""Each poll lists every sampled terminal with its health: a few hundred items, not free."""
SAMPLE_KIND = DeviceKind.BOOTH
API_PAGE = 500


class CoreWatch:
    """Arrival times at the core broker of the sampled terminals' live presence messages."""

    def __init__(self, address: mqtt.BrokerAddress, devices: Collection[str]) -> None:
        self._address = address
        self._devices = list(devices)
        self.arrived: dict[tuple[str, PresenceState], float] = {}
        """(device, state) → the first arrival of that state since ``clear``."""
        self._ready = asyncio.Event()

    def clear(self) -> None:
        self.arrived.clear()

    async def ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        options = mqtt.SessionOptions(client_id="termfleet-bench-core-watch", max_inflight=1000)
        async with uplink.connect(self._address, options) as conn:
            filters = [wire.uplink(d, Channel.PRESENCE) for d in self._devices]
            for start in range(0, len(filters), 100):
                await conn.subscribe(*filters[start : start + 100], qos=0)
            self._ready.set()
            async for messages in conn.arrivals():
                now = time.time()
                for message in messages:
                    if message.retain or not message.payload:
                        continue  # the stored state replayed at subscribe time, not an event
                    try:
                        presence = decode(Channel.PRESENCE, message.payload)
                    except ProtocolError:
                        continue
                    if isinstance(presence, Presence):
                        device = wire.parse(message.topic).subject
                        self.arrived.setdefault((device, presence.state), now)


async def poll_devices(
    session: aiohttp.ClientSession,
    api: str,
    token: str,
    awaited: dict[str, tuple[PresenceState, int, str]],
    timeout_s: float,
) -> tuple[dict[str, float], list[float]]:
    """When each device first shows (presence, session ≥ given, reason) in the device list.

    The reason tells a will (``will``) from a device the control plane calls silent because it
    has not heard from it for the heartbeat timeout (``silent``).

    Returns the times and the seconds each poll took.
    """
    seen: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{api}/api/v1/devices"
    params = {"kind": SAMPLE_KIND.value, "limit": str(API_PAGE)}
    took: list[float] = []
    deadline = time.time() + timeout_s
    while len(seen) < len(awaited) and time.time() < deadline:
        started = time.time()
        items = []
        cursor = None
        while True:
            page_params = {**params, "cursor": cursor} if cursor else params
            async with session.get(url, params=page_params, headers=headers) as response:
                response.raise_for_status()
                body = await response.json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                break
        answered = time.time()
        took.append(answered - started)
        for item in items:
            device = item["device_id"]
            want = awaited.get(device)
            if want is None or device in seen:
                continue
            state, since, reason = want
            shown = (item["presence"], item["presence_reason"])
            if shown == (state.value, reason) and item["session"] >= since:
                seen[device] = answered
        await asyncio.sleep(max(0.0, started + POLL_S - time.time()))
    return seen, took


async def fleet_presence(session: aiohttp.ClientSession, api: str) -> Counter[str]:
    """Terminals by presence (online, offline_unexpected...), summed from ``termfleet_devices``."""
    async with session.get(f"{api}/metrics") as response:
        response.raise_for_status()
        text = await response.text()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("termfleet_devices{"):
            presence = line.split('presence="', 1)[1].split('"', 1)[0]
            counts[presence] += int(float(line.rsplit(" ", 1)[1]))
    return counts


async def ingest_messages(session: aiohttp.ClientSession, api: str, channel: Channel) -> int:
    """``termfleet_ingest_messages_total`` for one channel."""
    async with session.get(f"{api}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("termfleet_ingest_messages_total{") and f'"{channel.value}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0
