"""Where installed content lives on disk, how its links change, and how readers keep a version.

One directory per package name under the store's root::

    <name>/versions/<version>/…   each kept version, complete before it appears here
    <name>/current  → versions/<v> what readers follow; only ever replaced whole (os.replace)
    <name>/previous → versions/<v> the rollback target
    <name>/staging/                extractions under way and directories on their way out
    <name>/install.lock            held by the one installer at a time

A reader resolves ``current`` once and reads every file under the directory it names, holding a
shared ``flock`` on that directory (``reading``): following ``current`` per file could mix two
versions, and without the lock two installs in a row could prune the directory mid-read. The
pruner takes the exclusive lock without waiting and leaves a directory that is being read for
the next prune.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from edge.atomic_file import fsync_directory
from edge.content.manifest import ContentError

VERSIONS = "versions"
NEW_LINK_SUFFIX = ".new"
FILE_BLOCK_BYTES = 4096
"""A file takes whole blocks: a package of many small files needs more than the sum of sizes."""
MAX_NAME_BYTES = 255
"""The longest file name ext4 and most other Linux file systems allow."""
READ_ATTEMPTS = 100
"""How often a reader re-resolves ``current`` when installs keep replacing it under it."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class InstallStep(enum.StrEnum):
    """The points of an install or rollback where a crash may stop it, in the order they pass."""

    FILE_WRITTEN = "file_written"
    FILE_FSYNCED = "file_fsynced"
    STAGING_FSYNCED = "staging_fsynced"
    RENAMED_INTO_VERSIONS = "renamed_into_versions"
    VERSIONS_FSYNCED = "versions_fsynced"
    PREVIOUS_NEW_WRITTEN = "previous_new_written"
    PREVIOUS_REPLACED = "previous_replaced"
    PREVIOUS_FSYNCED = "previous_fsynced"
    CURRENT_NEW_WRITTEN = "current_new_written"
    CURRENT_REPLACED = "current_replaced"
    CURRENT_FSYNCED = "current_fsynced"
    PRUNED = "pruned"


CrashHook = Callable[[InstallStep], None]
"""Called at every step; tests make it end the process or raise there."""


class InstallReason(enum.StrEnum):
    """Why the store refused; the closed set the agent reports to the control plane."""

    ALREADY_INSTALLED = "already_installed"
    NO_SPACE = "no_space"
    BAD_NAME = "bad_name"
    BAD_VERSION = "bad_version"
    NOT_INSTALLED = "not_installed"
    NO_PREVIOUS = "no_previous"
    BUSY = "busy"
    VERSION_IN_USE = "version_in_use"


class InstallError(ContentError):
    """The store refused an install, rollback or read; ``reason`` says why in one word."""

    def __init__(self, reason: InstallReason, message: str) -> None:
        super().__init__(message)
        self.reason: InstallReason = reason


class LinkSteps(NamedTuple):
    written: InstallStep
    replaced: InstallStep
    fsynced: InstallStep


CURRENT_STEPS = LinkSteps(
    InstallStep.CURRENT_NEW_WRITTEN, InstallStep.CURRENT_REPLACED, InstallStep.CURRENT_FSYNCED
)
PREVIOUS_STEPS = LinkSteps(
    InstallStep.PREVIOUS_NEW_WRITTEN, InstallStep.PREVIOUS_REPLACED, InstallStep.PREVIOUS_FSYNCED
)


@dataclass(frozen=True)
class PackageDirs:
    """The paths of one package name's installed content."""

    home: Path

    @classmethod
    def of(cls, root: Path, name: str) -> PackageDirs:
        """The paths for ``name`` under ``root``; InstallError when it is no single plain name."""
        if not is_plain_name(name):
            msg = f"package name {name!r} is not a plain file name"
            raise InstallError(InstallReason.BAD_NAME, msg)
        return cls(root / name)

    @property
    def versions(self) -> Path:
        return self.home / VERSIONS

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def current(self) -> Path:
        return self.home / "current"

    @property
    def previous(self) -> Path:
        return self.home / "previous"

    @property
    def lock(self) -> Path:
        return self.home / "install.lock"

    def version(self, version: int) -> Path:
        return self.home / version_target(version)


