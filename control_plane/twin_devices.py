"""Each device's twin in the database: desired config issued, reports kept, counts per layer.

``reconcile`` merges the layers for devices (``control_plane.twin.desired_for``) and issues a new
desired version where the values changed (``issue``); it covers layer changes and devices that
were enrolled, moved or re-labelled alike, because it starts from what the database says now.
``record_reported`` keeps an agent's ``ReportedConfig``. Publishing is ``twin_publish``'s part.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from edge.config_keys import with_defaults
from edge.protocol import DesiredConfig, ReportedConfig
from edge.protocol.config import ApplyStatus
from edge.protocol.presence import DeviceKind

from .admin_errors import NotFoundError
from .auth import Principal
from .db.models import Device
from .db.twin_models import DeviceTwin
from .jurisdiction import codes
from .lifecycle import Lifecycle
from .twin import (
    DeviceConfigState,
    DeviceContext,
    Issued,
    Layer,
    LayerCounts,
    affected_devices,
    desired_for,
    issue,
)
from .twin import layer_counts as count_layers
from .twin.layers import LAYER_ID
from .twin_store import current_revision, load_layers

log = logging.getLogger(__name__)

WRITE_BATCH = 500
"""Devices written per statement when a layer change reaches many."""


async def device_contexts(device_ids: Collection[str] | None = None) -> list[DeviceContext]:
    """What the merge needs of each device in service (all of them when ``device_ids`` is None).

    Retired devices are left out: nothing is issued to them any more.
    """
    query = Device.exclude(lifecycle=Lifecycle.RETIRED)
    if device_ids is not None:
        query = query.filter(device_id__in=list(device_ids))
    rows = await query.values("device_id", "kind", "labels", "site__node__path")
    return [
        DeviceContext(
            row["device_id"],
            DeviceKind(row["kind"]),
            tuple(codes(row["site__node__path"])) if row["site__node__path"] else (),
            dict(row["labels"] or {}),
        )
        for row in rows
    ]


def _issued(row: DeviceTwin) -> Issued | None:
    if not row.desired_version and not row.reported_version:
        return None
    # A device that applied a version newer than ours (a database restored from a backup) would
    # ignore every version up to it: issue above what it reported, too.
    version = max(row.desired_version, row.reported_version)
    return Issued(version, row.desired_values, row.desired_sources, row.layer_since)


@dataclass(frozen=True, slots=True)
class Reconciled:
    issued: int
    """Devices given a new desired version."""
    changed: int
    """Devices whose stored twin changed (a new version, or only where its values come from)."""


async def reconcile(device_ids: Collection[str] | None, now: datetime) -> Reconciled:
    """Issue new desired versions to the devices (all: None) whose merged values changed."""
    layers = [stored.layer for stored in await load_layers() if stored.layer is not None]
    devices = await device_contexts(device_ids)
    revision = await current_revision()
    issued = changed = 0
    async with in_transaction() as conn:
        query = DeviceTwin.all().using_db(conn)
        if device_ids is not None:
            query = query.filter(device_id__in=[d.device_id for d in devices])
        rows = {row.device_id: row for row in await query}
        new_rows: list[DeviceTwin] = []
        for device in devices:
            row = rows.get(device.device_id)
            last = _issued(row) if row else None
            desired = desired_for(device, layers)
            if (row is None or not row.desired_version) and not desired.values:
                continue  # nothing reaches it and nothing was sent: it runs on defaults
            now_issued = issue(last, desired, revision)
            if row is not None and _same(row, now_issued):
                continue
            fields = _desired_fields(now_issued, now)
            changed += 1
            if row is None or now_issued.version != row.desired_version:
                issued += 1
            if row is None:
                new_rows.append(DeviceTwin(device_id=device.device_id, **fields))
            else:
                await DeviceTwin.filter(device_id=row.device_id).using_db(conn).update(**fields)
        for start in range(0, len(new_rows), WRITE_BATCH):
            await DeviceTwin.bulk_create(new_rows[start : start + WRITE_BATCH], using_db=conn)
    return Reconciled(issued, changed)


def _same(row: DeviceTwin, issued: Issued) -> bool:
    return (
        row.desired_version == issued.version
        and row.desired_sources == dict(issued.sources)
        and row.layer_since == dict(issued.layer_since)
    )


def _desired_fields(issued: Issued, now: datetime) -> dict[str, Any]:
    return {
        "desired_version": issued.version,
        "desired_values": {
            k: list(v) if isinstance(v, tuple) else v for k, v in issued.values.items()
        },
        "desired_sources": dict(issued.sources),
        "layer_since": dict(issued.layer_since),
        "issued_at": now,
    }


def affected(
    before: Layer | None, after: Layer | None, devices: Iterable[DeviceContext]
) -> set[str]:
    """Devices a layer change may move: those the old or the new layer takes part in."""
    listed = list(devices)
    ids: set[str] = set()
    for layer in (before, after):
        if layer is not None:
            ids.update(affected_devices(layer, listed))
    return ids


# --- publishing's bookkeeping -----------------------------------------------------------------


async def to_publish(*, unconfirmed_too: bool) -> list[DeviceTwin]:
    """Twins whose desired version the broker has not been handed yet.

    With ``unconfirmed_too``, also those the device has not reported applying: after a new
    connection to the broker, a retained message published just before the old one broke may
    never have reached it.
    """
    pending = DeviceTwin.filter(desired_version__gt=F("published_version"))
    rows = await pending
    if unconfirmed_too:
        seen = {row.device_id for row in rows}
        unconfirmed = DeviceTwin.filter(desired_version__gt=F("reported_version")).filter(
            desired_version__gt=0
        )
        rows += [row for row in await unconfirmed if row.device_id not in seen]
    return rows


def desired_message(row: DeviceTwin) -> DesiredConfig:
    return DesiredConfig(
        version=row.desired_version, values=dict(row.desired_values), issued_at=row.issued_at
    )


async def mark_published(rows: Iterable[DeviceTwin]) -> None:
    by_version: dict[int, list[str]] = {}
    for row in rows:
        by_version.setdefault(row.desired_version, []).append(row.device_id)
    for version, ids in by_version.items():
        for start in range(0, len(ids), WRITE_BATCH):
            chunk = ids[start : start + WRITE_BATCH]
            # Not past a version issued meanwhile: that one is still to be published.
            await DeviceTwin.filter(device_id__in=chunk, desired_version=version).update(
                published_version=version
            )


# --- reports ----------------------------------------------------------------------------------


async def record_reported(device_id: str, report: ReportedConfig, now: datetime) -> bool:
    """Keep a device's report; True when it changed what is stored.

    An older version than the stored one is ignored (a retained report read again, a late
    one); the same version may change its status (failed, then applied after a retry).
    """
    fields: dict[str, Any] = {
        "reported_version": report.version,
        "reported_status": report.status.value,
        "reported_error": report.error,
        "reported_values": dict(report.values),
        "reported_at": report.at,
        "received_at": now,
    }
    for _ in range(2):  # a second try when a reconcile created the row in between
        row = await DeviceTwin.get_or_none(device_id=device_id)
        if row is None:
            try:
                await DeviceTwin.create(device_id=device_id, **fields)
            except IntegrityError:
                continue
            return True
        if report.version < row.reported_version or (
            report.version == row.reported_version
            and report.status.value == row.reported_status
            and report.error == row.reported_error
        ):
            return False
        await DeviceTwin.filter(device_id=device_id).update(**fields)
        return True
    return False


# --- views and counts -------------------------------------------------------------------------


async def layer_counts() -> dict[str, LayerCounts]:
    """Targeted, applied and failed devices per layer, over the devices in service."""
    retired = set(
        await Device.filter(lifecycle=Lifecycle.RETIRED).values_list("device_id", flat=True)
    )
    rows = await DeviceTwin.filter(desired_version__gt=0).values(
        "device_id", "desired_version", "desired_values", "desired_sources", "layer_since",
        "reported_version", "reported_status",
    )  # fmt: skip
    return count_layers(
        DeviceConfigState(
            Issued(
                row["desired_version"],
                row["desired_values"],
                row["desired_sources"],
                row["layer_since"],
            ),
            row["reported_version"],
            ApplyStatus(row["reported_status"] or "unknown"),
        )
        for row in rows
        if row["device_id"] not in retired
    )


def counts_view(counts: Mapping[str, LayerCounts], layer_id: str) -> dict[str, int]:
    found = counts.get(layer_id, LayerCounts())
    return {
        "targeted": found.targeted,
        "applied": found.applied,
        "failed": found.failed,
        "pending": found.pending,
    }


async def device_config(principal: Principal | None, device_id: str) -> dict[str, Any]:
    """A device's desired config (with each key's layer), its report, and what it runs with.

    A device beyond ``principal``'s scope is refused as one that does not exist.
    """
    rows = []
    if LAYER_ID.fullmatch(device_id):
        rows = await Device.filter(device_id=device_id).values(
            "device_id", "kind", "site__node__path"
        )
    if not rows or (principal is not None and not principal.sees(rows[0]["site__node__path"])):
        msg = f"no device {device_id!r}"
        raise NotFoundError(msg)
    kind = DeviceKind(rows[0]["kind"])
    twin = await DeviceTwin.get_or_none(device_id=device_id)
    desired = dict(twin.desired_values) if twin else {}
    return {
        "device_id": device_id,
        "kind": kind.value,
        "state": _state(twin),
        "desired": {
            "version": twin.desired_version if twin else 0,
            "values": desired,
            "sources": dict(twin.desired_sources) if twin else {},
            "issued_at": _iso(twin.issued_at if twin else None),
            "published": bool(twin and twin.published_version >= twin.desired_version),
        },
        "reported": {
            "version": twin.reported_version if twin else 0,
            "status": (twin.reported_status if twin else "") or "none",
            "error": twin.reported_error if twin else "",
            "values": dict(twin.reported_values) if twin else {},
            "at": _iso(twin.reported_at if twin else None),
            "received_at": _iso(twin.received_at if twin else None),
        },
        "effective": with_defaults(desired, kind),
    }


def _state(twin: DeviceTwin | None) -> str:
    """The state of the version issued last: applied, failed, pending, or none issued."""
    if twin is None or not twin.desired_version:
        return "none"
    settled = twin.reported_status in {ApplyStatus.APPLIED, ApplyStatus.FAILED}
    return (
        twin.reported_status
        if settled and twin.reported_version >= twin.desired_version
        else "pending"
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None
