"""A new rollout from an operator's request: the package, the devices it reaches, its spec.

Targeting (subtree, kinds, labels, or listed devices) is resolved here, once: the rollout keeps
the devices it resolved to, so a terminal added to the subtree later is not swept into a wave
already judged. The version a rollback returns to is the one most targeted devices report
installed, when the repository still has it; else the newest older version it has.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from .admin_errors import NotFoundError
from .db.content_models import ContentPackage
from .db.rollout_models import Rollout
from .device_filters import DeviceFilters
from .device_queries import candidates
from .lifecycle import Lifecycle
from .rollout_store import Tracked, installed_versions, spec_of
from .rollouts import DeviceProgress, DeviceStep, RolloutSpecError, RolloutState
from .rollouts.spec import (
    DEFAULT_DEVICE_TIMEOUT,
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_MIN_FINISHED,
    DEFAULT_SUCCESS_THRESHOLD,
    InstallPolicy,
)
from .rollouts.waves import DEFAULT_WAVES

MAX_DEVICES = 200_000
"""More than a province's terminals; a larger target is surely a mistake in the filter."""


@dataclass(frozen=True, slots=True)
class Targeting:
    """Which devices a rollout reaches.

    Those under ``node`` (None: the whole tree, or the token's scope), of any of ``kinds``
    (empty: all), with every label in ``labels``; or exactly ``device_ids``.
    """

    node: str | None = None
    kinds: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    device_ids: tuple[str, ...] = ()

    def view(self) -> dict[str, object]:
        return {
            "node": self.node,
            "kinds": list(self.kinds),
            "labels": dict(self.labels),
            "device_ids": list(self.device_ids),
        }


@dataclass(frozen=True, slots=True)
class RolloutRequest:
    package_sha256: str
    targeting: Targeting
    rollout_id: str = ""
    waves: tuple[Fraction, ...] = DEFAULT_WAVES
    success_threshold: Fraction = DEFAULT_SUCCESS_THRESHOLD
    failure_threshold: Fraction = DEFAULT_FAILURE_THRESHOLD
    min_finished: int = DEFAULT_MIN_FINISHED
    device_timeout: timedelta = DEFAULT_DEVICE_TIMEOUT
    install_policy: InstallPolicy = InstallPolicy.OUTSIDE_OPENING_HOURS
    peripheral: str = ""


async def prepare(
    request: RolloutRequest, *, created_by: str, scope_path: str | None, now: datetime
) -> Tracked:
    """The new rollout, not yet stored: every device queued, its installed version known."""
    package = await ContentPackage.get_or_none(sha256=request.package_sha256)
    if package is None:
        msg = f"no package with sha256 {request.package_sha256} in the repository"
        raise NotFoundError(msg)
    device_ids = await resolve(request.targeting, scope_path)
    installed = await installed_versions(package.name)
    previous = await _previous(package, [installed[d] for d in device_ids if d in installed])
    row = Rollout(
        id=request.rollout_id or f"{package.name}-{package.version}-{secrets.token_hex(3)}"[:64],
        package_kind=package.kind,
        package_name=package.name,
        target_version=package.version,
        target_sha256=package.sha256,
        previous_version=None if previous is None else previous.version,
        previous_sha256=None if previous is None else previous.sha256,
        peripheral=request.peripheral,
        target=request.targeting.view(),
        waves=[str(share) for share in request.waves],
        success_threshold=str(request.success_threshold),
        failure_threshold=str(request.failure_threshold),
        min_finished=request.min_finished,
        device_timeout_s=int(request.device_timeout.total_seconds()),
        install_policy=request.install_policy.value,
        allow_older=False,
        phase="running",
        wave=0,
        created_at=now,
        created_by=created_by,
        updated_at=now,
    )
    state = RolloutState.start(spec_of(row, device_ids))  # validates the spec
    devices = {
        device_id: DeviceProgress(
            step=DeviceStep.QUEUED,
            step_since=now,
            installed_version=str(installed[device_id]) if device_id in installed else None,
        )
        for device_id in device_ids
    }
    return Tracked(row=row, state=state, devices=devices)


async def resolve(targeting: Targeting, scope_path: str | None) -> list[str]:
    """The device ids ``targeting`` reaches within ``scope_path``, sorted, or RolloutSpecError."""
    if targeting.device_ids:
        query = (await candidates(DeviceFilters(), scope_path)).filter(
            device_id__in=list(targeting.device_ids)
        )
        found = {str(d) for d in await query.values_list("device_id", flat=True)}
        missing = sorted(set(targeting.device_ids) - found)
        if missing:
            msg = f"{len(missing)} listed devices do not exist here, e.g. {missing[0]!r}"
            raise RolloutSpecError(msg, reason="unknown_device")
        return sorted(found)
    found_ids: set[str] = set()
    for kind in targeting.kinds or (None,):
        filters = DeviceFilters(node=targeting.node, kind=kind, labels=targeting.labels)
        query = await candidates(filters, scope_path)
        live = query.exclude(lifecycle=Lifecycle.RETIRED.value)
        found_ids.update(str(d) for d in await live.values_list("device_id", flat=True))
    if not found_ids:
        msg = "the targeting reaches no device"
        raise RolloutSpecError(msg, reason="no_devices")
    if len(found_ids) > MAX_DEVICES:
        msg = f"the targeting reaches {len(found_ids)} devices, more than {MAX_DEVICES}"
        raise RolloutSpecError(msg, reason="too_many_devices")
    return sorted(found_ids)


async def _previous(package: ContentPackage, installed: Sequence[int]) -> ContentPackage | None:
    older = [version for version in installed if version < package.version]
    if older:
        common = Counter(older).most_common(1)[0][0]
        row = await ContentPackage.get_or_none(kind=package.kind, name=package.name, version=common)
        if row is not None:
            return row
    return (
        await ContentPackage.filter(
            kind=package.kind, name=package.name, version__lt=package.version
        )
        .order_by("-version")
        .first()
    )
