"""One package target's blocking steps: fetch, verify, install, roll back, read the store.

Each step runs in a worker thread (the package manager hands it to ``asyncio.to_thread``) and
raises a ``ContentError`` whose ``reason`` goes into the report as it is.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.content import layout
from edge.content.download import DEFAULT_TIMEOUT_S, Progress
from edge.content.download_retry import BackoffLike, resume_loop
from edge.content.install import ContentStore, InstallResult
from edge.content.manifest import ContentError, PackageKind
from edge.content.signing import TrustedKeys
from edge.protocol import PackageTarget

from .package_plan import Reason, download_name

if TYPE_CHECKING:
    from edge.content.package import VerifiedPackage

FIRMWARE_SUFFIX = ".dfu"
MAX_FIRMWARE_BYTES = 16 * 1024 * 1024
"""A peripheral's DFU image is read whole into memory: kilobytes, at most a few megabytes."""


class PackageWorkError(ContentError):
    """A step that failed for a reason of the agent's own (``package_plan.Reason``)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclass(frozen=True)
class FetchSettings:
    """How downloads are made; tests shorten the waits."""

    attempts: int = 5
    """Tries in a row that add nothing before a network error reaches the manager."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    ca_file: str | None = None


def previous_version(root: Path, name: str) -> int | None:
    """The version the store keeps for a rollback of ``name``, if it still has it whole."""
    dirs = layout.PackageDirs.of(root, name)
    previous = layout.target_version(layout.read_target(dirs.previous))
    return previous if previous is not None and dirs.version(previous).is_dir() else None


def installed_names(root: Path) -> list[str]:
    """The package names under the store's ``root`` that have a version installed."""
    if not root.is_dir():
        return []
    return sorted(
        home.name
        for home in root.iterdir()
        if layout.is_plain_name(home.name) and (home / "current").is_dir()
    )


def fetch(  # noqa: PLR0913 - one download's parts, keyword-only
    target: PackageTarget,
    downloads: Path,
    *,
    settings: FetchSettings,
    backoff: BackoffLike,
    progress: Progress,
    stop: threading.Event,
) -> Path:
    """The target's package file in ``downloads``, downloaded or resumed; DownloadError.

    A file that is there already (staged before a restart) is used when its sha256 is the
    artifact's, without a request; otherwise it is deleted and fetched again.
    """
    dest = downloads / download_name(target)
    if dest.is_file():
        if _sha256(dest) == target.artifact.sha256:
            size = dest.stat().st_size
            progress(size, size)
            return dest
        dest.unlink()
    return resume_loop(
        target.artifact,
        dest,
        attempts=settings.attempts,
        backoff=backoff,
        ca_file=settings.ca_file,
        timeout_s=settings.timeout_s,
        progress=progress,
        stop=stop,
    )


def verify(
    path: Path, target: PackageTarget, keys: TrustedKeys, installed: int | None
) -> VerifiedPackage:
    """The package at ``path`` verified, and the one ``target`` names; PackageError if not."""
    # Loaded with the first package (tarfile and the reader): most days an agent gets none.
    from edge.content.package import open_package  # noqa: PLC0415

    package = open_package(path, keys, installed_version=installed, allow_older=target.allow_older)
    manifest = package.manifest
    wanted = (target.name, target.version, target.kind.value)
    found = (manifest.name, manifest.version, manifest.kind.value)
    if found != wanted:
        msg = "the package is {} version {} ({}), the target {} version {} ({})".format(
            *found, *wanted
        )
        raise PackageWorkError(Reason.WRONG_PACKAGE, msg)
    return package


def install(store: ContentStore, package: VerifiedPackage) -> InstallResult:
    """Install ``package`` into ``store`` (atomically: the old version stays on any failure)."""
    return store.install(package)


def roll_back(store: ContentStore, target: PackageTarget) -> InstallResult:
    """Swap ``target.name`` back to its previous version, which must be ``target.version``."""
    result = store.rollback(target.name)
    if result.version != target.version:
        # The store changed under us between the plan and now: put it back as it was.
        store.rollback(target.name)
        msg = f"{target.name}: the previous version was {result.version}, not {target.version}"
        raise PackageWorkError(Reason.WRONG_PACKAGE, msg)
    return result


def firmware_image(package: VerifiedPackage) -> bytes:
    """The one ``.dfu`` file of a verified firmware package, read and hash-checked again."""
    if package.manifest.kind is not PackageKind.FIRMWARE:
        msg = f"{package.manifest.name} is no firmware package"
        raise PackageWorkError(Reason.WRONG_PACKAGE, msg)
    images = [f for f in package.manifest.files if f.path.endswith(FIRMWARE_SUFFIX)]
    if len(images) != 1 or images[0].size > MAX_FIRMWARE_BYTES:
        msg = f"a firmware package holds one {FIRMWARE_SUFFIX} file of at most "
        msg += f"{MAX_FIRMWARE_BYTES} bytes; {package.manifest.name} has {len(images)}"
        raise PackageWorkError(Reason.NO_FIRMWARE_FILE, msg)
    return _member_bytes(package, images[0].path)


def kept_firmware_image(root: Path, name: str, version: int) -> bytes:
    """The ``.dfu`` file of firmware ``version`` as the store keeps it, for a rollback's flash.

    It was verified when that version was installed; the store keeps the extracted files.
    """
    kept = layout.PackageDirs.of(root, name).version(version)
    images = [path for path in kept.rglob(f"*{FIRMWARE_SUFFIX}") if path.is_file()]
    if len(images) != 1 or images[0].stat().st_size > MAX_FIRMWARE_BYTES:
        msg = f"{name} {version} as kept holds {len(images)} {FIRMWARE_SUFFIX} files, not one"
        raise PackageWorkError(Reason.NO_FIRMWARE_FILE, msg)
    return images[0].read_bytes()


def _member_bytes(package: VerifiedPackage, path: str) -> bytes:
    # Extracted by the strict reader, every hash checked again, into a directory of its own.
    with tempfile.TemporaryDirectory(dir=package.path.parent, prefix=".firmware-") as scratch:
        package.extract_to(Path(scratch))
        return Path(scratch).joinpath(*path.split("/")).read_bytes()


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


Flash = Callable[[str, bytes], object]
"""Flash a DFU image to the named peripheral; raises on failure (the old firmware stays)."""
