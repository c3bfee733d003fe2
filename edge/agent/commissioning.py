"""Commissioning self-tests: each peripheral checked, the outcome reported to the control plane.

The agent runs them by itself on its first connection after enrolling, and again whenever the
control plane sends a SELF_TEST command (``termfleet provision selftest``). Which checks a
terminal has follows from its peripherals: a test print for each printer, a card read for the
ID-card reader, the keys of a review pad. The technician reads the outcome with ``termfleet
provision status`` and signs the terminal off with ``termfleet provision accept``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
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
    PeripheralState,
    PeripheralStatus,
)
from edge.protocol.commands import (
    CHECK_PASSED,
    SELF_TEST_AFTER_ENROLLMENT,
    check_failed,
)

from .telemetry import HealthSource

log = logging.getLogger(__name__)

REPORTED_MARK = "self-test-reported"
CHECKS = {
    PeripheralKind.RECEIPT_PRINTER: "test_print",
    PeripheralKind.A4_PRINTER: "test_print",
    PeripheralKind.ID_CARD_READER: "card_read",
    PeripheralKind.CITIZEN_CARD_READER: "card_read",
    PeripheralKind.REVIEW_PAD: "keys",
    PeripheralKind.DOCUMENT_CAMERA: "scan",
    PeripheralKind.SCANNER: "scan",
    PeripheralKind.CAMERA: "picture",
    PeripheralKind.CALL_BUTTON: "press",
    PeripheralKind.SCREEN: "display",
}
NO_PERIPHERALS = "peripherals"


def run_checks(peripherals: Sequence[PeripheralStatus]) -> dict[str, str]:
    """One check per peripheral, ``name.check`` → ``pass`` or ``fail: reason``. Pure."""
    if not peripherals:
        return {NO_PERIPHERALS: check_failed("none found (no peripheral driver on this terminal)")}
    checks = {}
    for peripheral in peripherals:
        name = f"{peripheral.name}.{CHECKS.get(peripheral.kind, 'present')}"
        if peripheral.state in {PeripheralState.OK, PeripheralState.DEGRADED}:
            checks[name] = CHECK_PASSED  # degraded works: paper near its end still prints
        else:
            checks[name] = check_failed(peripheral.reason or peripheral.state.value)
    return checks


def self_test_result(
    command_id: str, peripherals: Sequence[PeripheralStatus], now: datetime
) -> CommandResult:
    """The self-test result read off peripheral statuses. Pure."""
    return result_of(command_id, run_checks(peripherals), now)


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
    thread. Without peripheral drivers the checks are read off the heartbeat's statuses.
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

    @classmethod
    def from_health(
        cls, state_dir: Path, health: HealthSource, clock: Callable[[], datetime]
    ) -> SelfTests:
        return cls(state_dir, lambda: run_checks(health.read().peripherals or ()), clock)

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
