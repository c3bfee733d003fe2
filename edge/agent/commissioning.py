"""Commissioning self-tests: each peripheral checked, the outcome reported to the control plane.

The agent runs them by itself on its first connection after enrolling, and again whenever the
control plane sends a SELF_TEST command (``termfleet provision selftest``). Which checks a
terminal has follows from its peripherals (``edge.agent.peripherals`` runs them through the
drivers): a test print for each receipt printer, a card read for the ID-card reader, the keys
and display of a review pad, and for the rest that the device is there and answers. The
technician reads the outcome with ``termfleet provision status`` and signs the terminal off
with ``termfleet provision accept``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from edge import mqtt
from edge.atomic_file import write_atomic
from edge.protocol import (
    Channel,
    Command,
    CommandName,
    CommandResult,
    CommandStatus,
    Payload,
    PeripheralKind,
)
from edge.protocol.commands import (
    CHECK_PASSED,
    SELF_TEST_AFTER_ENROLLMENT,
    check_failed,
)

log = logging.getLogger(__name__)

REPORTED_MARK = "self-test-reported"
CHECKS = {
    PeripheralKind.RECEIPT_PRINTER: "test_print",
    PeripheralKind.ID_CARD_READER: "card_read",
    PeripheralKind.REVIEW_PAD: "keys",
}
"""What the self-test does with each kind of peripheral; any other kind is checked present."""
NO_PERIPHERALS = "peripherals"


def check_name(peripheral: str, kind: PeripheralKind) -> str:
    """The check's name as the technician reads it: ``printer0.test_print``. Pure."""
    return f"{peripheral}.{CHECKS.get(kind, 'present')}"


def no_peripherals() -> dict[str, str]:
    """The one failing check of a terminal whose agent drives no peripherals."""
    return {
        NO_PERIPHERALS: check_failed('none configured (the agent config says peripherals = "none")')
    }


def result_of(command_id: str, checks: dict[str, str], now: datetime) -> CommandResult:
    """The command result that reports ``checks``. Pure."""
    failed = sum(outcome != CHECK_PASSED for outcome in checks.values())
    return CommandResult(
        command_id=command_id,
        status=CommandStatus.FAILED if failed else CommandStatus.SUCCEEDED,
        detail=f"{failed} of {len(checks)} checks failed" if failed else "all checks passed",
        checks=checks,
        at=now,
    )


class SelfTests:
    """Runs the self-test after enrolling (once: a mark in the state directory) and on demand.

    ``checks`` runs every check and may block (a test print, a card read): it runs in a worker
    thread.
    """

    def __init__(
        self,
        state_dir: Path,
        checks: Callable[[], dict[str, str]],
        clock: Callable[[], datetime],
    ) -> None:
        self._mark = state_dir / REPORTED_MARK
        self._checks = checks
        self._clock = clock

    async def _result(self, command_id: str) -> CommandResult:
        checks = await asyncio.to_thread(self._checks)
        return result_of(command_id, checks, self._clock())

    async def after_connect(
        self, connection: mqtt.Connection, outgoing: Callable[[Channel, Payload], mqtt.Outgoing]
    ) -> None:
        if self._mark.exists():
            return
        result = await self._result(SELF_TEST_AFTER_ENROLLMENT)
        await connection.publish(outgoing(Channel.RESULT, result))
        write_atomic(self._mark, f"{result.status.value}\n".encode(), mode=0o644)
        log.info("self-test after enrollment reported: %s", result.detail)

    async def answer(self, command: Command) -> CommandResult | None:
        """The result of a SELF_TEST command; None for other commands (not ours to answer)."""
        if command.name is not CommandName.SELF_TEST:
            return None
        return await self._result(command.command_id)
