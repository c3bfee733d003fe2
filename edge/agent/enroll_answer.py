"""Reading the claim service's answer: the terminal's identity, or why there is none.

Pure: what comes off the wire is checked here before anything of it reaches the disk.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from edge.protocol import BrokerEndpoint, ClaimResponse, ClaimStatus
from edge.protocol.common import ID_PATTERN

ED25519_PUBLIC_KEY_BYTES = 32
REFUSALS = {
    "expired": "the claim code has expired; ask an administrator for a new one",
    "used": "the claim code has been used already; ask an administrator for a new one",
    "unknown": "the control plane does not know this claim code; check it, or ask for a new one",
    "rate_limited": "too many claim attempts; wait a few minutes, then try again",
    "already_enrolled": (
        "this terminal's serial is enrolled already; an administrator must run "
        "`termfleet provision reenroll` first"
    ),
    "retired": "this terminal's serial belongs to a retired terminal; it cannot join again",
    "wrong_kind": "the claim code is for terminals of another kind; check --kind",
    "wrong_serial": (
        "the claim code was made for a terminal with another serial; check --serial, or use"
        " the code printed for this terminal"
    ),
    "invalid": "the control plane could not use the request (serial or key missing or too long)",
    "unavailable": "the control plane could not reach its broker; nothing was used up, try again",
}
"""The claim service's reasons for refusing, in the words the technician at the terminal needs."""


class EnrollError(RuntimeError):
    """Enrollment failed; the message says why and what to do next."""


class MalformedAnswerError(EnrollError):
    """The claim service's answer cannot be used as it stands."""

    def __init__(self, what: str) -> None:
        super().__init__(f"malformed answer from the claim service: {what}")


@dataclass(frozen=True, slots=True)
class Identity:
    """What an accepted claim gives the terminal."""

    device_id: str
    username: str
    password: str
    broker_url: str
    content_keys: tuple[str, ...]
    initial_config: dict[str, str]


def accepted_identity(response: ClaimResponse, key: PrivateKey) -> Identity:
    """The identity in an accepted answer; EnrollError for a refusal or a malformed answer."""
    if response.status is ClaimStatus.REFUSED:
        raise EnrollError(refusal_message(response.reason))
    if response.status is not ClaimStatus.ACCEPTED:
        msg = "a status this agent does not know"
        raise MalformedAnswerError(msg)
    if not re.fullmatch(ID_PATTERN, response.device_id):
        msg = f"device id {response.device_id!r}"
        raise MalformedAnswerError(msg)
    if not response.username:
        msg = "no broker username"
        raise MalformedAnswerError(msg)
    for content_key in response.content_keys:
        if len(_base64(content_key, "a content key")) != ED25519_PUBLIC_KEY_BYTES:
            msg = f"content key {content_key!r} is no Ed25519 public key"
            raise MalformedAnswerError(msg)
    return Identity(
        device_id=response.device_id,
        username=response.username,
        password=open_password(response.sealed_password, key),
        broker_url=broker_url(response.broker),
        content_keys=response.content_keys,
        initial_config=dict(response.config),
    )


def refusal_message(reason: str) -> str:
    """What a refusal means for the technician; a reason this agent does not know, verbatim."""
    return "claim refused: " + REFUSALS.get(reason, reason or "no reason given")


def open_password(sealed: str, key: PrivateKey) -> str:
    """The broker password sealed to ``key``'s public half."""
    try:
        password = SealedBox(key).decrypt(_base64(sealed, "the sealed password")).decode("utf-8")
    except (CryptoError, UnicodeDecodeError):
        msg = "the sealed password does not open with this key"
        raise MalformedAnswerError(msg) from None
    # The agent reads the file back stripped (edge.agent.config.read_password).
    if not password or password != password.strip():
        msg = "an empty or space-padded broker password"
        raise MalformedAnswerError(msg)
    return password


def broker_url(endpoint: BrokerEndpoint) -> str:
    """mqtts://host:port for a TLS endpoint, else mqtt://host:port."""
    scheme = "mqtts" if endpoint.tls else "mqtt"
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    url = f"{scheme}://{host}:{endpoint.port}"
    # Whatever else the host holds ("/", "@", spaces, an out-of-range port) fails to read back.
    try:
        parts = urlsplit(url)
        reads_back = parts.hostname == endpoint.host.lower() and parts.port == endpoint.port
    except ValueError:
        reads_back = False
    if not endpoint.host or not reads_back or endpoint.port <= 0:
        msg = f"broker {endpoint.host!r} port {endpoint.port}"
        raise MalformedAnswerError(msg)
    return url


def _base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        msg = f"{what} is not base64"
        raise MalformedAnswerError(msg) from None
