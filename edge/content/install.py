"""The agent's content store: verified packages installed so a crash leaves the old or the new.

An install extracts into ``staging/``, fsyncs every file and directory, renames the whole tree
into ``versions/``, then moves the links (``layout.point``): ``previous`` to the old current
first, ``current`` to the new version last. Pruning keeps what the two links name. A crash at any
step leaves ``current`` naming a complete version, the old one or the new; ``recover`` then
removes the rest. The version policy (older refused unless a rollback) is the verifier's.

``rollback`` swaps the links (``current`` first): a second rollback goes forward again. Nothing
is deleted by a rollback, so it needs no space, and the version left behind is gone only when the
next install prunes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge.atomic_file import fsync_directory
from edge.content import layout
from edge.content.layout import (
    CURRENT_STEPS,
    PREVIOUS_STEPS,
    CrashHook,
    InstallError,
    InstallReason,
    InstallStep,
    PackageDirs,
)

SPACE_MARGIN_BYTES = 32 * 1024 * 1024
"""Free space left after extracting, for what else the agent writes (outbox, logs)."""


class ManifestFile(Protocol):
    @property
    def size(self) -> int: ...


class Manifest(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def files(self) -> Sequence[ManifestFile]: ...


class Package(Protocol):
    """What the store needs of a verified package (``edge.content.package.VerifiedPackage``)."""

    @property
    def manifest(self) -> Manifest: ...

    def extract_to(
        self, directory: Path, on_file: Callable[[Path], None] | None = None
    ) -> object: ...


@dataclass(frozen=True)
class InstallResult:
    """Where an install or rollback left ``name``: the current version and the previous."""

    name: str
    version: int
    previous: int | None


def _carry_on(_step: InstallStep) -> None:
    """The crash hook outside tests: every step passes."""


class ContentStore:
    """One terminal's installed content under ``root``; one installer at a time, any readers."""

    def __init__(
        self,
        root: Path,
        *,
        crash_at: CrashHook = _carry_on,
        space_margin_bytes: int = SPACE_MARGIN_BYTES,
    ) -> None:
        self._root = root
        self._crash_at = crash_at
        self._space_margin_bytes = space_margin_bytes

    def installed_version(self, name: str) -> int | None:
        """The version ``current`` names for ``name``, None when nothing whole is installed."""
        dirs = PackageDirs.of(self._root, name)
        return (
            layout.target_version(layout.read_target(dirs.current))
            if dirs.current.is_dir()
            else None
        )

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[Path]:
        """The current version's directory, neither pruned nor changed until the block ends."""
        with layout.reading(PackageDirs.of(self._root, name)) as directory:
            yield directory

    def install(self, package: Package) -> InstallResult:
        """Install ``package`` as the current version and keep the one it replaces as previous.

        InstallError for a version already current, too little space, a bad name or version, or
        another installer at work; the package's own error when extraction finds it changed.
        """
        manifest = package.manifest
        dirs = PackageDirs.of(self._root, manifest.name)
        version = _checked_version(manifest.version)
        with self._exclusive(dirs):
            if self.installed_version(manifest.name) == version:
                msg = f"{manifest.name} version {version} is already installed"
                raise InstallError(InstallReason.ALREADY_INSTALLED, msg)
            self._check_space(manifest)
            staged = self._stage(package, dirs, version)
            try:
                self._place(staged, dirs, version)
            except BaseException:
                shutil.rmtree(staged, ignore_errors=True)  # already gone once renamed
                raise
            replaced = layout.read_target(dirs.current)
            if replaced is not None and replaced != layout.version_target(version):
                layout.point(dirs.previous, replaced, self._crash_at, PREVIOUS_STEPS)
            layout.point(
                dirs.current, layout.version_target(version), self._crash_at, CURRENT_STEPS
            )
            _prune(dirs)
            self._crash_at(InstallStep.PRUNED)
        return InstallResult(manifest.name, version, layout.target_version(replaced))

    def rollback(self, name: str) -> InstallResult:
        """Make ``previous`` current and the current one previous; InstallError without one."""
        dirs = PackageDirs.of(self._root, name)
        if not dirs.home.is_dir():
            msg = f"{name} is not installed"
            raise InstallError(InstallReason.NOT_INSTALLED, msg)
        with self._exclusive(dirs):
            current = layout.read_target(dirs.current)
            previous = layout.read_target(dirs.previous)
            back_to = layout.target_version(previous)
            if previous is None or back_to is None or not _is_other_version(dirs, previous):
                msg = f"{name} has no previous version to roll back to"
                raise InstallError(InstallReason.NO_PREVIOUS, msg)
            # Current first: a crash between the two links orphans the version rolled back
            # from, never the one rolled back to.
            layout.point(dirs.current, previous, self._crash_at, CURRENT_STEPS)
            if current is not None:
                layout.point(dirs.previous, current, self._crash_at, PREVIOUS_STEPS)
        return InstallResult(name, back_to, layout.target_version(current))

    def recover(self) -> tuple[Path, ...]:
        """Remove what a crash left (staging, new links, unlinked versions); what was removed.

        Never touches the version ``current`` names; running it again removes nothing more.
        A ``previous`` whose version is gone is removed; a version a reader holds stays.
        """
        if not self._root.is_dir():
            return ()
        removed: list[Path] = []
        for home in sorted(self._root.iterdir()):
            if layout.is_plain_name(home.name) and home.is_dir() and not home.is_symlink():
                removed += self._recover_package(PackageDirs(home))
        return tuple(removed)

    def _recover_package(self, dirs: PackageDirs) -> list[Path]:
        with self._exclusive(dirs):
            new_links = (layout.new_link(dirs.current), layout.new_link(dirs.previous))
            removed = [link for link in new_links if _remove_link(link)]
            if dirs.previous.is_symlink() and not dirs.previous.is_dir():
                dirs.previous.unlink()
                removed.append(dirs.previous)
            removed += _prune(dirs)
            if removed:
                fsync_directory(dirs.home)
        return removed

    @contextlib.contextmanager
    def _exclusive(self, dirs: PackageDirs) -> Iterator[None]:
        for directory in (self._root, dirs.home, dirs.versions, dirs.staging):
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                fsync_directory(directory.parent)
        fd = os.open(dirs.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                msg = f"another installer is at work on {dirs.home.name}"
                raise InstallError(InstallReason.BUSY, msg) from None
            yield
        finally:
            os.close(fd)

    def _check_space(self, manifest: Manifest) -> None:
        needed = layout.space_needed((f.size for f in manifest.files), self._space_margin_bytes)
        free = shutil.disk_usage(self._root).free
        if free < needed:
            msg = f"{manifest.name} needs {needed} bytes free, {free} are"
            raise InstallError(InstallReason.NO_SPACE, msg)

    def _stage(self, package: Package, dirs: PackageDirs, version: int) -> Path:
        """The package extracted into a fresh staging directory, every file and entry synced."""
        staged = dirs.staging / f"{version}.{secrets.token_hex(6)}"
        staged.mkdir()
        try:
            package.extract_to(staged, self._sync_file)
            layout.fsync_tree(staged)
            fsync_directory(dirs.staging)
            self._crash_at(InstallStep.STAGING_FSYNCED)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return staged

    def _sync_file(self, path: Path) -> None:
        self._crash_at(InstallStep.FILE_WRITTEN)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._crash_at(InstallStep.FILE_FSYNCED)

    def _place(self, staged: Path, dirs: PackageDirs, version: int) -> None:
        """Move the staged tree to ``versions/<version>`` in one rename, made durable."""
        final = dirs.version(version)
        # A leftover of a crashed install, or the previous version installed again.
        if (final.exists() or final.is_symlink()) and not layout.discard(final, dirs.staging):
            msg = f"{dirs.home.name} version {version} is being read and cannot be replaced"
            raise InstallError(InstallReason.VERSION_IN_USE, msg)
        staged.rename(final)
        self._crash_at(InstallStep.RENAMED_INTO_VERSIONS)
        fsync_directory(dirs.versions)
        fsync_directory(dirs.staging)
        self._crash_at(InstallStep.VERSIONS_FSYNCED)


def _checked_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        msg = f"package version {version!r} is no whole number"
        raise InstallError(InstallReason.BAD_VERSION, msg)
    return version


def _is_other_version(dirs: PackageDirs, previous: str) -> bool:
    """Whether ``previous`` names a whole version that is not the current one."""
    target = dirs.home / previous
    return target.is_dir() and os.path.realpath(target) != os.path.realpath(dirs.current)


def _remove_link(link: Path) -> bool:
    if not link.is_symlink():
        return False
    link.unlink()
    return True


def _prune(dirs: PackageDirs) -> list[Path]:
    """Remove staging leftovers and versions neither link names; what was removed."""
    removed: list[Path] = []
    for leftover in sorted(dirs.staging.iterdir()):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
        removed.append(leftover)
    kept = {os.path.realpath(link) for link in (dirs.current, dirs.previous) if link.is_symlink()}
    unlinked = (v for v in sorted(dirs.versions.iterdir()) if os.path.realpath(v) not in kept)
    removed.extend(v for v in unlinked if layout.discard(v, dirs.staging))
    return removed
