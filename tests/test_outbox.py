"""The agent's SQLite outbox: seq allocation, paging, acknowledgement, space, crashes, kill -9."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent.outbox import Outbox, OutboxError
from edge.protocol import Channel

CLOCK_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z in milliseconds: the injected wall clock of a new outbox."""
FIRST_SEQ = CLOCK_MS * 1000
REPO = Path(__file__).resolve().parents[1]


def body(seq: int) -> bytes:
    return b'{"v":1,"seq":%d}' % seq


def append(box: Outbox, n: int, channel: Channel = Channel.USAGE) -> list[int]:
    return [box.append(channel, body) for _ in range(n)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite3"


@pytest.fixture
def box(path: Path) -> Iterator[Outbox]:
    outbox = Outbox(path, clock_ms=lambda: CLOCK_MS)
    yield outbox
    outbox.close()


def test_a_new_outbox_starts_at_the_injected_clock_times_1000(box: Outbox) -> None:
    assert append(box, 3) == [FIRST_SEQ, FIRST_SEQ + 1, FIRST_SEQ + 2]


def test_sequence_is_dense_and_increasing_across_reopen_and_not_reset_by_the_clock(
    path: Path,
) -> None:
    first = Outbox(path, clock_ms=lambda: CLOCK_MS)
    seqs = append(first, 5, Channel.USAGE)
    first.acknowledge(seqs)  # an empty outbox still remembers where its numbers are
    first.close()
    for later_clock in (CLOCK_MS + 10_000, CLOCK_MS - 10_000):
        reopened = Outbox(path, clock_ms=lambda c=later_clock: c)  # type: ignore[misc]
        seqs += append(reopened, 2, Channel.REVIEW) + append(reopened, 1, Channel.EVENT)
        reopened.close()

    assert seqs == list(range(FIRST_SEQ, FIRST_SEQ + 11))


def test_the_payload_is_built_with_the_seq_it_is_stored_under(box: Outbox) -> None:
    seq = box.append(Channel.REVIEW, body)

    [record] = box.pending()
    assert (record.seq, record.channel, record.payload) == (seq, Channel.REVIEW, body(seq))


def test_pending_is_oldest_first_and_pages_by_after_and_limit(box: Outbox) -> None:
    channels = [Channel.USAGE, Channel.REVIEW, Channel.EVENT] * 4
    seqs = [box.append(channel, body) for channel in channels]

    assert [r.seq for r in box.pending()] == seqs
    assert [r.channel for r in box.pending()] == channels
    pages, after = [], -1
    while page := box.pending(after, limit=5):
        pages.append([r.seq for r in page])
        after = page[-1].seq
    assert pages == [seqs[0:5], seqs[5:10], seqs[10:12]]
    assert box.pending(seqs[-1]) == []


def test_records_returns_those_still_there_in_seq_order(box: Outbox) -> None:
    seqs = append(box, 1200)  # more than one IN (...) chunk
    box.acknowledge(seqs[100:200])

    wanted = [*reversed(seqs), FIRST_SEQ - 1, 1]
    assert [r.seq for r in box.records(wanted)] == seqs[:100] + seqs[200:]
    assert box.records([]) == []


def test_acknowledge_deletes_only_the_listed_seqs_and_is_idempotent(box: Outbox) -> None:
    seqs = append(box, 6)

    assert box.acknowledge([seqs[1], seqs[3]]) == 2
    assert [r.seq for r in box.pending()] == [seqs[0], seqs[2], seqs[4], seqs[5]]
    assert box.acknowledge([seqs[1], seqs[3]]) == 0  # the same ack again
    assert box.acknowledge([1, 2, FIRST_SEQ + 1000]) == 0  # seqs this outbox never had
    assert box.acknowledge([]) == 0
    assert box.backlog() == 4


def test_backlog_and_empty_follow_appends_and_acks(box: Outbox) -> None:
    assert (box.backlog(), box.empty()) == (0, True)
    seqs = append(box, 7)
    assert (box.backlog(), box.empty()) == (7, False)
    box.acknowledge(seqs)
    assert (box.backlog(), box.empty()) == (0, True)


def test_used_bytes_grows_with_records_and_shrinks_back_after_acks(box: Outbox) -> None:
    empty = box.used_bytes()
    seqs = [box.append(Channel.USAGE, lambda s: body(s) + b" " * 2000) for _ in range(200)]
    full = box.used_bytes()
    assert full > empty + 200 * 2000

    box.acknowledge(seqs)
    # Freed pages go to SQLite's freelist and are reused; they no longer count as used.
    assert box.used_bytes() <= empty + 4 * 4096
    file_size = Path(box.path).stat().st_size + Path(f"{box.path}-wal").stat().st_size
    assert file_size > full / 2, "the file keeps its pages; only their use is counted"


def test_near_full_at_the_warning_ratio_of_max_bytes(path: Path) -> None:
    box = Outbox(path, max_bytes=200_000, clock_ms=lambda: CLOCK_MS)
    try:
        assert not box.near_full()
        seqs: list[int] = []
        used_before = 0
        while not box.near_full():
            used_before = box.used_bytes()
            seqs.append(box.append(Channel.USAGE, lambda s: body(s) + b" " * 4000))
            assert len(seqs) < 100, "never became near full"
        assert used_before < 0.8 * 200_000 <= box.used_bytes()

        box.acknowledge(seqs)
        assert not box.near_full()
    finally:
        box.close()


class EncodeFailedError(Exception):
    pass


def test_an_exception_while_encoding_stores_nothing_and_leaves_the_seq_unused(
    box: Outbox, path: Path
) -> None:
    first = box.append(Channel.USAGE, body)

    def fail(_seq: int) -> bytes:
        raise EncodeFailedError

    with pytest.raises(EncodeFailedError):
        box.append(Channel.USAGE, fail)

    assert [r.seq for r in box.pending()] == [first]
    assert box.append(Channel.USAGE, body) == first + 1
    # And no transaction was left open: another connection can write at once.
    other = sqlite3.connect(path, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


_CHILD = """
import sys
from pathlib import Path
from edge.agent.outbox import Outbox
from edge.protocol import Channel

box = Outbox(Path(sys.argv[1]))
while True:
    seq = box.append(Channel.USAGE, lambda s: b'{"v":1,"seq":%d}' % s)
    print(seq, flush=True)
"""


def _append_until_killed(path: Path, kill_after: int) -> list[int]:
    """Every seq a child reported before kill -9 (after ``kill_after`` lines).

    The child appends forever and prints each seq once ``append`` has returned.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    reported: list[int] = []
    try:
        while len(reported) < kill_after:
            line = child.stdout.readline()
            if not line:
                stderr = child.stderr.read().decode() if child.stderr else ""
                raise AssertionError(f"child ended early: {stderr}")
            reported.append(int(line))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        # What it printed before dying counts too; a torn last line (no newline) does not. Read
        # through the same buffered reader: lines it already holds are lost to communicate(),
        # which reads the pipe's descriptor directly (and then counted a record as unreported).
        rest = child.stdout.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    reported += [int(line) for line in rest.decode().split("\n")[:-1]]
    return reported


def test_every_seq_reported_after_append_survives_kill_9(path: Path) -> None:
    reported: list[int] = []
    for kill_after in (150, 40, 300):
        reported += _append_until_killed(path, kill_after)

    box = Outbox(path)
    try:
        stored = [r.seq for r in box.pending(limit=1_000_000)]
    finally:
        box.close()
    assert set(reported) <= set(stored)
    # Dense and never reused across the kills: a killed child may have committed one record it
    # had no time to report, and nothing else.
    assert stored == list(range(stored[0], stored[0] + len(stored)))
    assert len(stored) - len(reported) <= 3
    assert reported == sorted(reported)


def test_a_corrupt_file_is_an_outbox_error_naming_the_file(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an SQLite database, it is a log file\n" * 100)

    with pytest.raises(OutboxError, match=r"cannot open outbox .*outbox\.sqlite3.*not a database"):
        Outbox(path)


def test_a_directory_in_the_way_is_an_outbox_error(path: Path) -> None:
    path.mkdir(parents=True)

    with pytest.raises(OutboxError, match=r"cannot open outbox .*outbox\.sqlite3"):
        Outbox(path)


def test_a_state_dir_that_cannot_be_created_is_an_outbox_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be\n")

    with pytest.raises(OutboxError, match=r"cannot open outbox .*state/outbox\.sqlite3"):
        Outbox(blocker / "outbox.sqlite3")


def test_a_file_that_becomes_unwritable_is_an_outbox_error_on_append(box: Outbox) -> None:
    # Root ignores file modes, so make the database itself refuse writes.
    box._db.execute("PRAGMA query_only=ON")  # noqa: SLF001 - simulating a read-only medium

    with pytest.raises(OutboxError, match=r"cannot append to outbox .*outbox\.sqlite3.*readonly"):
        box.append(Channel.USAGE, body)
    with pytest.raises(OutboxError, match="cannot delete acknowledged records"):
        box.acknowledge([FIRST_SEQ])


def test_in_memory_outbox_works_like_a_file_one() -> None:
    box = Outbox.in_memory(clock_ms=lambda: 5)
    try:
        seqs = append(box, 3)
        assert seqs == [5000, 5001, 5002]
        assert box.acknowledge(seqs[:2]) == 2
        assert [r.seq for r in box.pending()] == [5002]
    finally:
        box.close()


def test_append_returns_only_after_the_commit(box: Outbox, path: Path) -> None:
    seq = box.append(Channel.EVENT, body)

    # A second connection, as a restarted agent would open, sees the record at once.
    other = sqlite3.connect(path)
    try:
        rows = other.execute("SELECT seq FROM record").fetchall()
    finally:
        other.close()
    assert rows == [(seq,)]


def test_append_many_numbers_densely_in_one_transaction(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock_ms=lambda: 7)
    first = outbox.append(Channel.USAGE, lambda seq: b'{"seq":%d}' % seq)
    bulk = outbox.append_many(Channel.USAGE, 1_000, lambda seq: b'{"seq":%d}' % seq)
    after = outbox.append(Channel.USAGE, lambda seq: b'{"seq":%d}' % seq)

    assert bulk == range(first + 1, first + 1_001)
    assert after == bulk.stop
    assert outbox.backlog() == 1_002
    assert outbox.allocated() == range(first, after + 1)
    outbox.close()
