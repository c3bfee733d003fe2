"""Changing a device through the API: its labels, its place, its retirement; each one audited.

Each change runs in one transaction with its audit entry (``audit.record``), after the device
is read with a row lock, so two changes to one device apply one after the other. A device the
token's scope does not reach is refused as one that does not exist (404), as reads do; a site
to move it to that the scope does not reach is a 403 ``out_of_scope``, and for a scoped token
so is a site that does not exist (telling the two apart would map the sites beyond the scope).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from . import audit, jurisdiction, registry
from .auth import Actor, PermissionDeniedError, Principal, Refusal
from .db.models import Device, ServiceWindow, Site
from .device_labels import LabelError, apply_patch
from .inventory import DEVICE_ID, NAME, NUMBER
from .lifecycle import Lifecycle, LifecycleError, advance

MAX_NOTE = 500


class DeviceChangeError(Exception):
    """A change that cannot be made as asked; ``status`` and ``code`` are the API's."""

    status = 400
    code = "invalid_field"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DeviceNotFoundError(DeviceChangeError):
    status = 404
    code = "not_found"


class DeviceConflictError(DeviceChangeError):
    """The device's lifecycle does not allow the change (a retired device stays retired)."""

    status = 409
    code = "conflict"


@dataclass(frozen=True, slots=True)
class Located:
    """A device locked for a change, with its site's code and place in the tree."""

    device: Device
    site_code: str | None
    path: str | None


async def locate(principal: Principal | None, device_id: str, conn: BaseDBAsyncClient) -> Located:
    """The device, row-locked in ``conn``'s transaction, if ``principal``'s scope reaches it.

    None stands for someone at the database (the CLI), whom no scope limits. A device beyond
    the scope is refused exactly as one that does not exist.
    """
    device = None
    if DEVICE_ID.fullmatch(device_id):  # else no device can have it: not worth a query
        device = await Device.select_for_update().using_db(conn).get_or_none(device_id=device_id)
    site = await _site(device.site_id, conn) if device and device.site_id else None
    path = site["node__path"] if site else None
    if device is None or (principal is not None and not principal.sees(path)):
        msg = f"no device {device_id!r}"
        raise DeviceNotFoundError(msg)
    return Located(device, site["code"] if site else None, path)


async def _site(site_id: int, conn: BaseDBAsyncClient) -> dict[str, Any] | None:
    rows = await Site.filter(id=site_id).using_db(conn).values("id", "code", "node__path")
    return rows[0] if rows else None


def _not_retired(located: Located, doing: str) -> None:
    if located.device.lifecycle == Lifecycle.RETIRED:
        msg = f"device {located.device.device_id} is retired: it cannot be {doing}"
        raise DeviceConflictError(msg)


async def change_labels(
    principal: Principal, device_id: str, patch: object, now: datetime
) -> Device:
    """Apply a JSON merge patch to the device's labels (``device_labels.apply_patch``)."""
    async with in_transaction() as conn:
        located = await locate(principal, device_id, conn)
        _not_retired(located, "labelled")
        before = dict(located.device.labels)
        try:
            after = apply_patch(before, patch)
        except LabelError as exc:
            raise DeviceChangeError(str(exc)) from None
        if after != before:
            located.device.labels = after
            await located.device.save(using_db=conn, update_fields=["labels"])
            await registry.write_labels({device_id: after}, conn)
            await audit.record(
                "device.label",
                principal.actor,
                "device",
                device_id,
                before={"labels": before},
                after={"labels": after},
                scope_path=located.path,
                at=now,
                using_db=conn,
            )
    return located.device


@dataclass(frozen=True, slots=True)
class Move:
    """Where a device went: the site code and window number it is at now."""

    device: Device
    site: str
    window: str | None


async def move(
    principal: Principal, device_id: str, body: Mapping[str, object], now: datetime
) -> Move:
    """Place the device at ``body["site"]`` (a code), at ``body["window"]`` (a number) or none."""
    site_code, window_number = _move_body(body)
    async with in_transaction() as conn:
        located = await locate(principal, device_id, conn)
        _not_retired(located, "moved")
        target = await _target_site(principal, site_code, conn)
        window_id = await _window(target, window_number, conn) if window_number else None
        before = await _placement_view(located.device, located.site_code, conn)
        located.device.site_id, located.device.window_id = int(target["id"]), window_id
        await located.device.save(using_db=conn, update_fields=["site_id", "window_id"])
        after = {"site": site_code, "window": window_number}
        if after != before:
            await audit.record(
                "device.move",
                principal.actor,
                "device",
                device_id,
                before=before,
                after=after,
                scope_path=_common_ancestor(located.path, target["node__path"]),
                at=now,
                using_db=conn,
            )
    return Move(located.device, site_code, window_number)


