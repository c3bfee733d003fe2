"""A client of the broker's dynamic-security command API (``$CONTROL/dynamic-security/v1``).

The plugin answers every subscriber of its response topic at QoS 0, so each command carries a
correlation id and only the answers to our own are taken. A command's success is the absence
of ``error`` in its answer; the plugin runs each command of a message on its own (no
transaction). It also reports a failed save of its file only as an error log line, which this
client watches on ``$SYS/broker/log/E``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge import mqtt
from edge.aio import cancel_and_wait

from . import dynsec

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 200_000
"""The project's broker refuses packets over 270,000 bytes (max_packet_size)."""
SAVE_FAILED_MARK = "Error saving Dynamic security plugin config"
TOLERATED = frozenset({"Client already exists", "Role already exists"})
"""Answers that mean the change was made before: re-running an enrollment is harmless."""


class DynsecError(RuntimeError):
    """The broker refused a command, or did not answer."""

    def __init__(self, command: dict[str, Any], error: str) -> None:
        what = command.get("username") or command.get("rolename") or ""
        super().__init__(f"{command['command']} {what}: {error}".replace("  ", " "))
        self.command = command["command"]
        self.error = error


@dataclass
class SaveWatch:
    """What the broker's error log said about saving its file since we connected."""

    failures: int = 0
    last_line: str = ""
    seen: asyncio.Event = field(default_factory=asyncio.Event)


class BrokerAdmin:
    """Send commands and wait for their answers; one instance per connection."""

    def __init__(self, connection: mqtt.Connection) -> None:
        self._connection = connection
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.saves = SaveWatch()

    async def run(
        self, commands: Sequence[dict[str, Any]], *, tolerate: Iterable[str] = TOLERATED
    ) -> list[dict[str, Any]]:
        """Every command's answer, in order; DynsecError on the first refused one."""
        tolerated = frozenset(tolerate)
        answers: list[dict[str, Any]] = []
        for batch in _batches(commands):
            answers += await self._send(batch)
        for command, answer in zip(commands, answers, strict=True):
            error = answer.get("error")
            if error is not None and error not in tolerated:
                raise DynsecError(command, error)
        return answers

    async def data(self, command: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of a query's answer, e.g. listClients."""
        [answer] = await self.run([command])
        return dict(answer.get("data", {}))

    async def _send(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        tagged = []
        for command in commands:
            correlation = secrets.token_hex(8)
            self._waiting[correlation] = loop.create_future()
            tagged.append({**command, "correlationData": correlation})
        try:
            await self._connection.publish(
                mqtt.Outgoing(dynsec.CONTROL_TOPIC, json.dumps({"commands": tagged}).encode())
            )
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                return [await self._waiting[c["correlationData"]] for c in tagged]
        except TimeoutError:
            names = ", ".join(c["command"] for c in commands)
            raise DynsecError(
                commands[0], f"no answer within {ANSWER_TIMEOUT_S:.0f} s to {names}"
            ) from None
        finally:
            for command in tagged:
                self._waiting.pop(command["correlationData"], None)

    def take(self, message: mqtt.Incoming) -> None:
        """Route one arrived message: an answer to its waiting command, or a log line."""
        if message.topic == dynsec.LOG_ERRORS_TOPIC:
            line = bytes(message.payload).decode(errors="replace")
            if SAVE_FAILED_MARK in line:
                self.saves.failures += 1
                self.saves.last_line = line
                self.saves.seen.set()
                log.error("the broker could not save its logins: %s", line)
            return
        try:
            answers = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable answer on %s: %r", message.topic, message.payload[:200])
            return
        for answer in answers:
            waiting = self._waiting.get(str(answer.get("correlationData")))
            if waiting is not None and not waiting.done():
                waiting.set_result(answer)

    def lost(self, reason: str) -> None:
        """The connection broke: nothing waiting will be answered."""
        for correlation, waiting in self._waiting.items():
            if not waiting.done():
                waiting.set_exception(
                    DynsecError({"command": correlation}, f"connection lost: {reason}")
                )


def _batches(commands: Sequence[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for command in commands:
        length = len(json.dumps(command)) + 40
        if batch and size + length > MAX_MESSAGE_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(command)
        size += length
    if batch:
        yield batch


@contextlib.asynccontextmanager
async def open_admin(address: mqtt.BrokerAddress) -> AsyncIterator[BrokerAdmin]:
    """Connect as the admin login in ``address`` and serve answers until the block ends."""
    options = mqtt.SessionOptions(client_id=f"{dynsec.ADMIN_USERNAME}-{secrets.token_hex(4)}")
    async with mqtt.connect(address, options) as connection:
        admin = BrokerAdmin(connection)
        reader = asyncio.create_task(_read(connection, admin), name="dynsec-answers")
        try:
            await connection.subscribe(dynsec.RESPONSE_TOPIC, dynsec.LOG_ERRORS_TOPIC, qos=0)
            yield admin
        finally:
            await cancel_and_wait([reader])


async def _read(connection: mqtt.Connection, admin: BrokerAdmin) -> None:
    try:
        async for message in connection.messages():
            admin.take(message)
    except mqtt.MqttError as exc:
        admin.lost(str(exc))
