"""The agent's durable outbox: every record stays on disk until the control plane acknowledges it.

SQLite in WAL mode with ``synchronous=FULL``: a record whose ``append`` returned survives kill -9
and power loss. Sequence numbers are allocated in the same transaction as the insert, so a
number is never given to two records and never skipped by a crash. Deleting acknowledged records
does not wait for the disk: a delete lost to a power cut only brings records back, which are sent
again and acknowledged again (the ingest stores a record once however often it arrives).

Disk policy: records (usage, reviews, events) are never dropped. Health is not queued at all:
only the latest reading is kept (coalesced), so it costs no growing space. When the outbox file
passes ``warn_ratio`` of ``max_bytes`` the agent raises an alarm; records are still accepted past
``max_bytes``, because losing a citizen's review is worse than using more disk.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.protocol import Channel

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
WARN_RATIO = 0.8
OUTBOX_FILE = "outbox.sqlite3"
"""The outbox's file name in the agent's ``state_dir``."""
IN_MEMORY = ":memory:"
_MAX_VARIABLES = 500
"""Seqs per ``IN (...)`` query: well under SQLite's smallest limit on bound parameters (999)."""
CACHE_KIB = 256
"""SQLite's page cache (its default is 2 MiB). The outbox reads and deletes at its oldest end and
appends at its newest, a few dozen pages; a larger cache only fills up with a drained backlog
and stays resident in an agent that is idle again."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS record (
    seq INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chain (name TEXT PRIMARY KEY, tip TEXT NOT NULL);
"""


