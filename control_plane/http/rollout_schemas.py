"""The shapes of the rollouts API, for its OpenAPI document (``rollout_views`` makes the answers).

The body's limits are ``rollout_body``'s own constants; it checks every value itself and names
the field in its refusals, these structs only describe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from control_plane import rollout_body
from control_plane.device_labels import MAX_LABELS
from control_plane.rollouts import DeviceStep, InstallPolicy, RolloutPhase
from edge.content.manifest import NAME_PATTERN
from edge.protocol.common import ID_PATTERN

from .request_schemas import DeviceId, NodeCode, Paged, Parameters, exactly
from .schemas import Cursor, Schema

Percent = Annotated[
    str | float, msgspec.Meta(description='per cent, as a number or a string: 10, "0.5"')
]
RolloutId = Annotated[str, msgspec.Meta(pattern=exactly(ID_PATTERN), description="a rollout id")]
PackageName = Annotated[str, msgspec.Meta(pattern=exactly(NAME_PATTERN))]
PackageKindName = Annotated[str, msgspec.Meta(pattern=r"^(content|catalog|firmware)$")]


# --- what the routes take -----------------------------------------------------------------------


class PackageByName(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: PackageName
    version: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    kind: Annotated[
        PackageKindName | None, msgspec.Meta(description="needed when kinds share the name")
    ] = None


class TargetBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which devices: those under ``node`` of any of ``kinds`` with every label; or a list."""

    node: NodeCode | None = None
    kinds: list[Annotated[str, msgspec.Meta(pattern=r"^(kiosk|review_pad|station_pc|booth)$")]] = (
        msgspec.field(default_factory=list)
    )
    labels: Annotated[dict[str, str], msgspec.Meta(max_length=MAX_LABELS)] = msgspec.field(
        default_factory=dict
    )
    device_ids: Annotated[
        list[DeviceId], msgspec.Meta(description="exactly these devices (without the others)")
    ] = msgspec.field(default_factory=list)


class NewRollout(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    package: Annotated[
        Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | PackageByName,
        msgspec.Meta(description="the package file's sha256, or its name and version"),
    ]
    target: TargetBody
    waves: Annotated[
        list[Percent],
        msgspec.Meta(
            min_length=1,
            max_length=rollout_body.MAX_WAVES,
            description='cumulative shares, increasing, ending at 100 [["1", "10", "50", "100"]]',
        ),
    ] = msgspec.field(default_factory=lambda: ["1", "10", "50", "100"])
    success_threshold: Annotated[
        Percent, msgspec.Meta(description="a finished wave advances at this share succeeded [95]")
    ] = 95
    failure_threshold: Annotated[
        Percent, msgspec.Meta(description="a wave pauses the rollout above this share failed [10]")
    ] = 10
    min_finished: Annotated[
        int, msgspec.Meta(ge=1, description="finished devices before failures may pause [5]")
    ] = 5
    device_timeout_s: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=rollout_body.MAX_TIMEOUT_S,
            description="a device silent this long after a notice or install fails [7200]",
        ),
    ] = 7200
    install_policy: InstallPolicy = InstallPolicy.OUTSIDE_OPENING_HOURS
    peripheral: Annotated[
        str, msgspec.Meta(description="firmware: the peripheral to flash, such as pad0")
    ] = ""
    id: RolloutId | None = None


class ResumeBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    waive_thresholds: Annotated[
        bool, msgspec.Meta(description="let the current wave advance once all of it finished")
    ] = False


class RolloutParameters(Paged):
    phase: RolloutPhase | None = None
    package: PackageName | None = None


class RolloutDeviceParameters(Paged):
    step: DeviceStep | None = None
    wave: Annotated[int, msgspec.Meta(ge=1, description="counted from 1")] | None = None


class NoParameters(Parameters):
    pass


# --- what they answer ---------------------------------------------------------------------------


class PackageView(Schema):
    kind: str
    name: str
    version: int
    sha256: str
    previous_version: Annotated[int | None, msgspec.Meta(description="what a rollback returns to")]
    previous_sha256: str | None


class WaveView(Schema):
    """One wave's own devices (those it adds to the waves before it), by step."""

    number: Annotated[int, msgspec.Meta(description="counted from 1")]
    percent: Annotated[float, msgspec.Meta(description="the cumulative share asked for")]
    size: int
    reached: Annotated[int, msgspec.Meta(description="devices of this and the earlier waves")]
    current: bool
    succeeded: Annotated[int, msgspec.Meta(description="succeeded or already on the version")]
    failed: int
    not_judged: Annotated[int, msgspec.Meta(description="incompatible or cancelled")]
    finished: int
    succeeded_share: Annotated[float | None, msgspec.Meta(description="% of the judged")]
    failed_share: Annotated[float | None, msgspec.Meta(description="% of the judged")]
    steps: dict[str, int]


class RolloutView(Schema):
    """A rollout: where it stands, per wave, and what it was asked to do."""

    id: str
    phase: RolloutPhase
    final: Annotated[bool, msgspec.Meta(description="nothing will change any more")]
    wave: Annotated[int, msgspec.Meta(description="the current wave, counted from 1")]
    wave_count: int
    pause_reason: str | None
    pause_detail: str
    waived_wave: int | None
    package: PackageView
    peripheral: str
    target: Annotated[dict[str, Any], msgspec.Meta(description="the targeting as asked")]
    device_count: int
    steps: Annotated[dict[str, int], msgspec.Meta(description="devices per step, all waves")]
    waves: list[WaveView]
    wave_percents: list[float]
    success_threshold: float
    failure_threshold: float
    min_finished: int
    device_timeout_s: int
    install_policy: InstallPolicy
    created_by: str
    created_at: datetime
    updated_at: datetime


class RolloutPage(Schema):
    items: list[RolloutView]
    next_cursor: Cursor


class RolloutDeviceView(Schema):
    device_id: str
    wave: int
    step: DeviceStep
    since: Annotated[datetime, msgspec.Meta(description="when it entered its step")]
    attempts: int
    reason: Annotated[str, msgspec.Meta(description="of its last failure or refusal")]
    detail: str
    installed_version: int | None


class RolloutDevicePage(Schema):
    items: list[RolloutDeviceView]
    next_cursor: Cursor
