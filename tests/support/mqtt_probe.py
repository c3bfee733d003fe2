"""An MQTT 5 client for tests that ask the broker what it allows, one operation at a time.

MQTT 5 and not 3.1.1: a 3.1.1 broker acknowledges a refused QoS 1 publish as a success, so
only MQTT 5 reason codes can count refusals.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

WAIT_S = 5.0
FIRST_FAILURE = 0x80
NOT_AUTHORIZED = 0x87
NO_MATCHING_SUBSCRIBERS = 0x10
"""A PUBACK for an allowed publish that nobody subscribed to: a success."""


class ProbeError(AssertionError):
    pass


@dataclass
class Probe:
    port: int
    username: str | None
    password: str | None
    client_id: str
    clean_start: bool = True
    session_expiry_s: int = 0
    messages: queue.Queue[paho.MQTTMessage] = field(default_factory=queue.Queue)
    disconnected: threading.Event = field(default_factory=threading.Event)
    disconnect_reason: int | None = None

    def __post_init__(self) -> None:
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, self.client_id, protocol=paho.MQTTv5
        )
        if self.username is not None:
            self._client.username_pw_set(self.username, self.password)
        self._connack: queue.Queue[int] = queue.Queue()
        self._acks: dict[int, queue.Queue[list[int]]] = {}
        self._lock = threading.Lock()
        client = self._client
        client.on_connect = lambda _c, _u, _f, rc, _p: self._connack.put(rc.value)
        client.on_subscribe = lambda _c, _u, mid, rcs, _p: self._ack(mid, [r.value for r in rcs])
        client.on_publish = lambda _c, _u, mid, rc, _p: self._ack(mid, [rc.value])
        client.on_message = lambda _c, _u, message: self.messages.put(message)
        client.on_disconnect = self._on_disconnect

    def _on_disconnect(
        self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self.disconnect_reason = rc.value
        self.disconnected.set()

    def _queue(self, mid: int) -> queue.Queue[list[int]]:
        with self._lock:
            return self._acks.setdefault(mid, queue.Queue())

    def _ack(self, mid: int, codes: list[int]) -> None:
        self._queue(mid).put(codes)

    def connect(self) -> int:
        """The CONNACK reason code (0 is success); the network loop runs until ``close``."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if self.session_expiry_s:
            properties.SessionExpiryInterval = self.session_expiry_s
        self._client.connect(
            "127.0.0.1", self.port, clean_start=self.clean_start, properties=properties
        )
        self._client.loop_start()
        try:
            return self._connack.get(timeout=WAIT_S)
        except queue.Empty:
            raise ProbeError("no CONNACK") from None

    def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        """The SUBACK reason code: the granted QoS, or >= 0x80 when refused."""
        _, mid = self._client.subscribe(topic_filter, qos)
        if mid is None:
            raise ProbeError("not connected")
        return self._wait(mid)

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> int:
        """The PUBACK reason code of a QoS 1 publish."""
        mid = self._client.publish(topic, payload, qos=1, retain=retain).mid
        return self._wait(mid)

    def _wait(self, mid: int) -> int:
        try:
            [code] = self._queue(mid).get(timeout=WAIT_S)[:1]
        except queue.Empty:
            raise ProbeError(f"no acknowledgement for packet {mid}") from None
        return code

    def received(self, timeout: float = 0.5) -> list[paho.MQTTMessage]:
        """What arrived within ``timeout``."""
        got = []
        try:
            while True:
                got.append(self.messages.get(timeout=timeout))
        except queue.Empty:
            return got

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def allowed(code: int) -> bool:
    """Reason codes below 0x80 are successes, NO_MATCHING_SUBSCRIBERS included."""
    return code < FIRST_FAILURE
