"""Commands from the control plane to one terminal, and their results."""

from __future__ import annotations

from typing import ClassVar

from .common import OpenEnum, Payload, Timestamp


class CommandName(OpenEnum):
    REBOOT = "reboot"
    RESTART_AGENT = "restart_agent"
    SELF_TEST = "self_test"
    PRINT_TEST_PAGE = "print_test_page"
    REFRESH_CONFIG = "refresh_config"
    UPLOAD_LOGS = "upload_logs"
    UNKNOWN = "unknown"


class Command(Payload, frozen=True, kw_only=True):
    """A command; the agent refuses one past ``expires_at`` and answers each id at most once."""

    command_id: str = ""
    name: CommandName = CommandName.UNKNOWN
    args: dict[str, str] = {}
    issued_at: Timestamp | None = None
    expires_at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("command_id", "name")


class CommandStatus(OpenEnum):
    ACCEPTED = "accepted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class CommandResult(Payload, frozen=True, kw_only=True):
    """The agent's answer; ``checks`` holds per-check outcomes (self-test: printer=pass …)."""

    command_id: str = ""
    status: CommandStatus = CommandStatus.UNKNOWN
    detail: str = ""
    checks: dict[str, str] = {}
    at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("command_id", "status")


SELF_TEST_PREFIX = "self-test"
"""The command id of a self-test result starts with this.

``self-test:enrollment`` is the one an agent runs by itself on its first connection after
enrolling; ``self-test:<n>`` answers a SELF_TEST command.
"""
SELF_TEST_AFTER_ENROLLMENT = f"{SELF_TEST_PREFIX}:enrollment"
CHECK_PASSED = "pass"
"""A check's outcome in ``CommandResult.checks``: this, or ``fail: <reason>``."""


def is_self_test(command_id: str) -> bool:
    return command_id == SELF_TEST_PREFIX or command_id.startswith(f"{SELF_TEST_PREFIX}:")


def check_failed(reason: str) -> str:
    return f"fail: {reason}"
