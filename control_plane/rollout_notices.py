"""Each device's retained content notice, made from the rollouts that reach it.

``current_targets`` (pure) picks the version per package; this module adds what needs the
server's settings and the clock: the signed download URL, and the window's end for an install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from edge import mqtt
from edge.protocol import Artifact, Channel, ContentNotice, InstallWhen, PackageTarget, encode
from edge.protocol import topics as wire
from edge.protocol.channels import SPECS
from edge.schedule import OpeningHours, next_opening

from .content_repo import artifact_for
from .db.content_models import ContentPackage
from .rollouts.targets import Assignment, current_targets, permission

URL_TTL_S = 14 * 24 * 3600
"""How long a notice's download URL stays good: a village station switched off for a holiday
week still finds it valid. A device that comes back later fails with ``expired`` and is retried."""


@dataclass(frozen=True, slots=True)
class DownloadSettings:
    """Where terminals download packages from, and the key their URLs are signed with."""

    base_url: str
    url_key: bytes
    url_ttl_s: float = URL_TTL_S


class NoticeMaker:
    """Turns a device's assignments into its ``ContentNotice`` message."""

    def __init__(
        self, downloads: DownloadSettings | None, hours_of: Callable[[str], OpeningHours | None]
    ) -> None:
        self._downloads = downloads
        self._hours_of = hours_of
        self._packages: dict[tuple[str, int], ContentPackage] = {}

    async def remember(self, *sha256s: str | None) -> None:
        """Read the packages rollouts send, so that notices are made without a query."""
        for sha256 in filter(None, sha256s):
            row = await ContentPackage.get_or_none(sha256=sha256)
            if row is not None:
                self._packages[row.name, row.version] = row

    def notice(
        self, device_id: str, assignments: Iterable[Assignment], now: datetime
    ) -> ContentNotice:
        targets = [
            self._target(device_id, assignment, now)
            for _, assignment in sorted(current_targets(assignments).items())
        ]
        return ContentNotice(targets=targets, issued_at=now)

    def message(self, device_id: str, notice: ContentNotice) -> mqtt.Outgoing:
        spec = SPECS[Channel.CONTENT]
        topic = wire.downlink(device_id, Channel.CONTENT)
        return mqtt.Outgoing(topic, encode(notice), spec.qos, spec.retain)

    def _target(self, device_id: str, assignment: Assignment, now: datetime) -> PackageTarget:
        install = permission(assignment)
        until = None
        if install is InstallWhen.NOW:
            hours = self._hours_of(device_id)
            until = None if hours is None else next_opening(hours, now)
        return PackageTarget(
            name=assignment.package_name,
            version=assignment.version,
            kind=assignment.kind,
            artifact=self._artifact(device_id, assignment, now),
            rollout_id=assignment.rollout_id,
            allow_older=assignment.allow_older,
            install=install,
            install_until=until,
            peripheral=assignment.peripheral,
        )

    def _artifact(self, device_id: str, assignment: Assignment, now: datetime) -> Artifact:
        # Without a package row (a rollback to a version no longer kept) or without download
        # settings, the agent can only swap back to what it kept; it says so if it cannot.
        package = self._packages.get((assignment.package_name, assignment.version))
        if package is None or self._downloads is None:
            return Artifact()
        return artifact_for(
            package,
            device_id,
            self._downloads.base_url,
            self._downloads.url_key,
            self._downloads.url_ttl_s,
            now=now.timestamp(),
        )
