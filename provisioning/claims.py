"""Whether a claim request may enroll a terminal, and under which device id. Pure.

A claim token is a site's or a batch's (several terminals, until it expires or is used up) or
one pre-registered terminal's (its serial, kind and placement known, enrolled once). The claim
service reads the token and any device the request points at, asks ``refusal`` whether to
go on, and ``device_id_for`` which id a new terminal gets.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .dynsec import SERVICE_PREFIX

MAX_SERIAL = 64
_NOT_ID = re.compile(r"[^a-z0-9_.-]+")


class Refusal(StrEnum):
    """Why a claim was refused: the ``reason`` of a refused ClaimResponse, and a metric label."""

    UNKNOWN = "unknown"
    """No such code (mistyped, forged, or revoked)."""
    EXPIRED = "expired"
    USED = "used"
    """A one-time code already used, or a site's token used up."""
    RATE_LIMITED = "rate_limited"
    ALREADY_ENROLLED = "already_enrolled"
    """This serial has credentials; an administrator must allow re-enrollment first."""
    RETIRED = "retired"
    WRONG_KIND = "wrong_kind"
    WRONG_SERIAL = "wrong_serial"
    """A pre-registration code used by a terminal with another serial."""
    INVALID = "invalid"
    """The request itself is unusable: no serial, no key to seal the password to."""
    UNAVAILABLE = "unavailable"
    """The broker or the database could not take the enrollment; nothing was used up: try
    again later."""


@dataclass(frozen=True, slots=True)
class TokenView:
    """What the rules need of a ClaimToken row."""

    uses: int
    max_uses: int
    expires_at: datetime | None
    revoked: bool
    kind: str = ""
    serial: str = ""
    """The pre-registered device's serial, when the token is bound to one."""


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What the rules need of the device row a request would enroll, if there is one."""

    device_id: str
    lifecycle: str
    broker_generation: int
    reenroll_until: datetime | None


def refusal(
    token: TokenView | None,
    *,
    serial: str,
    kind: str,
    device: DeviceView | None,
    now: datetime,
) -> Refusal | None:
    """None when the request may enroll, else why not.

    The token is judged first: a stranger with a wrong code learns nothing about the fleet's
    devices.
    """
    return _token_refusal(token, serial=serial, kind=kind, now=now) or _device_refusal(device, now)


def _token_refusal(
    token: TokenView | None, *, serial: str, kind: str, now: datetime
) -> Refusal | None:
    if token is None or token.revoked:
        return Refusal.UNKNOWN
    if token.expires_at is not None and token.expires_at <= now:
        return Refusal.EXPIRED
    if token.uses >= token.max_uses:
        return Refusal.USED
    if not serial or len(serial) > MAX_SERIAL:
        return Refusal.INVALID
    if token.serial and token.serial != serial:
        return Refusal.WRONG_SERIAL
    return Refusal.WRONG_KIND if token.kind and token.kind != kind else None


def _device_refusal(device: DeviceView | None, now: datetime) -> Refusal | None:
    if device is None:
        return None
    if device.lifecycle == "retired":
        return Refusal.RETIRED
    allowed_again = device.reenroll_until is not None and device.reenroll_until > now
    if device.broker_generation > 0 and not allowed_again:
        return Refusal.ALREADY_ENROLLED
    return None


def device_id_base(kind: str, serial: str) -> str:
    """The id ``device_id_for`` gives unless it is taken; its others start with its first 54."""
    slug = _NOT_ID.sub("-", serial.lower()).strip("-._") or "x"
    base = f"{kind or 'device'}-{slug}"[:64]
    return f"d-{base}"[:64] if base.startswith(SERVICE_PREFIX) else base


def device_id_for(kind: str, serial: str, taken: Collection[str] = ()) -> str:
    """A readable, stable id from the kind and serial: ``kiosk-sn2024x0042``.

    Stable, so that a terminal enrolled again after a factory reset keeps its id, its history
    and its placement. ``taken``: ids of other terminals it must not collide with.
    """
    base = device_id_base(kind, serial)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = base[: 64 - len(suffix)] + suffix
    return candidate