def is_plain_name(name: str) -> bool:
    """Whether ``name`` is one path component that is neither hidden nor special."""
    return (
        bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\0" not in name
        and len(name.encode(errors="surrogateescape")) <= MAX_NAME_BYTES
    )


def version_target(version: int) -> str:
    """The relative target of a link to ``version``, as ``current`` and ``previous`` hold it."""
    return f"{VERSIONS}/{version}"


def target_version(target: str | None) -> int | None:
    """The version a link target names, or None for no target or one this store never writes."""
    prefix = f"{VERSIONS}/"
    if target is None or not target.startswith(prefix):
        return None
    digits = target.removeprefix(prefix)
    return int(digits) if digits.isdigit() and str(int(digits)) == digits else None


def read_target(link: Path) -> str | None:
    """Where ``link`` points, or None when there is no link."""
    try:
        return str(link.readlink())
    except OSError:  # missing, or no symlink
        return None


def space_needed(sizes: Iterable[int], margin_bytes: int) -> int:
    """Bytes a package of files of ``sizes`` takes once extracted, plus ``margin_bytes``."""
    blocks = sum(-(-size // FILE_BLOCK_BYTES) for size in sizes)
    return blocks * FILE_BLOCK_BYTES + margin_bytes


def new_link(link: Path) -> Path:
    """Where the replacement of ``link`` is made before it is renamed over it."""
    return link.with_name(link.name + NEW_LINK_SUFFIX)


def point(link: Path, target: str, crash_at: CrashHook, steps: LinkSteps) -> None:
    """Make ``link`` point at ``target`` atomically and durably: a new link renamed over it."""
    new = new_link(link)
    new.unlink(missing_ok=True)
    new.symlink_to(target)
    # The new link's inode must be on disk before the rename that makes it visible is.
    fsync_directory(link.parent)
    crash_at(steps.written)
    new.replace(link)
    crash_at(steps.replaced)
    fsync_directory(link.parent)
    crash_at(steps.fsynced)


def fsync_tree(directory: Path) -> None:
    """Make every directory entry under ``directory`` durable, deepest first."""
    for path, _, _ in os.walk(directory, topdown=False):
        fsync_directory(Path(path))


def discard(path: Path, trash: Path) -> bool:
    """Delete ``path`` unless a reader holds it; whether it went.

    A directory leaves its place in one rename (into ``trash``, on the same file system) and is
    deleted there, so what stays visible is always whole, even after a crash mid-delete.
    """
    try:
        fd = os.open(path, _DIRECTORY)
    except NotADirectoryError:
        path.unlink()
        return True
    except OSError:
        if not path.is_symlink():
            raise
        path.unlink()  # a symlink in versions/: never ours, never followed
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        gone = trash / f"discarded.{path.name}.{secrets.token_hex(6)}"
        path.rename(gone)
    finally:
        os.close(fd)
    shutil.rmtree(gone)
    return True


@contextlib.contextmanager
def reading(dirs: PackageDirs) -> Iterator[Path]:
    """The directory ``current`` names, kept whole and in place until the block ends."""
    for _ in range(READ_ATTEMPTS):
        target = read_target(dirs.current)
        if target is None:
            msg = f"{dirs.home.name} is not installed"
            raise InstallError(InstallReason.NOT_INSTALLED, msg)
        path = dirs.home / target
        try:
            fd = os.open(path, _DIRECTORY)
        except FileNotFoundError:
            continue  # pruned between readlink and open: an install passed, look again
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            # Locked, the directory stays where it is; it may have left just before the lock.
            if _same_directory(fd, path):
                yield path
                return
        finally:
            os.close(fd)
    msg = f"{dirs.home.name} changed {READ_ATTEMPTS} times while it was being opened"
    raise InstallError(InstallReason.BUSY, msg)


def _same_directory(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), path.lstat())
    except FileNotFoundError:
        return False
