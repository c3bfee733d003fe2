"""Commissioning: a terminal's self-test results, and the sign-off that puts it in service.

The agent reports a self-test after enrolling and on demand (``edge.agent.commissioning``);
the ingest hands each result here. An enrolled terminal that reported one is commissioning;
an administrator or technician accepts it into service (``termfleet provision accept``) when
every check passed, or with a note saying why not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from edge.protocol import CommandResult
from edge.protocol.commands import CHECK_PASSED

from . import audit
from .admin_errors import ConflictError, NotFoundError
from .auth import Actor
from .db.models import Device
from .lifecycle import Lifecycle, LifecycleError, advance


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


async def accept(actor: Actor, device_id: str, *, note: str, force: bool, now: datetime) -> Device:
    """Put a commissioning terminal in service: every check passed, or ``force`` with a note."""
    async with in_transaction() as conn:
        device = await Device.select_for_update().using_db(conn).get_or_none(device_id=device_id)
        if device is None:
            msg = f"no device {device_id!r}"
            raise NotFoundError(msg)
        if not device.self_test:
            msg = f"{device_id} has reported no self-test yet; is its agent running?"
            raise ConflictError(msg)
        failed = failed_checks(device.self_test)
        if failed and not (force and note):
            msg = f"{device_id} failed {', '.join(failed)}; fix them, or accept with --force --note"
            raise ConflictError(msg)
        try:
            device.lifecycle = advance(Lifecycle(device.lifecycle), Lifecycle.IN_SERVICE)
        except LifecycleError as exc:
            msg = f"{device_id}: {exc}"
            raise ConflictError(msg) from None
        await device.save(using_db=conn, update_fields=["lifecycle"])
        await audit.record(
            "device.accept",
            actor,
            "device",
            device_id,
            before={"lifecycle": Lifecycle.COMMISSIONING.value},
            after={"lifecycle": Lifecycle.IN_SERVICE.value, "failed_checks": failed},
            note=note,
            at=now,
            using_db=conn,
        )
    return device
