"""The directory a package is packed from: its regular files, each with its package path.

Hidden files are packed like any other, so that installing reproduces the directory exactly;
empty directories are not (a package holds files only). Symbolic links and special files are
refused by path rather than followed or skipped: either would pack something else than what
the directory shows.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .manifest import ContentError, check_path, check_unique


class SourceReason(enum.StrEnum):
    NOT_A_DIRECTORY = "not_a_directory"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special_file"
    CHANGED = "changed"


class SourceError(ContentError):
    """A source directory that cannot be packed as it stands; the message names the path."""

    def __init__(self, reason: SourceReason, message: str) -> None:
        super().__init__(message)
        self.reason: SourceReason = reason


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    """The file's path in the package: relative, POSIX, checked by ``check_path``."""
    source: Path
    size: int
    """Its size when scanned, for a progress bar; the manifest has the size as read."""


def scan_directory(directory: Path) -> tuple[SourceFile, ...]:
    """Every regular file under ``directory``, sorted by package path.

    SourceError for a symbolic link or a special file; ManifestError for a name the format
    refuses (named, so it can be renamed).
    """
    if directory.is_symlink() or not directory.is_dir():
        msg = f"{directory} is not a directory"
        raise SourceError(SourceReason.NOT_A_DIRECTORY, msg)
    files = sorted(_walk(directory, ""), key=lambda found: found.path)
    check_unique([found.path for found in files])
    return tuple(files)


def _walk(directory: Path, prefix: str) -> Iterator[SourceFile]:
    with os.scandir(directory) as entries:
        for entry in entries:
            path = prefix + entry.name
            if entry.is_symlink():
                msg = f"{entry.path} is a symbolic link: put a copy of its target there instead"
                raise SourceError(SourceReason.SYMLINK, msg)
            if entry.is_dir(follow_symlinks=False):
                # Checked on the way down too: a path too long ends the walk before any depth.
                yield from _walk(Path(entry.path), check_path(path) + "/")
            elif entry.is_file(follow_symlinks=False):
                size = entry.stat(follow_symlinks=False).st_size
                yield SourceFile(check_path(path), Path(entry.path), size)
            else:
                msg = f"{entry.path} is no regular file (a device, socket or pipe)"
                raise SourceError(SourceReason.SPECIAL_FILE, msg)