def _move_body(body: Mapping[str, object]) -> tuple[str, str | None]:
    unknown = sorted(str(name) for name in body if name not in {"site", "window"})
    if unknown:
        msg = f"unknown field(s) {', '.join(unknown)}; a move takes site and window"
        raise DeviceChangeError(msg)
    site, window = body.get("site"), body.get("window")
    if not isinstance(site, str) or not NAME.fullmatch(site):
        msg = "site: the code of the site to move the device to is required"
        raise DeviceChangeError(msg)
    if window is not None and (not isinstance(window, str) or not NUMBER.fullmatch(window)):
        msg = "window: a window number such as '01', or null for none"
        raise DeviceChangeError(msg)
    return site, window


async def _target_site(principal: Principal, code: str, conn: BaseDBAsyncClient) -> dict[str, Any]:
    rows = await Site.filter(code=code).using_db(conn).values("id", "code", "node__path")
    site = rows[0] if rows else None
    if site is not None and principal.sees(site["node__path"]):
        return site
    if principal.scope_path is not None:
        msg = f"site: no site {code!r} within this token's scope ({principal.scope_code})"
        raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg)
    msg = f"site: no site {code!r}"
    raise DeviceChangeError(msg)


async def _window(site: Mapping[str, Any], number: str, conn: BaseDBAsyncClient) -> int:
    window = await ServiceWindow.filter(site_id=site["id"], number=number).using_db(conn).first()
    if window is None:
        msg = f"window: site {site['code']} has no window {number!r}"
        raise DeviceChangeError(msg)
    return int(window.id)


async def _placement_view(
    device: Device, site_code: str | None, conn: BaseDBAsyncClient
) -> dict[str, Any]:
    window = None
    if device.window_id is not None:
        found = await ServiceWindow.filter(id=device.window_id).using_db(conn).first()
        window = found.number if found else None
    return {"site": site_code, "window": window}


def _common_ancestor(first: str | None, second: str) -> str | None:
    """The deepest node both paths lie in (None: only the whole tree holds both).

    The audit entry of a move names both sites, so it is for the auditors whose scope holds
    both: a town's auditor must not read the neighbouring town's site in it.
    """
    if first is None:
        return None  # from nowhere: only the whole tree saw the device before
    common: list[str] = []
    for mine, theirs in zip(jurisdiction.codes(first), jurisdiction.codes(second), strict=False):
        if mine != theirs:
            break
        common.append(mine)
    return jurisdiction.SEPARATOR + "".join(f"{code}/" for code in common) if common else None


async def retire(
    principal: Principal | None,
    device_id: str,
    note: object,
    now: datetime,
    *,
    actor: Actor | None = None,
) -> Device:
    """Take the device out of the fleet for good (``lifecycle.advance`` says when it may).

    ``principal`` None: someone on the database (``termfleet provision retire``), named by
    ``actor``, with no scope to keep to.
    """
    who = principal.actor if principal is not None else actor
    if who is None:
        msg = "retire needs a principal or an actor"
        raise ValueError(msg)
    if note is not None and (
        not isinstance(note, str)
        or len(note) > MAX_NOTE
        or any(not char.isprintable() and char not in "\n\t" for char in note)
    ):
        msg = f"note: printable text of up to {MAX_NOTE} characters, or leave it out"
        raise DeviceChangeError(msg)
    async with in_transaction() as conn:
        located = await locate(principal, device_id, conn)
        before = located.device.lifecycle
        try:
            after = advance(Lifecycle(before), Lifecycle.RETIRED)
        except LifecycleError as exc:
            msg = f"device {device_id}: {exc}"
            raise DeviceConflictError(msg) from None
        located.device.lifecycle = after.value
        await located.device.save(using_db=conn, update_fields=["lifecycle"])
        await audit.record(
            "device.retire",
            who,
            "device",
            device_id,
            before={"lifecycle": before},
            after={"lifecycle": after.value},
            note=note or "",
            scope_path=located.path,
            at=now,
            using_db=conn,
        )
    return located.device
