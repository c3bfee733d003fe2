"""The one adapter that knows the MQTT client library.

aiomqtt drives paho-mqtt from the asyncio event loop (socket callbacks, no network thread), so
the rest of termfleet sees plain coroutines and async iterators of ``Incoming`` messages and
never imports paho or aiomqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS, MQTTMessage, error_string
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 10.0
OPERATION_TIMEOUT_S = 10.0
"""How long a publish, subscribe or unsubscribe may wait for the broker's acknowledgement."""


class MqttError(ConnectionError):
    """The broker refused us, or the connection broke."""


class TlsFilesError(MqttError, ValueError):
    """A CA, certificate or key file that cannot be used: unreadable, not PEM, or a mismatch.

    A ValueError too, so that a start-up check reports it as bad config; an MqttError, so that
    a file spoilt while the agent runs (a renewal half done) makes it retry, not die.
    """


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where and how to reach the broker. ``mqtt://`` is plain TCP, ``mqtts://`` is TLS."""

    host: str
    port: int = DEFAULT_PORT
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    """A client certificate (PEM) to present, for a broker that requires one; with key_file."""
    key_file: str | None = None
    """The client certificate's private key (PEM, no passphrase)."""

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            msg = "a client certificate needs both its certificate file and its key file"
            raise ValueError(msg)
        if self.cert_file is not None and not self.tls:
            msg = f"a client certificate needs TLS (mqtts://), not {self}"
            raise ValueError(msg)

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            msg = f"broker URL {url!r} must look like mqtt://host:port or mqtts://host:port"
            raise ValueError(msg)
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def with_credentials(self, username: str | None, password: str | None) -> BrokerAddress:
        """The same broker, CA and client certificate with another username and password."""
        return replace(self, username=username, password=password)

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    expiry_s: int = 0
    """MQTT 5 message expiry: the broker drops it undelivered after this long (0: never)."""

    def properties(self) -> Properties | None:
        if not self.expiry_s:
            return None
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.MessageExpiryInterval = self.expiry_s
        return properties


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes | bytearray
    retain: bool
    qos: int = 0
    mid: int = 0
    """Packet id; with ``SessionOptions.manual_ack`` pass the message to ``Connection.ack``."""


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """MQTT 5 session behaviour.

    A persistent session keeps subscriptions and queued QoS 1 messages at the broker while the
    client is away, for up to ``expiry_s``.
    """

    client_id: str
    clean_start: bool = True
    expiry_s: int = 0
    keepalive_s: int = KEEPALIVE_S
    """A dead link (a hung broker, a black-holed route) is noticed within about this long.

    paho sends PINGREQ only after a keepalive of silence and gives up only after another
    keepalive without PINGRESP, i.e. after twice the value it is given; so it is given half of
    this. The broker, seeing the halved value, sends the last will after 0.75 x this.
    """
    will: Outgoing | None = None
    max_inflight: int = 100
    manual_ack: bool = False
    """Acknowledge QoS 1 messages only when ``Connection.ack`` is called, e.g. after a database
    commit, so that a crash before it makes the broker deliver them again."""


