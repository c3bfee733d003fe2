"""Claim tokens and enrollments in the database.

Each change and its audit entry commit together. Codes are returned once, when they are made,
and stored only as their hash. ``enroll`` decides and records an enrollment in one
transaction, the token row locked so that two terminals cannot both take a token's last use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from control_plane import audit
from control_plane.admin_errors import InvalidFieldError, NotFoundError
from control_plane.auth import Actor, Principal
from control_plane.db.models import Device, ServiceWindow, Site
from control_plane.db.provisioning_models import ClaimToken
from control_plane.lifecycle import Lifecycle
from edge.protocol import DeviceKind
from edge.protocol.claim_code import code_hash, code_prefix, new_code

from . import claims
from .claim_views import token_view
from .claims import Refusal

CLAIM_ACTOR_PREFIX = "claim:"
SITE_CODE_MAX = 64
MAX_USES = 10_000
KINDS = tuple(sorted(k.value for k in DeviceKind if k is not DeviceKind.UNKNOWN))
"""The kinds a token may be limited to."""
DEFAULT_EXPIRY_HOURS = 72
MAX_API_EXPIRY_HOURS = 720
"""A code made over the API lives 30 days at most: it travels in chats and photos."""


@dataclass(frozen=True)
class NewToken:
    token: ClaimToken
    code: str
    """Shown once: only its hash is kept."""


@dataclass(frozen=True)
class Registration:
    """One row of a pre-registration file."""

    serial: str
    kind: str
    site: str
    window: str = ""


@dataclass(frozen=True)
class Enrollment:
    device_id: str
    generation: int
    kind: str


def _check_kind(kind: str) -> None:
    if kind and kind not in KINDS:
        field = "kind"
        raise InvalidFieldError(field, f"must be one of {', '.join(KINDS)}")


async def _site(
    code: str, conn: BaseDBAsyncClient, seen_by: Principal | None = None
) -> tuple[Site, str]:
    """The site and its node's path; one beyond ``seen_by``'s scope is not found either."""
    site = None
    if len(code) <= SITE_CODE_MAX:
        site = await Site.filter(code=code).using_db(conn).select_related("node").first()
    if site is None or (seen_by is not None and not seen_by.sees(site.node.path)):
        msg = f"no site {code!r}"
        raise NotFoundError(msg)
    return site, site.node.path


async def _site_path(site_id: int | None, conn: BaseDBAsyncClient) -> str | None:
    if site_id is None:
        return None
    paths = await Site.filter(id=site_id).using_db(conn).values_list("node__path", flat=True)
    return str(paths[0]) if paths else None


async def _window(site: Site, number: str, conn: BaseDBAsyncClient) -> ServiceWindow | None:
    if not number:
        return None
    window = await ServiceWindow.filter(site_id=site.id, number=number).using_db(conn).first()
    if window is None:
        msg = f"site {site.code} has no window {number!r}"
        raise NotFoundError(msg)
    return window


async def create_token(  # noqa: PLR0913 - one parameter per property of a token
    actor: Actor,
    *,
    site_code: str | None,
    batch: str = "",
    kind: str = "",
    max_uses: int,
    expires_in: timedelta | None,
    note: str = "",
    now: datetime,
    seen_by: Principal | None = None,
) -> NewToken:
    """A token for a site (terminals enrolled with it are placed there) or a batch.

    ``seen_by``: the asking API token, whose scope must reach the site (None: at the database).
    """
    _check_kind(kind)
    if not 1 <= max_uses <= MAX_USES:
        field = "max_uses"
        raise InvalidFieldError(field, f"must be 1 to {MAX_USES}")
    if site_code is None and not batch:
        raise InvalidFieldError(None, "a claim token is for a site or a batch: name one")
    code = new_code()
    async with in_transaction() as conn:
        site, path = (
            await _site(site_code, conn, seen_by) if site_code is not None else (None, None)
        )
        token = await ClaimToken.create(
            code_hash=code_hash(code),
            prefix=code_prefix(code),
            batch=batch,
            site=site,
            kind=kind,
            max_uses=max_uses,
            created_at=now,
            created_by=actor.name,
            expires_at=now + expires_in if expires_in else None,
            note=note,
            using_db=conn,
        )
        await audit.record(
            "claim.create",
            actor,
            "claim",
            token.id,
            after=token_view(token),
            scope_path=path,
            at=now,
            using_db=conn,
        )
    return NewToken(token, code)


async def pre_register(
    actor: Actor, rows: Iterable[Registration], *, expires_in: timedelta | None, now: datetime
) -> list[tuple[str, NewToken]]:
    """A device row and a one-time code for each serial; all or nothing."""
    made = []
    async with in_transaction() as conn:
        for row in rows:
            _check_kind(row.kind)
            site, _ = await _site(row.site, conn)
            window = await _window(site, row.window, conn)
            existing = await Device.filter(serial=row.serial).using_db(conn).first()
            if existing is not None:
                field = "serial"
                raise InvalidFieldError(field, f"{row.serial!r} is device {existing.device_id}")
            taken = await _ids_like(row.kind, row.serial, conn)
            device = await Device.create(
                device_id=claims.device_id_for(row.kind, row.serial, taken),
                kind=row.kind,
                serial=row.serial,
                site=site,
                window=window,
                using_db=conn,
            )
            code = new_code()
            token = await ClaimToken.create(
                code_hash=code_hash(code),
                prefix=code_prefix(code),
                device=device,
                site=site,
                window=window,
                kind=row.kind,
                max_uses=1,
                created_at=now,
                created_by=actor.name,
                expires_at=now + expires_in if expires_in else None,
                using_db=conn,
            )
            await audit.record(
                "device.preregister",
                actor,
                "device",
                device.device_id,
                after={"serial": row.serial, "kind": row.kind, "site": site.code},
                at=now,
                using_db=conn,
            )
            made.append((device.device_id, NewToken(token, code)))
    return made


async def revoke_token(
    actor: Actor, token_id: int, now: datetime, *, seen_by: Principal | None = None
) -> ClaimToken:
    """Stop a token; one revoked before stays as it was.

    ``seen_by``: the asking API token, which reaches only the tokens of sites in its scope,
    never a batch's (None: at the database, every token).
    """
    async with in_transaction() as conn:
        token = await ClaimToken.select_for_update().using_db(conn).get_or_none(id=token_id)
        path = await _site_path(token.site_id, conn) if token is not None else None
        if token is None or (
            seen_by is not None and (token.site_id is None or not seen_by.sees(path))
        ):
            msg = f"no claim token {token_id}"
            raise NotFoundError(msg)
        if token.revoked_at is None:
            before = token_view(token)
            token.revoked_at = now
            await token.save(using_db=conn, update_fields=["revoked_at"])
            await audit.record(
                "claim.revoke",
                actor,
                "claim",
                token.id,
                before=before,
                after=token_view(token),
                scope_path=path,
                at=now,
                using_db=conn,
            )
    return token


async def enroll(
    code: str,
    *,
    serial: str,
    kind: str,
    now: datetime,
    before_commit: Callable[[Enrollment], Awaitable[None]],
) -> Enrollment | Refusal:
    """Use the token of ``code`` to enroll the terminal ``serial``, or say why not.

    ``before_commit`` gives the terminal its broker login while the rows are still locked: if
    it fails, nothing is recorded and the token keeps its use, so the terminal may simply try
    again; the database never says a terminal has a password the broker does not know.
    """
    async with in_transaction() as conn:
        token = (
            await ClaimToken.select_for_update()
            .using_db(conn)
            .get_or_none(code_hash=code_hash(code))
        )
        device = await _target(token, serial, conn)
        refused = claims.refusal(
            _token_view(token, device),
            serial=serial,
            kind=kind,
            device=_device_view(device),
            now=now,
        )
        if refused is not None or token is None:
            return refused or Refusal.UNKNOWN
        if device is None:
            taken = await _ids_like(kind, serial, conn)
            device = Device(device_id=claims.device_id_for(kind, serial, taken), serial=serial)
        again = device.broker_generation > 0
        device.kind = kind
        device.site_id = token.site_id if token.site_id is not None else device.site_id
        device.window_id = token.window_id if token.window_id is not None else device.window_id
        # Enrolled again after a factory reset, a terminal is commissioned again as well.
        device.lifecycle = Lifecycle.ENROLLED
        device.broker_generation += 1
        device.enrolled_at = now
        device.reenroll_until = None
        await device.save(using_db=conn)
        token.uses += 1
        await token.save(using_db=conn, update_fields=["uses"])
        await audit.record(
            "device.reenroll" if again else "device.enroll",
            Actor(None, f"{CLAIM_ACTOR_PREFIX}{token.prefix}"),
            "device",
            device.device_id,
            after={"serial": serial, "kind": kind, "generation": device.broker_generation},
            at=now,
            using_db=conn,
        )
        enrollment = Enrollment(device.device_id, device.broker_generation, kind)
        await before_commit(enrollment)
    return enrollment


async def _target(token: ClaimToken | None, serial: str, conn: BaseDBAsyncClient) -> Device | None:
    """The device row this request would enroll: the pre-registered one, or one by serial."""
    if token is None:
        return None
    if token.device_id is not None:
        return (
            await Device.select_for_update().using_db(conn).get_or_none(device_id=token.device_id)
        )
    if not serial or len(serial) > claims.MAX_SERIAL:
        return None
    return await Device.select_for_update().using_db(conn).filter(serial=serial).first()


async def _ids_like(kind: str, serial: str, conn: BaseDBAsyncClient) -> set[str]:
    """The ids a new terminal's id could collide with: those sharing its start, not the fleet's."""
    start = claims.device_id_base(kind, serial)[:54]
    rows = (
        await Device.filter(device_id__startswith=start)
        .using_db(conn)
        .values_list("device_id", flat=True)
    )
    return {str(device_id) for device_id in rows}


def _token_view(token: ClaimToken | None, device: Device | None) -> claims.TokenView | None:
    if token is None:
        return None
    bound_serial = device.serial if token.device_id is not None and device else ""
    return claims.TokenView(
        uses=token.uses,
        max_uses=token.max_uses,
        expires_at=token.expires_at,
        revoked=token.revoked_at is not None,
        kind=token.kind,
        serial=bound_serial,
    )


def _device_view(device: Device | None) -> claims.DeviceView | None:
    if device is None:
        return None
    return claims.DeviceView(
        device.device_id, device.lifecycle, device.broker_generation, device.reenroll_until
    )
