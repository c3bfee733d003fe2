"""docs/protocol.md against the code and a real broker.

Every ``mosquitto_pub`` and ``mosquitto_sub`` example in the document is replayed against the
session's Mosquitto, with the device ids made unique to the test; what arrives must decode with
``edge.protocol.decode_message``. The document's tables must name every field of every payload,
every enum value and every channel, so the document cannot drift from the code.
"""

from __future__ import annotations

import enum
import json
import queue
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import msgspec.inspect as mi
import pytest

from control_plane.ingest import SHARE_GROUP
from control_plane.services.broker import BrokerSettings
from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    SPECS,
    Channel,
    OfflineReason,
    Presence,
    PresenceState,
    ProtocolError,
    RejectReason,
    UnknownUsage,
    decode_message,
)
from edge.protocol import topics as wire
from edge.protocol.usage import USAGE_TYPES, UsageRecord

USAGE_PAYLOADS: tuple[type[UsageRecord], ...] = (*USAGE_TYPES, UnknownUsage)

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
TIMEOUT_S = 10
DOC_BROKER = ("localhost", "1883")
"""Where the examples point; the test points them at its own broker instead."""


# Reading the examples.

_VALUED = {"-h", "-p", "-V", "-q", "-t", "-m", "-i", "-C", "-W", "-k", "-x"}
_VALUED |= {"--will-topic", "--will-payload", "--will-qos"}
_FLAGS = {"-r", "-v", "-d", "-n", "-c", "-R", "--will-retain"}


@dataclass(frozen=True)
class Example:
    """One mosquitto_pub or mosquitto_sub command of the document."""

    line: int
    argv: tuple[str, ...]

    @property
    def tool(self) -> str:
        return self.argv[0]

    def options(self) -> list[tuple[str, str | None]]:
        """(option, value or None) in order; an option this test cannot rewrite is an error."""
        result: list[tuple[str, str | None]] = []
        tokens = iter(self.argv[1:])
        for token in tokens:
            if token in _VALUED:
                value = next(tokens, None)
                if value is None:
                    pytest.fail(f"{self}: {token} without a value")
                result.append((token, value))
            elif token in _FLAGS:
                result.append((token, None))
            else:
                pytest.fail(f"{self}: option {token!r} is not one this test knows how to replay")
        return result

    def values(self, option: str) -> list[str]:
        return [v for o, v in self.options() if o == option and v is not None]

    def value(self, option: str) -> str | None:
        found = self.values(option)
        return found[-1] if found else None

    def has(self, flag: str) -> bool:
        return any(o == flag for o, _ in self.options())

    def __str__(self) -> str:
        return f"docs/protocol.md:{self.line}: {shlex.join(self.argv)}"


def _examples() -> list[Example]:
    found: list[Example] = []
    for block in re.finditer(r"^```sh\n(.*?)^```", DOC, re.MULTILINE | re.DOTALL):
        first_line = DOC.count("\n", 0, block.start(1)) + 1
        parts: list[str] = []
        start = first_line
        for offset, line in enumerate(block.group(1).splitlines()):
            if not parts:
                start = first_line + offset
            parts.append(line.removesuffix("\\"))
            if line.endswith("\\"):
                continue
            text = " ".join(parts).strip()
            parts = []
            if text and not text.startswith("#"):
                found.append(Example(start, tuple(shlex.split(text))))
    return found


EXAMPLES = _examples()
PUBS = [e for e in EXAMPLES if e.tool == "mosquitto_pub"]
SUBS = [e for e in EXAMPLES if e.tool == "mosquitto_sub"]


def _example_id(example: Example) -> str:
    if example.tool == "mosquitto_sub":
        return f"line{example.line}-sub-{'+'.join(example.values('-t'))}"
    channel = (example.value("-t") or "").rsplit("/", 1)[-1]
    if channel == Channel.USAGE.value:
        channel += "-" + str(json.loads(example.value("-m") or "{}").get("type"))
    return f"line{example.line}-pub-{channel}"


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


def _decode(topic: str, payload: bytes, why: object) -> Any:  # noqa: ANN401 - any payload
    try:
        return decode_message(topic, payload).payload
    except ProtocolError as exc:
        pytest.fail(f"{why}\n  does not decode ({exc.reason}): {exc}")


# Replaying the examples.


@pytest.mark.parametrize("example", PUBS, ids=_example_id)
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
    decoded = _decode(topic, payload, example)
    channel = wire.parse(topic).channel
    assert isinstance(decoded, SPECS[channel].payload), example


