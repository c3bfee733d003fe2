"""Commissioning: a terminal's self-test results, and the sign-off that puts it in service.

The agent reports a self-test after enrolling and on demand (``edge.agent.commissioning``);
the ingest hands each result here. An enrolled terminal that reported one is commissioning;
an administrator or technician accepts it into service (``termfleet provision accept``) when
every check passed, or with a note saying why not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edge.protocol import CommandResult
from edge.protocol.commands import CHECK_PASSED

from . import audit
from .admin_errors import ConflictError, NotFoundError
from .auth import Actor, Principal
from .db.models import Device, ServiceWindow
from .device_admin import DeviceNotFoundError, Located, locate
from .lifecycle import Lifecycle, LifecycleError, advance

NO_SELF_TEST = "no_self_test"
CHECKS_FAILED = "checks_failed"
NOT_COMMISSIONING = "not_commissioning"
"""ConflictError codes of ``accept``: what stands between the terminal and service."""


def self_test_view(result: CommandResult, received_at: datetime) -> dict[str, Any]:
    return {
        "command_id": result.command_id,
        "status": result.status.value,
        "detail": result.detail,
        "checks": dict(result.checks),
        "at": result.at.isoformat() if result.at else None,
        "received_at": received_at.isoformat(),
    }


def failed_checks(self_test: dict[str, Any]) -> list[str]:
    checks = self_test.get("checks") or {}
    return sorted(name for name, outcome in checks.items() if outcome != CHECK_PASSED)


async def record_self_test(device_id: str, result: CommandResult, received_at: datetime) -> bool:
    """Keep the latest result; an enrolled terminal becomes commissioning. False: no such device."""
    async with in_transaction() as conn:
        device = await Device.select_for_update().using_db(conn).get_or_none(device_id=device_id)
        if device is None:
            return False
        device.self_test = self_test_view(result, received_at)
        fields = ["self_test"]
        if device.lifecycle == Lifecycle.ENROLLED:
            device.lifecycle = Lifecycle.COMMISSIONING
            fields.append("lifecycle")
            await audit.record(
                "device.commission",
                Actor(None, f"device:{device_id}"),
                "device",
                device_id,
                before={"lifecycle": Lifecycle.ENROLLED.value},
                after={
                    "lifecycle": Lifecycle.COMMISSIONING.value,
                    "self_test": result.status.value,
                },
                at=received_at,
                using_db=conn,
            )
        await device.save(using_db=conn, update_fields=fields)
    return True


async def status(device_id: str, *, seen_by: Principal | None = None) -> dict[str, Any]:
    """A terminal's enrollment and last self-test (``termfleet provision status``, the API).

    ``seen_by``: the asking token, whose scope must reach the device (None: at the database).
    """
    async with in_transaction() as conn:
        located = await _located(device_id, seen_by, conn)
        device = located.device
        window = None
        if device.window_id is not None:
            window = await ServiceWindow.filter(id=device.window_id).using_db(conn).first()
    return {
        "device_id": device.device_id,
        "kind": device.kind,
        "serial": device.serial,
        "lifecycle": device.lifecycle,
        "site": located.site_code,
        "window": window.number if window else None,
        "enrolled_at": device.enrolled_at.isoformat() if device.enrolled_at else None,
        "credential_generation": device.broker_generation,
        "presence": device.presence,
        "self_test": device.self_test or None,
        "failed_checks": failed_checks(device.self_test or {}),
    }


async def _located(device_id: str, seen_by: Principal | None, conn: BaseDBAsyncClient) -> Located:
    try:
        return await locate(seen_by, device_id, conn)
    except DeviceNotFoundError as exc:
        raise NotFoundError(exc.message) from None


async def accept(  # noqa: PLR0913 - who, what, why, whether, when, and the scope
    actor: Actor,
    device_id: str,
    *,
    note: str,
    force: bool,
    now: datetime,
    seen_by: Principal | None = None,
) -> Device:
    """Put a commissioning terminal in service: every check passed, or ``force`` with a note.

    ``seen_by``: the asking token, whose scope must reach the device (None: at the database).
    """
    async with in_transaction() as conn:
        located = await _located(device_id, seen_by, conn)
        device = located.device
        if not device.self_test:
            msg = f"{device_id} has reported no self-test yet; is its agent running?"
            raise ConflictError(msg, NO_SELF_TEST)
        try:
            in_service = advance(Lifecycle(device.lifecycle), Lifecycle.IN_SERVICE)
        except LifecycleError as exc:
            msg = f"{device_id}: {exc}"
            raise ConflictError(msg, NOT_COMMISSIONING) from None
        failed = failed_checks(device.self_test)
        if failed and not (force and note):
            msg = (
                f"{device_id} failed {', '.join(failed)}; fix them, or force the acceptance"
                " with a note saying why (--force --note)"
            )
            raise ConflictError(msg, CHECKS_FAILED)
        device.lifecycle = in_service
        await device.save(using_db=conn, update_fields=["lifecycle"])
        await audit.record(
            "device.accept",
            actor,
            "device",
            device_id,
            before={"lifecycle": Lifecycle.COMMISSIONING.value},
            after={"lifecycle": Lifecycle.IN_SERVICE.value, "failed_checks": failed},
            note=note,
            scope_path=located.path,
            at=now,
            using_db=conn,
        )
    return device
