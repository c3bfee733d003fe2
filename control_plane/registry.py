"""Device rows in the database: load the live state at start, write it when it changes, list it."""

from __future__ import annotations

import logging

import msgspec

from edge.protocol import DeviceKind, Heartbeat, PresenceState
from edge.schedule import OpeningHours, ScheduleError

from .db.models import Device, Site
from .fleet import DeviceState
from .sites import opening_hours

log = logging.getLogger(__name__)


async def load_states() -> list[DeviceState]:
    return [
        DeviceState(
            device_id=row.device_id,
            kind=DeviceKind(row.kind),
            presence=PresenceState(row.presence),
            session=row.presence_session,
            agent_version=row.agent_version,
            last_seen=row.last_seen,
            health=msgspec.convert(row.last_health, Heartbeat) if row.last_health else None,
        )
        for row in await Device.all()
    ]


async def save_state(state: DeviceState) -> None:
    """Write one device's state (insert or update)."""
    await Device.update_or_create(
        device_id=state.device_id,
        defaults={
            "kind": state.kind.value,
            "presence": state.presence.value,
            "presence_session": state.session,
            "agent_version": state.agent_version,
            "last_seen": state.last_seen,
            "last_health": msgspec.to_builtins(state.health) if state.health else None,
        },
    )


async def load_placements() -> dict[str, str]:
    """Every placed device's site code, by device id."""
    rows = await Device.filter(site_id__not_isnull=True).values_list("device_id", "site__code")
    return {str(device_id): str(site) for device_id, site in rows}


async def load_site_paths() -> dict[str, str]:
    """Every site's jurisdiction path (its node's), by site code."""
    rows = await Site.all().values_list("code", "node__path")
    return {str(code): str(path) for code, path in rows}


async def load_opening_hours() -> dict[str, OpeningHours]:
    """Every site's opening hours by site code.

    A site whose hours cannot be read is left out (its offline devices then count as
    unexpected) and logged.
    """
    hours: dict[str, OpeningHours] = {}
    for site in await Site.all():
        try:
            hours[site.code] = opening_hours(site)
        except (ScheduleError, ValueError) as exc:
            log.warning("site %s: opening hours %r unreadable: %s", site.code, site.hours, exc)
    return hours