@pytest.mark.parametrize("example", SUBS, ids=_example_id)
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
            _decode(topic, payload, example)
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
    presence = _decode(will_topic, will, example)
    assert isinstance(presence, Presence), example
    assert (presence.state, presence.reason) == (PresenceState.OFFLINE, OfflineReason.WILL), (
        f"{example}: a last will is an offline presence with reason `will`"
    )
    spec = SPECS[Channel.PRESENCE]
    assert example.value("--will-qos") == str(spec.qos), f"{example}: will QoS as channels.py"
    assert example.has("--will-retain") == spec.retain, f"{example}: will retain as channels.py"


# The examples say what the code says.


def test_every_example_is_a_complete_mosquitto_command() -> None:
    assert PUBS, "no mosquitto_pub example found in docs/protocol.md"
    assert SUBS, "no mosquitto_sub example found in docs/protocol.md"
    for example in EXAMPLES:
        assert example.tool in ("mosquitto_pub", "mosquitto_sub"), f"{example}: not replayable"
        assert (example.value("-h"), example.value("-p")) == DOC_BROKER, example
        assert example.value("-V") == "mqttv5", f"{example}: termfleet is MQTT 5"
        assert example.values("-t"), f"{example}: no topic"
    for example in SUBS:
        assert example.has("-v"), f"{example}: -v, so that each line shows its topic"
    for example in PUBS:
        assert len(example.values("-t")) == 1, f"{example}: one topic per publish"
        message = json.loads(example.value("-m") or "null")
        assert isinstance(message, dict), f"{example}: the payload is a JSON object"
        assert message.get("v") == 1, f"{example}: writers always send v"


@pytest.mark.parametrize("example", PUBS, ids=_example_id)
def test_pub_example_uses_its_channels_qos_and_retain(example: Example) -> None:
    spec = SPECS[wire.parse(example.value("-t") or "").channel]
    assert example.value("-q") == str(spec.qos), f"{example}: QoS is {spec.qos} in channels.py"
    assert example.has("-r") == spec.retain, f"{example}: retain is {spec.retain} in channels.py"


def _pub_payloads() -> list[tuple[Channel, Any]]:
    result = []
    for example in PUBS:
        topic = example.value("-t") or ""
        payload = _decode(topic, (example.value("-m") or "").encode(), example)
        result.append((wire.parse(topic).channel, payload))
    return result


def test_every_channel_has_a_pub_example() -> None:
    missing = set(Channel) - {channel for channel, _ in _pub_payloads()}
    assert not missing, f"docs/protocol.md has no mosquitto_pub example for {sorted(missing)}"


def test_every_usage_event_type_has_a_pub_example() -> None:
    shown = {type(payload) for _, payload in _pub_payloads()}
    missing = {t.__name__ for t in USAGE_PAYLOADS if t not in shown}
    assert not missing, f"docs/protocol.md has no usage example of {sorted(missing)}"


def test_sub_examples_watch_a_device_and_the_shared_uplink() -> None:
    filters = {f for example in SUBS for f in example.values("-t")}
    device = "kiosk-440117000-01"
    assert wire.device_uplink_filter(device) in filters
    assert wire.device_downlink_filter(device) in filters
    assert any(f.startswith("$share/") and f.endswith(wire.all_uplink_filter()) for f in filters)
    assert wire.shared(SHARE_GROUP, wire.all_uplink_filter()) in DOC, "the ingest's share group"


def test_documented_size_limit_is_the_codec_limit() -> None:
    assert f"{MAX_PAYLOAD_BYTES:,} bytes" in DOC


# The tables say what the code says.


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def _tables() -> dict[str, list[list[str]]]:
    """The body rows of the first table under each heading, keyed by the heading's text."""
    tables: dict[str, list[list[str]]] = {}
    heading: str | None = None
    for line in DOC.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip().strip("`")
            assert heading not in tables, f"docs/protocol.md: two tables under {line!r}"
        elif heading is not None and line.startswith("|"):
            tables.setdefault(heading, []).append(_cells(line))
        elif heading in tables:
            heading = None  # the table ended; anything further is not its
    return {name: rows[2:] for name, rows in tables.items()}  # header and rule left out


TABLES = _tables()


def _code(cell: str) -> str | None:
    found = re.search(r"`([^`]*)`", cell)
    return found.group(1) if found else None


