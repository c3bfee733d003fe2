"""Administrators' actions on a terminal's membership: retire it, allow it to enroll again.

Each changes the database (with its audit entry) first and then the broker: the database is
the source of truth, and reconcile repeats on the broker whatever a crash in between left
undone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from control_plane import audit, device_admin
from control_plane.admin_errors import ConflictError, NotFoundError
from control_plane.auth import Actor
from control_plane.db.models import Device
from control_plane.device_admin import DeviceChangeError, DeviceNotFoundError
from control_plane.lifecycle import Lifecycle
from edge import mqtt
from edge.protocol import Channel, topics

from . import dynsec
from .broker_admin import BrokerAdmin
from .reconcile import Desired
from .settings import ProvisioningSettings

log = logging.getLogger(__name__)

GONE = frozenset({"Client not found", "Role not found"})
"""Answers to a revocation that mean it was done before."""
DEFAULT_REENROLL_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Retired:
    device_id: str
    kick_s: float
    """From the command to the broker's answer: the session is gone by then."""


async def _locked(device_id: str, conn: BaseDBAsyncClient) -> Device:
    device = await Device.select_for_update().using_db(conn).get_or_none(device_id=device_id)
    if device is None:
        msg = f"no device {device_id!r}"
        raise NotFoundError(msg)
    return device


async def retire(  # noqa: PLR0913 - who, what, the two connections, when, why
    actor: Actor,
    device_id: str,
    *,
    admin: BrokerAdmin,
    control_plane: mqtt.Connection,
    now: datetime,
    note: str = "",
) -> Retired:
    """Retire for good: revoke its login (which kicks its session) and clear its presence."""
    try:
        await device_admin.retire(None, device_id, note or None, now, actor=actor)
    except DeviceNotFoundError as exc:
        raise NotFoundError(exc.message) from None
    except DeviceChangeError as exc:
        raise ConflictError(exc.message) from None
    return Retired(device_id, await revoke_on_broker(device_id, admin, control_plane))


async def revoke_on_broker(
    device_id: str, admin: BrokerAdmin, control_plane: mqtt.Connection
) -> float:
    """Revoke a retired terminal's login and role; the seconds the broker took to answer."""
    started = time.monotonic()
    await admin.run(
        dynsec.revoke_commands(device_id, dynsec.device_role_name(device_id)), tolerate=GONE
    )
    kick_s = time.monotonic() - started
    # A kicked session leaves no last will: clear the retained presence, or every new
    # subscriber would still read "online".
    await control_plane.publish(
        mqtt.Outgoing(topics.uplink(device_id, Channel.PRESENCE), b"", retain=True)
    )
    return kick_s


async def allow_reenroll(  # noqa: PLR0913 - who, what, the admin, when, how long, why
    actor: Actor,
    device_id: str,
    *,
    admin: BrokerAdmin,
    now: datetime,
    window: timedelta = DEFAULT_REENROLL_WINDOW,
    note: str = "",
) -> datetime:
    """Let the terminal enroll once more within ``window``: after a factory reset, a new disk.

    Its current login is deleted at once, so whatever holds the old password is out for good.
    """
    until = now + window
    async with in_transaction() as conn:
        device = await _locked(device_id, conn)
        if device.lifecycle == Lifecycle.RETIRED:
            msg = f"device {device_id} is retired: it cannot enroll again"
            raise ConflictError(msg)
        had_login = device.broker_generation > 0
        device.reenroll_until = until
        if had_login:
            # A generation nobody holds: should the terminal never come back, reconcile
            # re-creates its login with a password no old disk knows.
            device.broker_generation += 1
        await device.save(using_db=conn, update_fields=["reenroll_until", "broker_generation"])
        await audit.record(
            "device.reenroll_allow",
            actor,
            "device",
            device_id,
            after={"reenroll_until": until.isoformat()},
            note=note,
            at=now,
            using_db=conn,
        )
    if had_login:
        # Deleted, not disabled: a disabled login with a valid client certificate still gets in.
        await admin.run([{"command": "deleteClient", "username": device_id}], tolerate=GONE)
    return until


async def desired_state(settings: ProvisioningSettings) -> Desired:
    """The broker's logins and roles as the database says they should be."""
    clients = dynsec.service_clients(settings.password)
    roles = list(dynsec.SERVICE_ROLES)
    retired: set[str] = set()
    rows = await Device.filter(broker_generation__gt=0).values_list(
        "device_id", "lifecycle", "broker_generation", "reenroll_until"
    )
    now = datetime.now().astimezone()
    for device_id, lifecycle, generation, reenroll_until in rows:
        # A device waiting to enroll again has no login on purpose, until it enrolls or its
        # window passes (then it gets one of a generation nobody holds).
        if lifecycle == Lifecycle.RETIRED:
            retired.add(device_id)
            continue
        if reenroll_until is not None and reenroll_until > now:
            continue
        if dynsec.is_reserved(device_id):
            # Only a database from before imports refused such ids can hold one with a login:
            # it gets none (it could pass for a service's), and the rest are reconciled.
            log.error("device %s gets no broker login: its id is reserved for services", device_id)
            continue
        clients.append(dynsec.device_client(device_id, settings.password(device_id, generation)))
        roles.append(dynsec.device_role(device_id))
    return Desired(clients=clients, roles=roles, retired=retired)


async def replace(
    actor: Actor, old_id: str, new_id: str, *, now: datetime
) -> tuple[int, int | None]:
    """Give ``new_id`` the place of ``old_id``: its site and window (a new pad at a window).

    The old one keeps its site but no window. Returns the (site id, window id) taken.
    """
    if old_id == new_id:
        msg = "a terminal cannot replace itself"
        raise ConflictError(msg)
    async with in_transaction() as conn:
        old = await _locked(old_id, conn)
        new = await _locked(new_id, conn)
        if new.lifecycle == Lifecycle.RETIRED:
            msg = f"device {new_id} is retired: it cannot take another's place"
            raise ConflictError(msg)
        if old.site_id is None:
            msg = f"device {old_id} is placed nowhere: there is no place to take"
            raise ConflictError(msg)
        before = {"old": [old.site_id, old.window_id], "new": [new.site_id, new.window_id]}
        new.site_id, new.window_id = old.site_id, old.window_id
        old.window_id = None
        await old.save(using_db=conn, update_fields=["window_id"])
        await new.save(using_db=conn, update_fields=["site_id", "window_id"])
        await audit.record(
            "device.replace",
            actor,
            "device",
            new_id,
            before=before,
            after={"replaces": old_id, "site_id": new.site_id, "window_id": new.window_id},
            at=now,
            using_db=conn,
        )
    return new.site_id, new.window_id
