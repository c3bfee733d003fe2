"""Broker passwords, derived from the control plane's secret rather than stored.

The broker keeps only hashes and its plugin takes passwords only in clear, so a broker client
lost or deleted behind the control plane's back could not be repaired without asking the
terminal again. Deriving each password from one secret — HMAC of the username and a generation
that every re-enrollment bumps — lets reconcile re-create any client with the password its
terminal already has, and lets an old password die with its generation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from edge.atomic_file import too_open

SECRET_ENV = "TERMFLEET_SECRET_FILE"  # noqa: S105 - a variable name, not a secret
SECRET_BYTES = 32


class SecretError(ValueError):
    """The secret file is missing, unreadable, too open or too short."""


def create_secret(path: Path) -> None:
    """Write a new random secret, readable by its owner only from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        msg = f"{path} exists already; a new secret would change every broker password"
        raise SecretError(msg) from None
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(SECRET_BYTES) + "\n")
        out.flush()
        os.fsync(out.fileno())


def load_secret(path: Path) -> bytes:
    try:
        perms = too_open(path)
        text = path.read_text().strip()
    except OSError as exc:
        msg = (
            f"cannot read the secret file {path}: {exc.strerror}"
            " (make one with: termfleet provision secret init)"
        )
        raise SecretError(msg) from exc
    if perms:
        msg = f"secret file {path} must be readable by its owner only (chmod 600), is {perms}"
        raise SecretError(msg)
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        msg = f"secret file {path} must hold hex digits"
        raise SecretError(msg) from None
    if len(secret) < SECRET_BYTES:
        msg = f"secret file {path} holds {len(secret)} bytes, at least {SECRET_BYTES} are needed"
        raise SecretError(msg)
    return secret


def broker_password(secret: bytes, username: str, generation: int = 1) -> str:
    """The password of one broker login in one generation: 256 bits, URL-safe base64."""
    message = f"broker-password\0{username}\0{generation}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