_channel = functools.cache(Channel)
"""``Channel(value)`` for each stored row, without the enum lookup's cost every time."""


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
        path: Path | str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        try:
            if path != IN_MEMORY:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a sequence number is
            # read and taken under the write lock.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open outbox {path}: {exc}"
            raise OutboxError(msg) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._db.executescript(_SCHEMA)
            self._initialise_sequence(clock_ms)
        except sqlite3.Error as exc:
            self._db.close()
            msg = f"cannot open outbox {path}: {exc}"
            raise OutboxError(msg) from exc

    @classmethod
    def in_memory(cls, *, clock_ms: Callable[[], int] = _wall_clock_ms) -> Outbox:
        """An outbox that lives only as long as the process: for tests and tools, not terminals."""
        return cls(IN_MEMORY, clock_ms=clock_ms)

    def _initialise_sequence(self, clock_ms: Callable[[], int]) -> None:
        # A new outbox starts its numbers at the wall clock in microsecond-sized steps, so that a
        # terminal whose disk was wiped never reuses a (device_id, seq) the control plane has
        # already stored (the ingest would take the new record for a duplicate and drop it).
        first = clock_ms() * 1000
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', ?)", (first,))
            # Kept for audits: every seq from first_seq to next_seq - 1 was given to a record.
            # (An outbox made before this key existed counts from its first open since.)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) "
                "SELECT 'first_seq', value FROM meta WHERE key = 'next_seq'"
            )

    def allocated(self) -> range:
        """Every sequence number this outbox has ever given out (acknowledged ones included)."""
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        return range(int(rows["first_seq"]), int(rows["next_seq"]))

    def close(self) -> None:
        self._db.close()

    def append(self, channel: Channel, encode_with_seq: Callable[[int], bytes]) -> int:
        """Store one record; ``encode_with_seq`` gets its sequence number and returns the payload.

        Returns once the record is durable on disk. If ``encode_with_seq`` raises, nothing is
        stored, the number stays unused and its exception reaches the caller unchanged.
        """
        try:
            with self._write() as db:
                (seq,) = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
                self._insert(db, seq, channel, encode_with_seq(seq))
        except sqlite3.Error as exc:
            msg = f"cannot append to outbox {self.path}: {exc}"
            raise OutboxError(msg) from exc
        return int(seq)

    def append_linked(
        self, channel: Channel, chain: str, encode_linked: Callable[[int, str], tuple[bytes, str]]
    ) -> int:
        """Store one record of the hash chain ``chain`` (the review pad's log); returns its seq.

        ``encode_linked`` gets the seq and the hash of the chain's previous record ("" for the
        first) and returns the payload and its own hash, which becomes the chain's tip in the
        same transaction: a crash leaves neither a record without its link nor a tip without its
        record. The tip outlives the records, which leave the outbox once acknowledged.
        """
        try:
            with self._write() as db:
                (seq,) = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
                row = db.execute("SELECT tip FROM chain WHERE name = ?", (chain,)).fetchone()
                payload, tip = encode_linked(seq, row[0] if row else "")
                self._insert(db, seq, channel, payload)
                db.execute(
                    "INSERT INTO chain (name, tip) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET tip = excluded.tip",
                    (chain, tip),
                )
        except sqlite3.Error as exc:
            msg = f"cannot append to outbox {self.path}: {exc}"
            raise OutboxError(msg) from exc
        return int(seq)

    @staticmethod
    def _insert(db: sqlite3.Connection, seq: int, channel: Channel, payload: bytes) -> None:
        db.execute(
            "INSERT INTO record (seq, channel, payload, created_at) VALUES (?, ?, ?, ?)",
            (seq, channel.value, payload, time.time()),
        )
        db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))

    def append_many(
        self, channel: Channel, count: int, encode_with_seq: Callable[[int], bytes]
    ) -> range:
        """Store ``count`` records in one transaction; returns their sequence numbers.

        For bulk loads (benchmarks, a simulated backlog): one fsync instead of one per record.
        """
        try:
            with self._write() as db:
                (first,) = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
                seqs = range(first, first + count)
                now = time.time()
                db.executemany(
                    "INSERT INTO record (seq, channel, payload, created_at) VALUES (?, ?, ?, ?)",
                    ((seq, channel.value, encode_with_seq(seq), now) for seq in seqs),
                )
                db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seqs.stop,))
        except sqlite3.Error as exc:
            msg = f"cannot append to outbox {self.path}: {exc}"
            raise OutboxError(msg) from exc
        return seqs

    @contextlib.contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken under the write lock at once; rolled back on any error.

        ``durable=False`` commits without waiting for the disk (no fsync): the next durable
        commit, or a checkpoint, makes it durable along with its own.
        """
        db = self._db
        if not durable:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) may or may not have ended the transaction.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        finally:
            if not durable:
                db.execute("PRAGMA synchronous=FULL")

    def pending(self, after_seq: int = -1, limit: int = 1000) -> list[PendingRecord]:
        """Unacknowledged records with seq > ``after_seq``, oldest first."""
        return self._select(
            "SELECT seq, channel, payload FROM record WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )

    def records(self, seqs: Iterable[int]) -> list[PendingRecord]:
        """The records among ``seqs`` still in the outbox, oldest first."""
        wanted = sorted(set(seqs))
        found: list[PendingRecord] = []
        for start in range(0, len(wanted), _MAX_VARIABLES):
            chunk = wanted[start : start + _MAX_VARIABLES]
            marks = ",".join("?" * len(chunk))
            found += self._select(
                f"SELECT seq, channel, payload FROM record WHERE seq IN ({marks}) ORDER BY seq",  # noqa: S608 - only "?" marks are formatted in
                chunk,
            )
        return found

    def _select(self, sql: str, params: Iterable[object]) -> list[PendingRecord]:
        try:
            rows = self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            msg = f"cannot read outbox {self.path}: {exc}"
            raise OutboxError(msg) from exc
        return [
            PendingRecord(seq, _channel(channel), bytes(payload)) for seq, channel, payload in rows
        ]

    def acknowledge(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged records; returns how many were still there.

        Unknown and repeated seqs are ignored: the control plane acknowledges duplicates again.
        """
        runs = consecutive_runs(seqs)
        if not runs:
            return 0
        try:
            with self._write(durable=False) as db:
                cursor = db.executemany("DELETE FROM record WHERE seq BETWEEN ? AND ?", runs)
        except sqlite3.Error as exc:
            msg = f"cannot delete acknowledged records from outbox {self.path}: {exc}"
            raise OutboxError(msg) from exc
        return cursor.rowcount

    def backlog(self) -> int:
        """How many records wait for their acknowledgement."""
        (count,) = self._db.execute("SELECT count(*) FROM record").fetchone()
        return int(count)

    def empty(self) -> bool:
        """True when every record has been acknowledged (cheaper than ``backlog() == 0``)."""
        return self._db.execute("SELECT 1 FROM record LIMIT 1").fetchone() is None

    def used_bytes(self) -> int:
        """Bytes the stored records occupy (pages in use; freed pages are reused, not counted)."""
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
        (size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int((pages - free) * size)

    def near_full(self) -> bool:
        """True once the records use ``WARN_RATIO`` of ``max_bytes``: time to raise the alarm."""
        return self.used_bytes() >= self.max_bytes * WARN_RATIO


def consecutive_runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """The distinct seqs as (first, last) runs of consecutive numbers, in order.

    An ack lists a committed batch, mostly one unbroken run: one range delete instead of one
    delete per record.
    """
    runs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
