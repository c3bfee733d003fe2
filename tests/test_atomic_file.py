"""edge.atomic_file: whole files replaced at once, with their mode from the first byte."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.atomic_file import stage, write_atomic


@pytest.mark.usefixtures("open_umask")
def test_replacing_a_readable_file_leaves_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("old")
    path.chmod(0o644)
    write_atomic(path, b"new")
    assert (path.read_bytes(), stat.S_IMODE(path.stat().st_mode)) == (b"new", 0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["agent.toml"]


@pytest.mark.usefixtures("open_umask")
def test_the_staged_file_has_its_mode_before_any_byte_is_written(tmp_path: Path) -> None:
    staged = stage(tmp_path / "key.pem", b"secret", 0o600)
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    assert staged.parent == tmp_path
    assert staged.name.startswith(".key.pem.")


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "dynsec.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["dynsec.json"]


def test_a_symlink_in_the_staging_name_is_not_followed(tmp_path: Path) -> None:
    # The staging name is random and created with O_EXCL | O_NOFOLLOW: nothing planted beside
    # the target can redirect the write. Writing over a target that is a symlink replaces the
    # link itself, never the file it points to.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("untouched")
    link = tmp_path / "agent.toml"
    link.symlink_to(elsewhere)
    write_atomic(link, b"new")
    assert elsewhere.read_text() == "untouched"
    assert not link.is_symlink()
    assert link.read_bytes() == b"new"
