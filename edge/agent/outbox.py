"""The agent's durable outbox: every record stays on disk until the control plane acknowledges it.

SQLite in WAL mode with ``synchronous=FULL``: a record whose ``append`` returned survives kill -9
and power loss. Sequence numbers are allocated in the same transaction as the insert, so a
number is never given to two records and never skipped by a crash.

Disk policy: records (usage, reviews, events) are never dropped. Health is not queued at all:
only the latest reading is kept (coalesced), so it costs no growing space. When the outbox file
passes ``warn_ratio`` of ``max_bytes`` the agent raises an alarm; records are still accepted past
``max_bytes``, because losing a citizen's review is worse than using more disk.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.protocol import Channel

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
WARN_RATIO = 0.8
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS record (
    seq INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class PendingRecord:
    seq: int
    channel: Channel
    payload: bytes


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Outbox:
    """A single-writer SQLite outbox. Not thread-safe: one agent, one event loop."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a sequence number is
            # read and taken under the write lock.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._initialise_sequence(clock_ms)
        except sqlite3.Error as exc:
            msg = f"cannot open outbox {path}: {exc}"
            raise OutboxError(msg) from exc

    def _initialise_sequence(self, clock_ms: Callable[[], int]) -> None:
        # A new outbox starts its numbers at the wall clock in microsecond-sized steps, so that a
        # terminal whose disk was wiped never reuses a (device_id, seq) the control plane has
        # already stored (the ingest would take the new record for a duplicate and drop it).
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', ?)", (clock_ms() * 1000,)
        )

    def close(self) -> None:
        self._db.close()

    def append(self, channel: Channel, encode_with_seq: Callable[[int], bytes]) -> int:
        """Store one record; ``encode_with_seq`` gets its sequence number and returns the payload.

        Returns once the record is durable on disk.
        """
        with self._write() as db:
            (seq,) = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            db.execute(
                "INSERT INTO record (seq, channel, payload, created_at) VALUES (?, ?, ?, ?)",
                (seq, channel.value, encode_with_seq(seq), time.time()),
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
        return int(seq)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken under the write lock at once; rolled back on any error."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def pending(self, after_seq: int = -1, limit: int = 1000) -> list[PendingRecord]:
        """Unacknowledged records with seq > ``after_seq``, oldest first."""
        rows = self._db.execute(
            "SELECT seq, channel, payload FROM record WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [
            PendingRecord(seq, Channel(channel), bytes(payload)) for seq, channel, payload in rows
        ]

    def acknowledge(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged records; returns how many were still there."""
        params = [(s,) for s in seqs]
        if not params:
            return 0
        with self._write() as db:
            cursor = db.executemany("DELETE FROM record WHERE seq = ?", params)
        return cursor.rowcount

    def backlog(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM record").fetchone()
        return int(count)

    def used_bytes(self) -> int:
        """Bytes the stored records occupy (pages in use; freed pages are reused, not counted)."""
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
        (size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int((pages - free) * size)

    def near_full(self) -> bool:
        return self.used_bytes() >= self.max_bytes * WARN_RATIO
