"""Usage events: what citizens did at the terminal. Each is a record, acknowledged after commit."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from .common import OpenEnum, Record


class UsageRecord(Record, frozen=True, kw_only=True, tag_field="type"):
    """Base of the usage events; ``type`` tells them apart on the wire."""


class TransactionOutcome(OpenEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"
    UNKNOWN = "unknown"


class IdCardResult(OpenEnum):
    OK = "ok"
    FAILED = "failed"
    NO_CARD = "no_card"
    UNKNOWN = "unknown"


class SessionEndReason(OpenEnum):
    FINISHED = "finished"
    IDLE_TIMEOUT = "idle_timeout"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


NonNegative = Annotated[float, msgspec.Meta(ge=0)]
MAX_PAGES = 10_000
"""Pages of one print job at most: far above any terminal's job, and low enough that the
roll-ups' sums stay within their 32-bit columns (an unbounded count overflowed them)."""


class SessionStarted(UsageRecord, frozen=True, kw_only=True, tag="session_started"):
    session_id: str = ""


class SessionEnded(UsageRecord, frozen=True, kw_only=True, tag="session_ended"):
    session_id: str = ""
    duration_s: NonNegative = 0.0
    reason: SessionEndReason = SessionEndReason.FINISHED


class Transaction(UsageRecord, frozen=True, kw_only=True, tag="transaction"):
    """One service item (事项) handled at the terminal, e.g. printing a social-security record."""

    session_id: str = ""
    department: str = ""
    """Approving department code (公安, 人社, 税务 …) as in the catalog."""
    item_code: str = ""
    outcome: TransactionOutcome = TransactionOutcome.COMPLETED
    duration_s: NonNegative = 0.0

    required: ClassVar[tuple[str, ...]] = ("seq", "item_code")


class PrintJob(UsageRecord, frozen=True, kw_only=True, tag="print"):
    session_id: str = ""
    pages: Annotated[int, msgspec.Meta(ge=0, le=MAX_PAGES)] = 0
    ok: bool = True
    printer: str = ""


class IdCardRead(UsageRecord, frozen=True, kw_only=True, tag="id_card_read"):
    """An ID-card read. The ID number itself never leaves the reader's driver."""

    session_id: str = ""
    result: IdCardResult = IdCardResult.OK


class CallForHelp(UsageRecord, frozen=True, kw_only=True, tag="call_for_help"):
    """A press of the 呼叫帮办 call-for-help button."""

    session_id: str = ""
    answered: bool = False


UNKNOWN_TYPE_PATTERN = r"^[A-Za-z0-9_.-]{0,32}$"
"""What a usage type this build does not know may look like to be kept: a name, as every known
type is one, and no longer than the control plane's column for it. Anything else (a NUL, 40
characters) could not be stored and would fail the whole batch it came in; it is refused alone."""


class UnknownUsage(UsageRecord, frozen=True, kw_only=True, tag="unknown"):
    """A usage event type this build does not know; kept and acknowledged, never dropped."""

    original_type: Annotated[str, msgspec.Meta(pattern=UNKNOWN_TYPE_PATTERN)] = ""


UsageEvent = SessionStarted | SessionEnded | Transaction | PrintJob | IdCardRead | CallForHelp
USAGE_TYPES: tuple[type[UsageRecord], ...] = (
    SessionStarted,
    SessionEnded,
    Transaction,
    PrintJob,
    IdCardRead,
    CallForHelp,
)
