"""Session counters: the file one only goes up across restarts; the memory one from a start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edge.agent.sessions import FileSessionCounter, MemorySessionCounter


def CLOCK_AT_EPOCH() -> int:  # noqa: N802 - a constant clock, named like one
    """A clock that never advances (an RTC reset to 1970), so only the stored number counts."""
    return 0


def test_first_session_is_one_and_is_persisted(tmp_path: Path) -> None:
    counter = FileSessionCounter(tmp_path, clock_ms=CLOCK_AT_EPOCH)

    assert counter.next() == 1
    assert (tmp_path / "session").read_text() == "1\n"


def test_counts_up_within_one_instance(tmp_path: Path) -> None:
    counter = FileSessionCounter(tmp_path, clock_ms=CLOCK_AT_EPOCH)

    assert [counter.next() for _ in range(5)] == [1, 2, 3, 4, 5]


def test_counts_up_across_instances_as_across_restarts(tmp_path: Path) -> None:
    seen = []
    for _ in range(4):
        counter = FileSessionCounter(
            tmp_path, clock_ms=CLOCK_AT_EPOCH
        )  # a new process after each restart
        seen.extend([counter.next(), counter.next()])

    assert seen == list(range(1, 9))
    assert (tmp_path / "session").read_text().strip() == "8"


def test_continues_from_a_number_written_by_an_earlier_version(tmp_path: Path) -> None:
    (tmp_path / "session").write_text("  41 \n")

    assert FileSessionCounter(tmp_path, clock_ms=CLOCK_AT_EPOCH).next() == 42


def test_creates_a_missing_state_dir(tmp_path: Path) -> None:
    state_dir = tmp_path / "var" / "lib" / "termfleet-agent"

    assert FileSessionCounter(state_dir, clock_ms=CLOCK_AT_EPOCH).next() == 1
    assert state_dir.is_dir()
    assert (state_dir / "session").read_text() == "1\n"


def test_survives_a_leftover_tmp_file_from_a_crash(tmp_path: Path) -> None:
    (tmp_path / "session").write_text("7\n")
    (tmp_path / "session.tmp").write_text("garbage from a write cut short")

    counter = FileSessionCounter(tmp_path, clock_ms=CLOCK_AT_EPOCH)

    assert counter.next() == 8
    assert counter.next() == 9
    assert (tmp_path / "session").read_text() == "9\n"
    assert not (tmp_path / "session.tmp").exists()


def test_a_leftover_tmp_file_alone_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "session.tmp").write_text("99\n")

    assert FileSessionCounter(tmp_path, clock_ms=CLOCK_AT_EPOCH).next() == 1


def test_leaves_only_the_session_file_behind(tmp_path: Path) -> None:
    counter = FileSessionCounter(tmp_path, clock_ms=CLOCK_AT_EPOCH)
    for _ in range(3):
        counter.next()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["session"]


def test_separate_state_dirs_count_separately(tmp_path: Path) -> None:
    first = FileSessionCounter(tmp_path / "a", clock_ms=CLOCK_AT_EPOCH)
    second = FileSessionCounter(tmp_path / "b", clock_ms=CLOCK_AT_EPOCH)
    first.next()
    first.next()

    assert second.next() == 1
    assert first.next() == 3


def test_the_rename_is_made_durable_by_syncing_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Terminals lose power without warning. Without an fsync of the directory after the rename,
    # the new number can be lost while the online of that session has already gone out; the next
    # boot then reuses the session and its online ranks below the stored offline of the same one.
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr("edge.agent.sessions.os.fsync", recording_fsync)

    FileSessionCounter(tmp_path, clock_ms=CLOCK_AT_EPOCH).next()

    assert "file" in synced
    assert "dir" in synced


def test_memory_counter_starts_just_above_its_start() -> None:
    counter = MemorySessionCounter(1_700_000_000)

    assert [counter.next() for _ in range(3)] == [1_700_000_001, 1_700_000_002, 1_700_000_003]


def test_memory_counters_are_independent() -> None:
    first = MemorySessionCounter(0)
    second = MemorySessionCounter(10)
    first.next()

    assert second.next() == 11
    assert first.next() == 2


def test_wall_clock_ahead_of_the_stored_number_wins(tmp_path: Path) -> None:
    # A terminal whose state dir was wiped must still outrank the presence stored for it.
    (tmp_path / "session").write_text("5\n")

    assert (
        FileSessionCounter(tmp_path, clock_ms=lambda: 1_795_000_000_000).next() == 1_795_000_000_000
    )


def test_clock_set_back_never_makes_the_counter_go_back(tmp_path: Path) -> None:
    times = iter([2_000, 1_000, 1_500])
    counter = FileSessionCounter(tmp_path, clock_ms=lambda: next(times))

    assert [counter.next(), counter.next(), counter.next()] == [2_000, 2_001, 2_002]
