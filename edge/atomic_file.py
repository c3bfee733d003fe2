"""Replace files atomically and durably: readers see the old content or the new, never half.

Used for what a crash or a power cut must not leave half-written: the agent's config and
password written at enrollment, the broker's login file, keys, certificates and QR codes.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def stage(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """A synced temporary file beside ``path`` holding ``data``, to be renamed over it.

    It has ``mode`` from its creation, so a secret is never readable by others, not even for a
    moment; a fresh random name that must not exist yet (``O_EXCL``, no symlink followed).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, _CREATE, mode)
    try:
        try:
            os.fchmod(fd, mode)  # exactly this mode, whatever the umask took away
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable: a rename lives in the directory's own data."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` through a staged file, then make the rename durable."""
    temporary = stage(path, data, mode)
    try:
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def too_open(path: Path) -> str | None:
    """The file's permissions in octal when others than its owner may use it, else None.

    For files holding secrets (a broker password, the provisioning secret, password hashes):
    the caller refuses them with its own error. OSError when the file cannot be examined.
    """
    mode = path.stat().st_mode
    return f"{mode & 0o777:o}" if mode & (stat.S_IRWXG | stat.S_IRWXO) else None
