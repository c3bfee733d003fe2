"""API tokens and what they allow: roles, permissions, scopes in the jurisdiction tree. Pure.

A token is ``tf_``, 43 base62 characters of 256 random bits and a 6-character CRC32 checksum of
them (GitHub's layout): a secret scanner can recognise one, and the server refuses a mistyped or
truncated token without a database lookup. Only its SHA-256 is stored (``secret_hash``); a short
prefix (``tf_`` and the next 8 characters) names it in listings and in ``tokens revoke``.

Each token has one role (the permission table below, written once and rendered into
``docs/api-auth.md``) and a scope: a node of the jurisdiction tree, or the whole tree. A token
sees what lies in its scope's subtree (by materialized path, ``jurisdiction.is_within``); a
device placed nowhere lies in no subtree, so only a token for the whole tree sees it.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from . import jurisdiction

TOKEN_PREFIX = "tf_"
SECRET_BYTES = 32
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LENGTH = 43  # 62**43 > 2**256: every 256-bit number fits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(TOKEN_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
"""Characters of a token shown in listings: enough to tell tokens apart, far too few to guess."""


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    TECHNICIAN = "technician"
    AUDITOR = "auditor"


class Permission(StrEnum):
    DEVICES_READ = "devices.read"
    DEVICES_WRITE = "devices.write"
    DEVICES_PROVISION = "devices.provision"
    SITES_READ = "sites.read"
    SITES_WRITE = "sites.write"
    AUDIT_READ = "audit.read"
    TOKENS_READ = "tokens.read"
    TOKENS_WRITE = "tokens.write"
    STATS_READ = "stats.read"
    CONTENT_READ = "content.read"
    CONTENT_PUBLISH = "content.publish"
    CONFIG_READ = "config.read"
    CONFIG_WRITE = "config.write"
    ROLLOUT_READ = "rollout.read"
    ROLLOUT_WRITE = "rollout.write"
    REVIEWS_READ = "reviews.read"
    REVIEWS_WRITE = "reviews.write"
    WORKORDERS_HANDLE = "workorders.handle"
    WORKORDERS_REVIEW = "workorders.review"
    DEAD_LETTERS_READ = "dead_letters.read"
    DEAD_LETTERS_RESUBMIT = "dead_letters.resubmit"


ROLE_MEANING: Mapping[Role, str] = {
    Role.ADMIN: "everything in its scope, tokens included",
    Role.OPERATOR: "operations staff: read devices, sites, statistics, content, config, "
    "rollouts and reviews; change labels, placement, retire; handle work orders as the unit; "
    "read and resubmit dead letters",
    Role.TECHNICIAN: "field technicians: read devices, content, config and rollouts, provision "
    "devices",
    Role.AUDITOR: "read-only oversight: devices, sites, statistics, content, config, rollouts, "
    "reviews, dead letters, tokens and the audit log",
}

PERMISSION_MEANING: Mapping[Permission, str] = {
    Permission.DEVICES_READ: "list and show devices, their presence and health",
    Permission.DEVICES_WRITE: "change a device's labels, move it to another site or window, "
    "retire it",
    Permission.DEVICES_PROVISION: "enroll, commission and replace terminals",
    Permission.SITES_READ: "read the jurisdiction tree, sites and windows",
    Permission.SITES_WRITE: "create and change nodes, sites and windows",
    Permission.AUDIT_READ: "read the audit log",
    Permission.TOKENS_READ: "list API tokens (never their secrets)",
    Permission.TOKENS_WRITE: "create and revoke API tokens, within its own scope",
    Permission.STATS_READ: "read the statistics: handled cases (办件量), usage and 好差评 reviews",
    Permission.CONTENT_READ: "list and show the content repository's packages",
    Permission.CONTENT_PUBLISH: "upload signed packages to the content repository (a token for"
    " the whole tree)",
    Permission.CONFIG_READ: "read config layers, their device counts, and a device's desired"
    " and reported config",
    Permission.CONFIG_WRITE: "create, replace and delete config layers (global and label layers"
    " need a token for the whole tree)",
    Permission.ROLLOUT_READ: "list and show rollouts and where each targeted device stands",
    Permission.ROLLOUT_WRITE: "start, pause, resume, cancel, roll back and retry rollouts (a token"
    " for the whole tree)",
    Permission.REVIEWS_READ: "read 好差评 reviews, scores and league tables, cases, review"
    " policies and work orders",
    Permission.REVIEWS_WRITE: "tell a window's review pad a case has ended (the business system),"
    " set review policies",
    Permission.WORKORDERS_HANDLE: "act on a bad review's work order as the unit that handled the"
    " case: call back, verify, fix, explain, feed back, appeal",
    Permission.WORKORDERS_REVIEW: "act as the supervising level: review (复核) work orders and"
    " decide appeals",
    Permission.DEAD_LETTERS_READ: "read the uplink messages the ingest kept raw instead of"
    " storing (dead letters), payloads included; a token for the whole tree",
    Permission.DEAD_LETTERS_RESUBMIT: "store dead letters again once what refused them is fixed;"
    " a token for the whole tree",
}

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        {
            Permission.DEVICES_READ,
            Permission.DEVICES_WRITE,
            Permission.SITES_READ,
            Permission.STATS_READ,
            Permission.CONTENT_READ,
            Permission.CONFIG_READ,
            Permission.ROLLOUT_READ,
            Permission.REVIEWS_READ,
            Permission.WORKORDERS_HANDLE,
            Permission.DEAD_LETTERS_READ,
            Permission.DEAD_LETTERS_RESUBMIT,
        }
    ),
    Role.TECHNICIAN: frozenset(
        {
            Permission.DEVICES_READ,
            Permission.DEVICES_PROVISION,
            Permission.CONTENT_READ,
            Permission.CONFIG_READ,
            Permission.ROLLOUT_READ,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            Permission.DEVICES_READ,
            Permission.SITES_READ,
            Permission.AUDIT_READ,
            Permission.TOKENS_READ,
            Permission.STATS_READ,
            Permission.CONTENT_READ,
            Permission.CONFIG_READ,
            Permission.ROLLOUT_READ,
            Permission.REVIEWS_READ,
            Permission.DEAD_LETTERS_READ,
        }
    ),
}
"""The one permission table; docs/api-auth.md renders it (``permissions_markdown``)."""


class Refusal(StrEnum):
    """Why a request was refused: the error code of the API's JSON error."""

    MISSING_TOKEN = "missing_token"
    MALFORMED_TOKEN = "malformed_token"
    UNKNOWN_TOKEN = "unknown_token"
    EXPIRED_TOKEN = "expired_token"
    REVOKED_TOKEN = "revoked_token"
    FORBIDDEN = "forbidden"
    OUT_OF_SCOPE = "out_of_scope"


