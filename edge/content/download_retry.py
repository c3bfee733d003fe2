"""Retries of the package download after network errors, with the agent's backoff.

``download`` itself makes at most two requests; this loop calls it again after each cut, as
long as the tries keep adding to the ``.part``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypedDict, Unpack

from edge.protocol.packages import Artifact

from .download import DownloadError, DownloadReason, Progress, download, part_path


class BackoffLike(Protocol):
    """What ``resume_loop`` needs of ``edge.agent.backoff.Backoff``."""

    def next(self) -> float: ...
    def reset(self) -> None: ...


class DownloadOptions(TypedDict, total=False):
    """``download``'s keywords, passed through by ``resume_loop``."""

    ca_file: str | None
    timeout_s: float
    chunk_bytes: int
    progress: Progress | None
    stop: threading.Event | None


def resume_loop(
    artifact: Artifact,
    dest: Path,
    *,
    attempts: int,
    backoff: BackoffLike,
    sleep: Callable[[float], object] | None = None,
    **options: Unpack[DownloadOptions],
) -> Path:
    """``download`` again after each ``network`` error, waiting ``backoff.next()`` seconds.

    ``attempts`` bounds the tries in a row that add nothing to the ``.part``: a try that got
    further resets the count and the backoff, so a link cut every few megabytes still finishes.
    The wait is ``stop.wait`` when there is a ``stop`` (a cancel ends it), else ``time.sleep``.
    """
    stop = options.get("stop")
    wait = sleep or (stop.wait if stop is not None else time.sleep)
    part = part_path(dest)
    fruitless = 0
    while True:
        before = _length(part)
        try:
            done = download(artifact, dest, **options)
        except DownloadError as error:
            if error.reason is not DownloadReason.NETWORK:
                raise
            if _length(part) > before:
                fruitless = 0
                backoff.reset()
            else:
                fruitless += 1
            if fruitless >= attempts:
                raise
            wait(backoff.next())
        else:
            backoff.reset()
            return done


def _length(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
