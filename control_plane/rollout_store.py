"""Rollout rows to the planner's values and back, and devices' package reports.

The executor keeps every rollout in memory (``Tracked``) and writes through this module: the
rollout row when its phase or wave changes, device rows only for the devices a step moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from tortoise.transactions import in_transaction

from edge.protocol import PackageKind, PackageState

from .db.rollout_models import DevicePackage, Rollout, RolloutDevice
from .rollouts import (
    DeviceProgress,
    DeviceStep,
    InstallPolicy,
    PauseReason,
    RolloutPhase,
    RolloutSpec,
    RolloutState,
)
from .rollup_sql import column_value, placeholders


@dataclass
class Tracked:
    """One rollout as the executor holds it: the row's fixed facts, the state, the devices."""

    row: Rollout
    state: RolloutState
    devices: dict[str, DeviceProgress]
    notes: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Per device, the (reason, detail) of its last failure or refusal, for ``show``."""

    @property
    def rollout_id(self) -> str:
        return self.row.id

    @property
    def kind(self) -> PackageKind:
        return PackageKind(self.row.package_kind)

    @property
    def final(self) -> bool:
        return self.state.phase in {RolloutPhase.COMPLETED, RolloutPhase.ROLLED_BACK} or (
            self.state.phase is RolloutPhase.CANCELLED
            and not any(p.step is DeviceStep.INSTALLING for p in self.devices.values())
        )

    def wave_of(self, device_id: str) -> int:
        for index, members in enumerate(self.state.members):
            if device_id in members:
                return index
        msg = f"{device_id} is not in rollout {self.rollout_id}"
        raise KeyError(msg)


def spec_of(row: Rollout, device_ids: Iterable[str]) -> RolloutSpec:
    return RolloutSpec(
        rollout_id=row.id,
        target_version=str(row.target_version),
        device_ids=tuple(sorted(device_ids)),
        previous_version=None if row.previous_version is None else str(row.previous_version),
        waves=tuple(Fraction(share) for share in row.waves),
        success_threshold=Fraction(row.success_threshold),
        failure_threshold=Fraction(row.failure_threshold),
        min_finished=row.min_finished,
        device_timeout=timedelta(seconds=row.device_timeout_s),
        install_policy=InstallPolicy(row.install_policy),
        allow_older=row.allow_older,
    )


def state_of(row: Rollout, spec: RolloutSpec) -> RolloutState:
    return RolloutState(
        spec=spec,
        phase=RolloutPhase(row.phase),
        wave=row.wave,
        pause_reason=None if row.pause_reason is None else PauseReason(row.pause_reason),
        waived_wave=row.waived_wave,
    )


def progress_of(row: RolloutDevice) -> DeviceProgress:
    return DeviceProgress(
        step=DeviceStep(row.step),
        step_since=row.step_since,
        installed_version=None if row.installed_version is None else str(row.installed_version),
        attempts=row.attempts,
    )


async def load_all() -> list[Tracked]:
    """Every rollout with its devices, oldest first."""
    rows = await Rollout.all().order_by("created_at", "id")
    devices: dict[str, list[RolloutDevice]] = {row.id: [] for row in rows}
    for device in await RolloutDevice.all():
        devices.setdefault(device.rollout_id, []).append(device)
    tracked = []
    for row in rows:
        members = devices[row.id]
        spec = spec_of(row, (d.device_id for d in members))
        tracked.append(
            Tracked(
                row=row,
                state=state_of(row, spec),
                devices={d.device_id: progress_of(d) for d in members},
                notes={d.device_id: (d.reason, d.detail) for d in members if d.reason},
            )
        )
    return tracked


def sync_row(tracked: Tracked, now: datetime) -> Rollout:
    """The rollout row with the state's phase, wave and pause, changed at ``now``."""
    state, row = tracked.state, tracked.row
    row.phase = state.phase.value
    row.wave = state.wave
    row.pause_reason = None if state.pause_reason is None else state.pause_reason.value
    row.waived_wave = state.waived_wave
    row.updated_at = now
    return row


async def insert(tracked: Tracked) -> None:
    """A new rollout and its devices (as ``tracked`` has them now), in one transaction."""
    wave_of = {
        device: wave for wave, members in enumerate(tracked.state.members) for device in members
    }
    async with in_transaction() as conn:
        await sync_row(tracked, tracked.row.created_at).save(force_create=True)
        dialect = conn.capabilities.dialect
        columns = ("rollout_id", "device_id", "wave", *_DEVICE_FIELDS)
        sql = (
            f"INSERT INTO rollout_device ({', '.join(columns)})"  # noqa: S608 - fixed names only
            f" VALUES ({', '.join(placeholders(dialect, len(columns)))})"
        )
        rows = [
            [
                tracked.rollout_id,
                device_id,
                wave_of[device_id],
                *_fields(tracked, device_id, dialect),
            ]
            for device_id in tracked.devices
        ]
        await conn.execute_many(sql, rows)


async def save(tracked: Tracked, moved: Iterable[str], now: datetime) -> None:
    """The rollout row as the state has it, and the rows of the devices in ``moved``.

    Device rows are written with one prepared UPDATE per row (``execute_many``): a wave of
    10,000 notified devices takes a fraction of a second, where model instances took seconds.
    """
    row = sync_row(tracked, now)
    async with in_transaction() as conn:
        await row.save()
        ids = sorted(set(moved))
        if not ids:
            return
        dialect = conn.capabilities.dialect
        marks = placeholders(dialect, len(_DEVICE_FIELDS) + 2)
        assignments = ", ".join(
            f"{name} = {mark}" for name, mark in zip(_DEVICE_FIELDS, marks, strict=False)
        )
        sql = (
            f"UPDATE rollout_device SET {assignments}"  # noqa: S608 - fixed names only
            f" WHERE rollout_id = {marks[-2]} AND device_id = {marks[-1]}"
        )
        await conn.execute_many(
            sql, [[*_fields(tracked, device_id, dialect), row.id, device_id] for device_id in ids]
        )


_DEVICE_FIELDS = ("step", "step_since", "installed_version", "attempts", "reason", "detail")


def _fields(tracked: Tracked, device_id: str, dialect: str) -> list[object]:
    """A device's ``_DEVICE_FIELDS`` values as its row stores them."""
    progress = tracked.devices[device_id]
    reason, detail = tracked.notes.get(device_id, ("", ""))
    return [
        progress.step.value,
        column_value(dialect, progress.step_since),
        _version(progress.installed_version),
        progress.attempts,
        reason[:64],
        detail[:255],
    ]


def _version(text: str | None) -> int | None:
    return None if text is None else int(text)


async def record_report(
    device_id: str, packages: Iterable[PackageState], received_at: datetime
) -> None:
    """Keep a device's latest report per package (names it no longer reports are left)."""
    for state in packages:
        if not state.name:
            continue
        values = {
            "installed": state.installed,
            "previous": state.previous,
            "target": state.target,
            "rollout_id": state.rollout_id[:64],
            "phase": state.phase.value,
            "bytes_done": state.bytes_done,
            "bytes_total": state.bytes_total,
            "reason": state.reason[:64],
            "detail": state.detail[:255],
            "reported_at": received_at,
        }
        await DevicePackage.update_or_create(defaults=values, device_id=device_id, name=state.name)


async def installed_versions(name: str) -> Mapping[str, int]:
    """Each device's installed version of package ``name``, as last reported."""
    rows = await DevicePackage.filter(name=name, installed__not_isnull=True).values_list(
        "device_id", "installed"
    )
    return dict(rows)