REFUSAL_MEANING: Mapping[Refusal, tuple[int, str]] = {
    Refusal.MISSING_TOKEN: (401, "no `Authorization` header, or an empty one"),
    Refusal.MALFORMED_TOKEN: (401, "not `Bearer <token>`, or not a termfleet token's shape"),
    Refusal.UNKNOWN_TOKEN: (401, "no token with that secret was issued by this database"),
    Refusal.EXPIRED_TOKEN: (401, "the token's `expires_at` has passed"),
    Refusal.REVOKED_TOKEN: (401, "the token was revoked (`termfleet tokens revoke`)"),
    Refusal.FORBIDDEN: (403, "the token's role lacks the route's permission"),
    Refusal.OUT_OF_SCOPE: (403, "the target lies outside the token's scope"),
}
"""Each refusal's HTTP status and meaning, for docs/api-auth.md."""


class AuthError(Exception):
    """A request the API refuses; ``code`` is stable for scripts, the message is for people."""

    status = 401

    def __init__(
        self, code: Refusal, message: str, *, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details or {})
        """Facts for scripts, as the API's error ``details``: the permission a role lacks."""


class AuthenticationError(AuthError):
    """No usable token: missing, malformed, unknown, expired or revoked (HTTP 401)."""


class PermissionDeniedError(AuthError):
    """A usable token whose role or scope does not allow the request (HTTP 403)."""

    status = 403


