"""The protocol's exception tree: everything that can be wrong with a topic or a payload."""

from __future__ import annotations

import enum


class RejectReason(enum.StrEnum):
    """Why a message was refused; the closed set behind the ingest's reject counter."""

    TOPIC = "topic"
    JSON = "json"
    SCHEMA = "schema"
    VERSION = "version"
    TOO_LARGE = "too_large"
    MISSING_FIELD = "missing_field"
    UNSTORABLE = "unstorable"
    """Valid by the contract, yet the control plane's database refused it: a defect to report.
    Kept raw, its device told to stop sending it, so that it holds up nothing behind it."""


class ProtocolError(ValueError):
    """A topic or payload that does not follow the wire contract."""

    reason: RejectReason = RejectReason.SCHEMA


class TopicError(ProtocolError):
    """A topic string that is not in the termfleet topic tree."""

    reason = RejectReason.TOPIC


class PayloadError(ProtocolError):
    """Bytes that do not decode to the payload the topic promises."""

    def __init__(self, message: str, reason: RejectReason = RejectReason.SCHEMA) -> None:
        super().__init__(message)
        self.reason = reason


class UnsupportedVersionError(PayloadError):
    """A payload whose schema version this build cannot read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, RejectReason.VERSION)
