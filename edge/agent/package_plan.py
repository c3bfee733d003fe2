"""What the agent does with each package target, and when it may install. Pure: no IO, no clock.

The package manager (``packages.py``) asks these questions and carries out the answers.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from edge.protocol import ContentNotice, InstallWhen, PackageKind, PackageTarget

log = logging.getLogger(__name__)


class Reason(enum.StrEnum):
    """The agent's own failure reasons; those of the content modules are reported as they are.

    ``PackageReason`` (verifying), ``DownloadReason`` and ``InstallReason`` come in by value.
    """

    NO_KEYS = "no_keys"
    """The agent holds no content keys, so it can verify nothing (docs/content.md)."""
    WRONG_PACKAGE = "wrong_package"
    """A genuine package, but of another name, version or kind than the target."""
    UNKNOWN_KIND = "unknown_kind"
    NO_PERIPHERALS = "no_peripherals"
    """Firmware for a terminal whose agent drives no peripherals, or cannot flash them."""
    NO_SUCH_PERIPHERAL = "no_such_peripheral"
    NO_FIRMWARE_FILE = "no_firmware_file"
    """A firmware package without exactly one ``.dfu`` file."""
    FIRMWARE_UPDATE_FAILED = "firmware_update_failed"
    DISK = "disk"
    """The agent's own disk failed it (permissions, I/O error) while downloading."""


class Step(enum.Enum):
    """The first thing to do about a target, from what is installed."""

    DONE = "done"
    """The target version is installed."""
    ROLL_BACK = "roll_back"
    """Back (or forward again) to the version kept as previous: swap the links, no download."""
    FETCH = "fetch"
    """Download (or find downloaded), verify, stage, then install when allowed."""
    INCOMPATIBLE = "incompatible"
    NO_KEYS = "no_keys"


@dataclass(frozen=True)
class Fit:
    """What the terminal can take: whether it verifies at all, and the peripherals it flashes."""

    has_keys: bool
    flashable: frozenset[str] | None
    """Peripherals firmware can be flashed to; None when the agent cannot flash at all."""


def usable_targets(notice: ContentNotice) -> dict[str, PackageTarget]:
    """The notice's targets by name; those without a name or version, or repeated, are dropped."""
    targets: dict[str, PackageTarget] = {}
    for target in notice.targets:
        if not target.name or target.version is None:
            log.warning("package target without a name or version ignored: %r", target)
        elif target.name in targets:
            log.warning("package %s named twice in one notice; the first counts", target.name)
        else:
            targets[target.name] = target
    return targets


def incompatibility(target: PackageTarget, fit: Fit) -> Reason | None:
    """Why this terminal cannot take ``target`` whatever it downloads, or None."""
    if target.kind is PackageKind.UNKNOWN:
        return Reason.UNKNOWN_KIND
    if target.kind is PackageKind.FIRMWARE:
        if fit.flashable is None:
            return Reason.NO_PERIPHERALS
        if target.peripheral not in fit.flashable:
            return Reason.NO_SUCH_PERIPHERAL
    return None


def first_step(
    target: PackageTarget, installed: int | None, previous: int | None, fit: Fit
) -> Step:
    """Where the work on ``target`` starts, given the store's ``installed`` and ``previous``."""
    if installed is not None and installed == target.version:
        return Step.DONE
    if incompatibility(target, fit) is not None:
        return Step.INCOMPATIBLE
    if previous is not None and previous == target.version:
        # Forward again after a rollback needs no permission: the version is newer.
        newer = installed is None or previous > installed
        if target.allow_older or newer:
            return Step.ROLL_BACK
    if not fit.has_keys:
        return Step.NO_KEYS
    return Step.FETCH


def same_package(old: PackageTarget, new: PackageTarget) -> bool:
    """Whether work on ``old`` carries on for ``new``: only its orders or its URL changed.

    A new signed URL (they expire) or a new install permission must not restart a download.
    """
    return (
        old.name == new.name
        and old.version == new.version
        and old.kind == new.kind
        and old.artifact.sha256 == new.artifact.sha256
        and old.allow_older == new.allow_older
        and old.peripheral == new.peripheral
    )


class Blocker(enum.StrEnum):
    """Why a staged package waits; shown in the report's ``detail``."""

    NOT_YET = "waiting to be told to install"
    WINDOW_ENDED = "the install window has ended"
    IN_SESSION = "waiting for the citizen session to end"
    NOT_IDLE = "waiting for the terminal to be idle"


def install_blocker(
    target: PackageTarget, now: datetime, *, in_session: bool, idle: bool
) -> Blocker | None:
    """What keeps ``target`` from being installed now; None when it may be."""
    if target.install is InstallWhen.NOW:
        if target.install_until is not None and now >= target.install_until:
            return Blocker.WINDOW_ENDED
        return Blocker.IN_SESSION if in_session else None
    if target.install is InstallWhen.WHEN_IDLE:
        if in_session:
            return Blocker.IN_SESSION
        return None if idle else Blocker.NOT_IDLE
    return Blocker.NOT_YET  # not_yet, and a value this build does not know


def download_name(target: PackageTarget) -> str:
    """The package file's name in the downloads directory."""
    return f"{target.name}-{target.version}.tfpkg"
