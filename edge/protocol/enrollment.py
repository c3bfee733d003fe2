"""Enrollment: a new terminal exchanges a claim code for its permanent identity."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from .common import OpenEnum, Payload, Timestamp
from .presence import DeviceKind

CLAIM_USERNAME = "termfleet-claim"
"""The broker user of the restricted claim credentials, shared by every enrolling terminal.

Its role lets it publish a request under a claim id and read that claim id's response, nothing
else; its password is handed out with the claim codes (``termfleet provision claims create``).
"""
CLAIM_TIMEOUT_S = 30.0
"""How long an enrolling agent waits for the claim service's answer by default."""


class ClaimRequest(Payload, frozen=True, kw_only=True):
    """Sent with the restricted claim credentials, which can do nothing but this exchange.

    ``agent_public_key`` (X25519, base64) lets the claim service seal the broker password so
    that other holders of the claim credentials cannot read it from the response topic.
    """

    claim_code: str = ""
    serial: str = ""
    kind: DeviceKind = DeviceKind.UNKNOWN
    hardware_model: str = ""
    agent_version: str = ""
    agent_public_key: str = ""
    at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("claim_code", "serial")


class ClaimStatus(OpenEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"


class BrokerEndpoint(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    host: str = ""
    port: int = 8883
    tls: bool = True


class ClaimResponse(Payload, frozen=True, kw_only=True):
    """The permanent identity, or a refusal with a reason (provisioning.claims.Refusal)."""

    status: ClaimStatus = ClaimStatus.UNKNOWN
    reason: str = ""
    device_id: str = ""
    username: str = ""
    sealed_password: str = ""
    """The broker password sealed to ``agent_public_key`` (libsodium sealed box), base64."""
    broker: BrokerEndpoint = BrokerEndpoint()
    content_keys: tuple[str, ...] = ()
    """Ed25519 public keys (base64) whose signatures the terminal accepts on content."""
    config: dict[str, str] = {}

    required: ClassVar[tuple[str, ...]] = ("status",)