# --- tokens ---------------------------------------------------------------------------------


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, digit = divmod(number, len(BASE62))
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_secret(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A new token: 256 bits from the OS's CSPRNG, base62, with its checksum."""
    body = _base62(int.from_bytes(random_bytes(SECRET_BYTES)), BODY_LENGTH)
    return f"{TOKEN_PREFIX}{body}{_checksum(body)}"


def is_well_formed(secret: str) -> bool:
    """Whether ``secret`` has a token's shape and checksum (it may still be unknown)."""
    if len(secret) != TOKEN_LENGTH or not secret.startswith(TOKEN_PREFIX):
        return False
    rest = secret[len(TOKEN_PREFIX) :]
    if any(char not in BASE62 for char in rest):
        return False
    body, checksum = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
    return secrets.compare_digest(_checksum(body), checksum)


def secret_hash(secret: str) -> str:
    """What the database keeps of a token: its SHA-256, in hex.

    A fast hash is enough, and a slow KDF (bcrypt, scrypt) would only cost every request its
    CPU: a KDF protects low-entropy secrets such as passwords against guessing, but a token is
    256 uniformly random bits, so even a leaked table of hashes gives nothing to guess from.
    GitHub and Stripe store their API tokens the same way. No server-side pepper (HMAC) either:
    the CLI writes tokens straight into the database, and a pepper would be one more secret
    every replica and the CLI must share, for no gain against 256-bit secrets.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_PREFIX_LENGTH]


def bearer_secret(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750), checked for shape."""
    if authorization is None or not authorization.strip():
        msg = "this API needs a token: send 'Authorization: Bearer <token>'"
        raise AuthenticationError(Refusal.MISSING_TOKEN, msg)
    scheme, _, secret = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        msg = "the Authorization header must be 'Bearer <token>'"
        raise AuthenticationError(Refusal.MALFORMED_TOKEN, msg)
    if not is_well_formed(secret.strip()):
        msg = "that is not a termfleet token (tf_ and 49 letters and digits)"
        raise AuthenticationError(Refusal.MALFORMED_TOKEN, msg)
    return secret.strip()


def check_usable(
    prefix: str, expires_at: datetime | None, revoked_at: datetime | None, now: datetime
) -> None:
    """Refuse a revoked token, then an expired one."""
    if revoked_at is not None:
        msg = f"token {prefix}… was revoked on {revoked_at:%Y-%m-%d %H:%M} UTC"
        raise AuthenticationError(Refusal.REVOKED_TOKEN, msg)
    if expires_at is not None and expires_at <= now:
        msg = f"token {prefix}… expired on {expires_at:%Y-%m-%d %H:%M} UTC"
        raise AuthenticationError(Refusal.EXPIRED_TOKEN, msg)


def token_state(expires_at: datetime | None, revoked_at: datetime | None, now: datetime) -> str:
    """``active``, ``expired`` or ``revoked``, for listings."""
    try:
        check_usable("", expires_at, revoked_at, now)
    except AuthenticationError as exc:
        return exc.code.removesuffix("_token")
    return "active"


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        known = ", ".join(role.value for role in Role)
        msg = f"{text!r} is not a role ({known})"
        raise ValueError(msg) from None


# --- who is asking ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who made a change, as the audit log names it: a token, or someone at the database."""

    token_id: int | None
    name: str


def within_scope(scope_path: str | None, path: str | None) -> bool:
    """Whether the node at ``path`` (None: placed nowhere) lies in the scope (None: everything)."""
    if scope_path is None:
        return True
    return path is not None and jurisdiction.is_within(path, scope_path)


@dataclass(frozen=True)
class Principal:
    """An authenticated token: its role and its scope (None: the whole tree)."""

    token_id: int
    name: str
    role: Role
    scope_path: str | None = None
    scope_code: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.token_id, self.name)

    def allows(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.allows(permission):
            msg = f"a {self.role} token may not do this (it needs {permission})"
            details = {"permission": permission.value, "role": self.role.value}
            raise PermissionDeniedError(Refusal.FORBIDDEN, msg, details=details)

    def sees(self, path: str | None) -> bool:
        """Whether something at jurisdiction ``path`` lies in this token's scope."""
        return within_scope(self.scope_path, path)

    def require_within(self, path: str | None) -> None:
        """Refuse to act on something outside the scope (or placed nowhere, when scoped)."""
        if not self.sees(path):
            msg = f"outside this token's scope ({self.scope_code})"
            raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg)


# --- the table, for docs/api-auth.md ---------------------------------------------------------


def refusals_markdown() -> str:
    rows = [
        f"| {status} | `{code}` | {meaning} |"
        for code, (status, meaning) in REFUSAL_MEANING.items()
    ]
    return "\n".join(["| status | code | when |", "|---|---|---|", *rows])


def roles_markdown() -> str:
    rows = [f"| `{role}` | {ROLE_MEANING[role]} |" for role in Role]
    return "\n".join(["| role | for |", "|---|---|", *rows])


def permissions_markdown() -> str:
    header = "| permission | allows | " + " | ".join(f"`{role}`" for role in Role) + " |"
    rule = "|---|---|" + "---|" * len(Role)
    rows = [
        f"| `{permission}` | {PERMISSION_MEANING[permission]} | "
        + " | ".join("✓" if permission in ROLE_PERMISSIONS[role] else "" for role in Role)
        + " |"
        for permission in Permission
    ]
    return "\n".join([header, rule, *rows])
