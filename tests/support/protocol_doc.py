"""docs/protocol.md, read: its mosquitto_pub and mosquitto_sub examples and its tables."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.protocol import SPECS, Channel, ProtocolError, decode_message, decode_records
from edge.protocol.topics import parse

DOC_PATH = Path(__file__).resolve().parent.parent.parent / "docs" / "protocol.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
DOC_BROKER = ("localhost", "1883")
"""Where the examples point; the replay points them at the test's own broker instead."""


# The examples.

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
        """(option, value or None) in order; an option the replay cannot rewrite is an error."""
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


def example_id(example: Example) -> str:
    """A pytest id that names the example's line and what it does."""
    if example.tool == "mosquitto_sub":
        return f"line{example.line}-sub-{'+'.join(example.values('-t'))}"
    channel = (example.value("-t") or "").rsplit("/", 1)[-1]
    if channel == Channel.USAGE.value:
        sent = json.loads(example.value("-m") or "{}")
        records = sent if isinstance(sent, list) else [sent]
        channel += "-" + "+".join(str(r.get("type")) for r in records)
    return f"line{example.line}-pub-{channel}"


def decode_or_fail(topic: str, payload: bytes, why: object) -> list[Any]:
    """Every payload the message carries: one, or a record message's array of records."""
    try:
        channel = parse(topic).channel
        if not SPECS[channel].record:
            return [decode_message(topic, payload).payload]
        items = decode_records(channel, payload)
    except ProtocolError as exc:
        pytest.fail(f"{why}\n  does not decode ({exc.reason}): {exc}")
    for item in items:
        if item.error is not None:
            pytest.fail(f"{why}\n  a record does not decode ({item.error.reason}): {item.error}")
    return [item.payload for item in items]


# The tables.


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


def code(cell: str) -> str | None:
    """The first `code span` of a table cell."""
    found = re.search(r"`([^`]*)`", cell)
    return found.group(1) if found else None
