"""docs/protocol.md's examples, replayed against a real broker.

Every ``mosquitto_pub`` and ``mosquitto_sub`` example in the document is run against the session's
Mosquitto, with the device ids made unique to the test; what arrives must decode with
``edge.protocol.decode_message``. ``test_protocol_doc_drift.py`` checks the rest of the document
against the code.
"""

from __future__ import annotations

import queue
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import NoReturn

import pytest

from control_plane.services.broker import BrokerSettings
from edge.protocol import SPECS, Channel, OfflineReason, Presence, PresenceState
from edge.protocol import topics as wire
from tests.support.protocol_doc import PUBS, SUBS, Example, decode_or_fail, example_id

TIMEOUT_S = 10


# Pointing the examples at the test's broker, under ids of the test's own.


def _rewrite_topic(topic: str, prefix: str) -> str:
    """Prefix the id level (and a share group) so that nothing meets another test's messages."""
    share = ""
    if topic.startswith("$share/"):
        _, group, topic = topic.split("/", 2)
        share = f"$share/{prefix}-{group}/"
    levels = topic.split("/")
    if len(levels) > 3 and levels[3] not in ("+", "#"):  # termfleet/v1/<dir>/<id>/…
        levels[3] = f"{prefix}-{levels[3]}"
    return share + "/".join(levels)


def _rewrite(example: Example, broker: BrokerSettings, prefix: str) -> list[str]:
    argv = [example.tool]
    for option, value in example.options():
        new = value
        if option == "-h":
            new = broker.host
        elif option == "-p":
            new = str(broker.port)
        elif option in ("-t", "--will-topic") and value is not None:
            new = _rewrite_topic(value, prefix)
        elif option == "-i":
            new = f"{prefix}-{value}"
        argv += [option] if new is None else [option, new]
    return argv


def _option(argv: list[str], option: str) -> str:
    return argv[len(argv) - 1 - argv[::-1].index(option) + 1]


def _covers(topic_filter: str, topic: str) -> bool:
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    want, have = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or level not in ("+", have[i]):
            return False
    return len(want) == len(have)


# Talking to the broker with the real clients.


