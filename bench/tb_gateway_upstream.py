"""The far side of the broker for ``bench/tb_gateway.py``: ThingsBoard's part, a sensor, counters.

One MQTT client (``edge.mqtt``) in the bench process, its CPU charged to neither subject, that

- answers the gateway's one request a ThingsBoard server must answer: ``getSessionLimits``, the
  RPC after connecting. Unanswered, the gateway keeps every reading in its storage and never
  sends one (``TBClient.is_connected`` waits for the rate limits). The answer is a server with
  no rate limits, 100 messages in flight and 64 KiB payloads;
- publishes one sensor reading every few seconds to the topic the gateway's MQTT connector
  reads, the gateway's side of the agent's heartbeat;
- counts the distinct records that arrive upstream: the gateway's on ``v1/gateway/telemetry``,
  the agent's on its usage topic (a record or an array of them), by their ``seq``; and the
  agent's heartbeats, to see both kept up their telemetry while idle.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time

from edge import mqtt
from edge.protocol import Channel
from edge.protocol import topics as wire

READINGS_TOPIC = "bench/sensor/readings"
"""Where the sensor publishes and the gateway's MQTT connector subscribes."""
SENSOR_DEVICE = "bench-sensor"
"""The device name the connector gives the readings (constant, from its config)."""
RPC_REQUESTS = "v1/devices/me/rpc/request/+"
RPC_RESPONSE = "v1/devices/me/rpc/response/"
GATEWAY_TELEMETRY = "v1/gateway/telemetry"
SESSION_LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": {},
    "gatewayRateLimits": {},
}
BURST_SEQ_FROM = 1_000_000
"""Burst readings are numbered from here, apart from the periodic ones."""
CONNECT_WAIT_S = 10.0
TS_BASE_MS = 1_790_000_000_000
"""Each burst reading carries its own timestamp (ms): readings without one are stamped on
arrival, and those arriving in the same millisecond are merged into one by the gateway."""


def reading(seq: int, ts_ms: int) -> bytes:
    """A sensor reading as the connector's converter expects it, the agent's print job's peer."""
    return json.dumps({"ts": ts_ms, "seq": seq, "pages": 1, "printer": "printer0"}).encode()


class Upstream:
    """Connected until ``close``; counts what arrives, answers the gateway, feeds its connector.

    Runs its own event loop in a thread (``edge.mqtt`` is asyncio), so that the benchmark can
    sleep and poll while it works; the counters are read under a lock.
    """

    def __init__(self, host: str, port: int, agent_device: str, interval_s: float) -> None:
        self._lock = threading.Lock()
        self._gateway_seqs: set[int] = set()
        self._agent_seqs: set[int] = set()
        self._agent_heartbeats = 0
        self._messages = {"agent": 0, "gateway": 0}
        """Record messages (usage, gateway telemetry) that arrived, to see how each packs them."""
        self.session_limits_answered = threading.Event()
        self._agent_topic = wire.uplink(agent_device, Channel.USAGE)
        self._agent_health = wire.uplink(agent_device, Channel.HEALTH)
        self._interval_s = interval_s
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._connected = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete,
            args=(self._serve(mqtt.BrokerAddress(host, port)),),
            name="upstream",
            daemon=True,
        )
        self._thread.start()
        if not self._connected.wait(CONNECT_WAIT_S):
            self.close()
            msg = f"the upstream client did not connect to {host}:{port}: {self._failed}"
            raise RuntimeError(msg)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(CONNECT_WAIT_S)
        self._loop.close()

    def gateway_readings(self) -> int:
        """Periodic readings that reached upstream so far."""
        with self._lock:
            return sum(1 for seq in self._gateway_seqs if seq < BURST_SEQ_FROM)

    def gateway_records(self, first_seq: int) -> int:
        """Burst readings numbered from ``first_seq`` on that reached upstream so far."""
        with self._lock:
            return sum(1 for seq in self._gateway_seqs if seq >= first_seq)

    def agent_records(self) -> int:
        with self._lock:
            return len(self._agent_seqs)

    def messages(self, name: str) -> int:
        """Messages with records from ``agent`` or ``gateway`` so far."""
        with self._lock:
            return self._messages[name]

    def agent_heartbeats(self) -> int:
        with self._lock:
            return self._agent_heartbeats

    async def _serve(self, broker: mqtt.BrokerAddress) -> None:
        options = mqtt.SessionOptions(client_id="bench-upstream", max_inflight=1000)
        try:
            async with mqtt.connect(broker, options) as conn:
                await conn.subscribe(
                    RPC_REQUESTS, GATEWAY_TELEMETRY, self._agent_topic, self._agent_health
                )
                self._connected.set()
                tasks = [
                    asyncio.create_task(self._periodic_readings(conn)),
                    asyncio.create_task(self._receive(conn)),
                ]
                await self._stop.wait()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        except mqtt.MqttError as exc:
            self._failed = exc

    async def _periodic_readings(self, conn: mqtt.Connection) -> None:
        for seq in itertools.count():
            await asyncio.sleep(self._interval_s)
            payload = reading(seq, int(time.time() * 1000))
            await conn.publish(mqtt.Outgoing(READINGS_TOPIC, payload))

    async def _receive(self, conn: mqtt.Connection) -> None:
        async for arrived in conn.arrivals():
            for message in arrived:
                self._take(conn, message)

    def _take(self, conn: mqtt.Connection, message: mqtt.Incoming) -> None:
        body = json.loads(message.payload)
        if message.topic == GATEWAY_TELEMETRY:
            entries = body.get(SENSOR_DEVICE, [])
            seqs = {e["values"]["seq"] for e in entries if "seq" in e.get("values", {})}
            with self._lock:
                self._gateway_seqs |= seqs
                self._messages["gateway"] += 1
        elif message.topic == self._agent_topic:
            records = body if isinstance(body, list) else [body]
            with self._lock:
                self._agent_seqs |= {r["seq"] for r in records}
                self._messages["agent"] += 1
        elif message.topic == self._agent_health:
            with self._lock:
                self._agent_heartbeats += 1
        elif body.get("method") == "getSessionLimits":
            request_id = message.topic.rsplit("/", 1)[1]
            answer = json.dumps(SESSION_LIMITS).encode()
            conn.publish_nowait(mqtt.Outgoing(RPC_RESPONSE + request_id, answer))
            self.session_limits_answered.set()