Structs = dict[str, type[msgspec.Struct]]
Enums = dict[str, type[enum.Enum]]


def _visit(t: mi.Type, structs: Structs, enums: Enums) -> None:
    match t:
        case mi.Metadata():
            _visit(t.type, structs, enums)
        case mi.StructType() if t.cls.__name__ not in structs:
            structs[t.cls.__name__] = t.cls
            for field in t.fields:
                _visit(field.type, structs, enums)
        case mi.EnumType():
            enums[t.cls.__name__] = t.cls
        case mi.UnionType():
            for member in t.types:
                _visit(member, structs, enums)
        case mi.VarTupleType() | mi.ListType():
            _visit(t.item_type, structs, enums)
        case mi.DictType():
            _visit(t.key_type, structs, enums)
            _visit(t.value_type, structs, enums)


def _documented_types() -> tuple[Structs, Enums]:
    """Every struct and enum a payload is made of, found by walking the payload types."""
    structs: Structs = {"UsageRecord": UsageRecord}
    enums: Enums = {"RejectReason": RejectReason}
    for cls in [*(s.payload for s in SPECS.values()), *USAGE_PAYLOADS]:
        _visit(mi.type_info(cls), structs, enums)
    return structs, enums


STRUCTS, ENUMS = _documented_types()


def _expected_rows(cls: type[msgspec.Struct]) -> dict[str, tuple[str | None, bool]]:
    """Each field's default (as JSON) and whether it is required, as the document must show."""
    instance = cls()
    required = set(getattr(cls, "required", ()))
    names = [f.name for f in msgspec.structs.fields(cls)]
    if cls is not UsageRecord and issubclass(cls, UsageRecord):
        names = [n for n in names if n not in {f.name for f in msgspec.structs.fields(UsageRecord)}]
        required -= {"seq"}  # documented once, in the UsageRecord table
    rows: dict[str, tuple[str | None, bool]] = {
        n: (msgspec.json.encode(getattr(instance, n)).decode(), n in required) for n in names
    }
    if cls is UsageRecord:
        rows["type"] = (None, True)  # the tag: no default, always sent
    return rows


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_struct_table_lists_every_field_with_its_default(name: str) -> None:
    assert name in TABLES, f"docs/protocol.md has no table under a heading #### `{name}`"
    documented = {_code(row[0]): (_code(row[2]), "**required**" in row[3]) for row in TABLES[name]}
    expected = _expected_rows(STRUCTS[name])
    missing, extra = set(expected) - set(documented), set(documented) - set(expected)
    assert not missing, f"`{name}` table lacks fields of the code: {sorted(missing)}"
    assert not extra, f"`{name}` table has fields the code does not: {sorted(extra, key=str)}"
    for field, (default, required) in expected.items():
        shown_default, shown_required = documented[field]
        if default is not None:
            assert shown_default == default, f"`{name}.{field}`: default is {default} in the code"
        assert shown_required == required, f"`{name}.{field}`: required is {required} in the code"


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_table_lists_every_value(name: str) -> None:
    assert name in TABLES, f"docs/protocol.md has no table under a heading #### `{name}`"
    documented = {_code(row[0]) for row in TABLES[name]}
    documented = {"" if value == '""' else value for value in documented}
    expected = {member.value for member in ENUMS[name]}
    assert documented == expected, (
        f"`{name}` values differ from the code: missing {sorted(expected - documented)}"
        f", not in the code {sorted(documented - expected, key=str)}"
    )


def test_every_table_documents_something_in_the_code() -> None:
    stale = (
        set(TABLES)
        - set(STRUCTS)
        - set(ENUMS)
        - {"Channel table", "Who publishes and who subscribes"}
    )
    assert not stale, (
        f"docs/protocol.md has tables for what the code does not have: {sorted(stale)}"
    )


def test_channel_table_is_channels_py() -> None:
    direction_of = {c: d for d, cs in wire.CHANNELS_BY_DIRECTION.items() for c in cs}
    yes_no = {True: "yes", False: "no"}
    expected = {
        (
            channel.value,
            direction_of[channel].value,
            spec.payload.__name__,
            str(spec.qos),
            yes_no[spec.retain],
            yes_no[spec.record],
        )
        for channel, spec in SPECS.items()
    }
    documented = {tuple(cell.strip("`") for cell in row) for row in TABLES["Channel table"]}
    assert documented == expected, (
        f"channel table differs from channels.py: {documented ^ expected}"
    )