class Subscriber:
    """A running mosquitto_sub (with -d, to know when it is subscribed) read line by line."""

    def __init__(self, argv: list[str], why: object) -> None:
        self.argv = [*argv, "-d"]
        self.why = why
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._seen: list[bytes] = []
        # stdio buffers a pipe in blocks; line buffering lets the SUBACK through as it happens.
        self._proc = subprocess.Popen(
            ["stdbuf", "-oL", *self.argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, name="mosquitto_sub-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _fail(self, what: str) -> NoReturn:
        said = b"".join(self._seen).decode(errors="replace")
        pytest.fail(f"{self.why}\n  {what}\n  ran: {shlex.join(self.argv)}\n  it said:\n{said}")

    def _lines_until(self, deadline: float) -> Iterator[bytes]:
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return
            if line is None:
                return
            self._seen.append(line)
            yield line

    def wait_subscribed(self) -> None:
        for line in self._lines_until(time.monotonic() + TIMEOUT_S):
            if b"received SUBACK" in line:
                return
        self._fail("mosquitto_sub did not subscribe")

    def expect(self, topic: str) -> bytes:
        """The payload of the next message on ``topic``; other messages are passed over."""
        head = topic.encode() + b" "
        lines = self._lines_until(time.monotonic() + TIMEOUT_S)
        found = next((line for line in lines if line.startswith(head)), None)
        if found is None:
            self._fail(f"no message on {topic} within {TIMEOUT_S}s")
        return found.removeprefix(head).removesuffix(b"\n")

    def kill(self) -> None:
        """Drop the connection without a DISCONNECT, as a crash or a pulled cable would."""
        self._proc.kill()
        self._proc.wait(TIMEOUT_S)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(TIMEOUT_S)
        self._reader.join(TIMEOUT_S)


@contextmanager
def subscribed(argv: list[str], why: object) -> Iterator[Subscriber]:
    sub = Subscriber(argv, why)
    try:
        sub.wait_subscribed()
        yield sub
    finally:
        sub.close()


def _watch(broker: BrokerSettings, topic: str) -> list[str]:
    return [
        *("mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5", "-v"),
        *("-C", "1", "-W", str(TIMEOUT_S), "-t", topic),
    ]


def _run(argv: list[str], why: object) -> None:
    result = subprocess.run(argv, capture_output=True, timeout=TIMEOUT_S, check=False)
    if result.returncode != 0:
        said = (result.stdout + result.stderr).decode(errors="replace")
        pytest.fail(f"{why}\n  ran: {shlex.join(argv)}\n  exit {result.returncode}: {said}")


def _clear_retained(broker: BrokerSettings, topic: str) -> None:
    argv = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-V", "mqttv5"]
    _run([*argv, "-r", "-n", "-t", topic], f"clearing the retained message on {topic}")


# Replaying the examples.


@pytest.mark.parametrize("example", PUBS, ids=example_id)
def test_pub_example_arrives_and_decodes(
    example: Example, broker: BrokerSettings, device_prefix: str
) -> None:
    argv = _rewrite(example, broker, device_prefix)
    topic = _option(argv, "-t")
    try:
        with subscribed(_watch(broker, topic), example) as sub:
            _run(argv, example)
            payload = sub.expect(topic)
    finally:
        if example.has("-r"):
            _clear_retained(broker, topic)
    assert payload == (example.value("-m") or "").encode(), f"{example}: other bytes arrived"
    decoded = decode_or_fail(topic, payload, example)
    channel = wire.parse(topic).channel
    assert all(isinstance(d, SPECS[channel].payload) for d in decoded), example


@pytest.mark.parametrize("example", SUBS, ids=example_id)
def test_sub_example_receives_what_it_covers(
    example: Example, broker: BrokerSettings, device_prefix: str
) -> None:
    argv = _rewrite(example, broker, device_prefix)
    if not example.has("-W"):
        argv += ["-W", "30"]  # a bound on its life, should the test fail to stop it
    filters = [argv[i + 1] for i, token in enumerate(argv) if token == "-t"]
    pub_topics = [(pub, _option(_rewrite(pub, broker, device_prefix), "-t")) for pub in PUBS]
    covered = [(pub, topic) for pub, topic in pub_topics if any(_covers(f, topic) for f in filters)]
    assert covered, f"{example}: no mosquitto_pub example of the document publishes where it reads"
    pub, topic = covered[0]
    will_topic = example.value("--will-topic")
    with ExitStack() as cleanup:
        if pub.has("-r"):
            cleanup.callback(_clear_retained, broker, topic)
        if will_topic is not None:
            cleanup.callback(_clear_retained, broker, _option(argv, "--will-topic"))
        with subscribed(argv, example) as sub:
            _run(_rewrite(pub, broker, device_prefix), f"{example}\n  publishing {pub}")
            payload = sub.expect(topic)
            assert payload == (pub.value("-m") or "").encode(), f"{example}: other bytes arrived"
            decode_or_fail(topic, payload, example)
            if will_topic is not None:
                _check_last_will(example, argv, sub, broker)


def _check_last_will(
    example: Example, argv: list[str], sub: Subscriber, broker: BrokerSettings
) -> None:
    """Killing the subscriber makes the broker publish its will, a decodable offline presence."""
    will_topic = _option(argv, "--will-topic")
    with subscribed(_watch(broker, will_topic), f"{example}: its last will") as watcher:
        sub.kill()
        will = watcher.expect(will_topic)
    assert will == (example.value("--will-payload") or "").encode(), f"{example}: other will"
    [presence] = decode_or_fail(will_topic, will, example)
    assert isinstance(presence, Presence), example
    assert (presence.state, presence.reason) == (PresenceState.OFFLINE, OfflineReason.WILL), (
        f"{example}: a last will is an offline presence with reason `will`"
    )
    spec = SPECS[Channel.PRESENCE]
    assert example.value("--will-qos") == str(spec.qos), f"{example}: will QoS as channels.py"
    assert example.has("--will-retain") == spec.retain, f"{example}: will retain as channels.py"
