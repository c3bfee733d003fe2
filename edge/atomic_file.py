"""Replace a file atomically and durably: readers see the old content or the new, never half.

Used for what a crash or a power cut must not leave half-written: the agent's config and
password written at enrollment, the broker's login file, keys and certificates.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` over ``path`` through a temporary file beside it.

    The temporary file has ``mode`` from its creation, so a secret is never readable by others,
    not even for a moment; it is fsynced, renamed over ``path``, and the directory fsynced so
    that the rename itself survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it, a leftover may have had another
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