class Connection:
    """An open MQTT 5 connection."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client
        # Incoming messages bypass aiomqtt's queue: its iterator costs a task and an
        # asyncio.wait per message, which at ingest rates is more than decoding and storing
        # the message. paho runs its callbacks on the event loop (aiomqtt drives its socket),
        # so the deque needs no lock.
        self._inbox: deque[Incoming] = deque()
        self._arrived = asyncio.Event()
        client._client.on_message = self._on_message  # noqa: SLF001
        client._disconnected.add_done_callback(lambda _: self._arrived.set())  # noqa: SLF001

    def _on_message(self, _client: object, _userdata: Any, message: MQTTMessage) -> None:  # noqa: ANN401
        self._inbox.append(
            Incoming(message.topic, message.payload, message.retain, message.qos, message.mid)
        )
        self._arrived.set()

    def ack(self, message: Incoming) -> None:
        """Send the PUBACK of a message received with manual acknowledgement."""
        if message.qos > 0:
            # aiomqtt exposes no manual acks; its paho client does (paho >= 2.0).
            self._client._client.ack(message.mid, message.qos)  # noqa: SLF001

    async def publish(self, message: Outgoing) -> None:
        """Publish; for QoS 1 this returns once the broker has acknowledged (PUBACK)."""
        try:
            await self._client.publish(
                message.topic,
                message.payload,
                qos=message.qos,
                retain=message.retain,
                properties=message.properties(),
                timeout=OPERATION_TIMEOUT_S,
            )
        except aiomqtt.MqttError as exc:
            raise MqttError(str(exc)) from exc

    def publish_nowait(self, message: Outgoing) -> None:
        """Hand a message to the client and return at once, without waiting for any PUBACK.

        For messages the protocol can afford to lose (an ``Ack``: the agent resends what is not
        acknowledged), where waiting would only hold up the sender. Raises MqttError when the
        client cannot take it (not connected).
        """
        info = self._client._client.publish(  # noqa: SLF001 - aiomqtt always waits
            message.topic, message.payload, message.qos, message.retain
        )
        if info.rc != MQTT_ERR_SUCCESS:
            msg = f"could not publish on {message.topic!r}: {error_string(info.rc)}"
            raise MqttError(msg)

    async def subscribe(self, *filters: str, qos: int = 1) -> None:
        try:
            await self._client.subscribe([(f, qos) for f in filters], timeout=OPERATION_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            raise MqttError(str(exc)) from exc

    async def unsubscribe(self, *filters: str) -> None:
        try:
            await self._client.unsubscribe(list(filters), timeout=OPERATION_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            raise MqttError(str(exc)) from exc

    async def arrivals(self) -> AsyncIterator[list[Incoming]]:
        """Every message that arrived since the last step, in order, until the connection breaks.

        A consumer handling many messages per wake-up pays the event loop's costs once per
        step instead of once per message. Raises MqttError when the connection is lost.
        """
        disconnected = self._client._disconnected  # noqa: SLF001
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if disconnected.done():
                cause = None if disconnected.cancelled() else disconnected.exception()
                msg = "Disconnected during message iteration"
                raise MqttError(msg) from cause
            if self._inbox:
                arrived = list(self._inbox)
                self._inbox.clear()
                yield arrived

    async def messages(self) -> AsyncIterator[Incoming]:
        """Messages one by one as they arrive, until the connection breaks (then MqttError)."""
        async for arrived in self.arrivals():
            for message in arrived:
                yield message


def tls_context(address: BrokerAddress) -> ssl.SSLContext | None:
    """The TLS settings to reach ``address`` with, None for plain TCP; raises TlsFilesError."""
    if not address.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=address.ca_file)
    except OSError as exc:
        msg = f"cannot use the CA file {address.ca_file}: {_why(exc)}"
        raise TlsFilesError(msg) from exc
    if address.cert_file is not None and address.key_file is not None:
        _load_client_certificate(context, address.cert_file, address.key_file)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    def no_passphrase() -> str:
        # Without a password callback OpenSSL would prompt on the terminal for an encrypted key.
        msg = f"the key {key_file} is encrypted; give one without a passphrase"
        raise TlsFilesError(msg)

    try:
        context.load_cert_chain(cert_file, key_file, password=no_passphrase)
    except TlsFilesError:
        raise
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            msg = f"the key {key_file} does not match the certificate {cert_file}"
        else:
            # OpenSSL names no file here; "PEM lib" means one of them is no PEM it can parse.
            msg = f"cannot load the client certificate {cert_file} and its key {key_file}"
            msg += f" (are both PEM?): {exc}"
        raise TlsFilesError(msg) from exc
    except OSError as exc:
        msg = f"cannot read the client certificate {cert_file} or its key {key_file}: {_why(exc)}"
        raise TlsFilesError(msg) from exc


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


@contextlib.asynccontextmanager
async def connect(address: BrokerAddress, options: SessionOptions) -> AsyncIterator[Connection]:
    """Open an MQTT 5 connection; leaving the block disconnects cleanly (no last will)."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if options.expiry_s:
        properties.SessionExpiryInterval = options.expiry_s
    will = options.will
    client = aiomqtt.Client(
        address.host,
        address.port,
        username=address.username,
        password=address.password,
        identifier=options.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=options.clean_start,
        keepalive=max(1, options.keepalive_s // 2),
        # paho drops a connection attempt that gets no CONNACK within a keepalive, but aiomqtt
        # ignores disconnects before the CONNACK and waits out its own timeout; keep that short.
        timeout=min(CONNECT_TIMEOUT_S, options.keepalive_s),
        properties=properties,
        max_inflight_messages=options.max_inflight,
        tls_context=tls_context(address),
        # Small QoS 1 packets and their PUBACKs go both ways; without NODELAY, Nagle's algorithm
        # meets delayed ACKs and every round trip waits ~40 ms.
        socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        will=aiomqtt.Will(will.topic, will.payload, will.qos, will.retain) if will else None,
    )
    if options.manual_ack:
        client._client.manual_ack_set(on=True)  # noqa: SLF001 - see Connection.ack
    # Made before connecting: a persistent session's queued messages follow the CONNACK at once.
    connection = Connection(client)
    try:
        async with client:
            yield connection
    except aiomqtt.MqttError as exc:
        msg = f"{address}: {exc}"
        raise MqttError(msg) from exc
