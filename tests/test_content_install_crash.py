"""edge.content.install stopped at every step, by process death and by an exception.

After ``recover`` the terminal shows exactly the old content or exactly the new, nothing else is
left behind, and the install retried then succeeds (or finds it done).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.content.install import ContentStore
from edge.content.layout import InstallError, InstallReason, InstallStep
from edge.content.signing import new_signing_key, public_key_text
from tests.test_content_install import (
    NAME,
    content_of,
    current_tree,
    kept_versions,
    leftovers,
    package,
    signed_package_file,
)

REPO = Path(__file__).resolve().parents[1]
CRASHED = 17
"""The child's exit status when it died at the step; any other status means it never got there."""

FILES = len(content_of(1))
LINK_STEPS = [
    InstallStep.PREVIOUS_NEW_WRITTEN,
    InstallStep.PREVIOUS_REPLACED,
    InstallStep.PREVIOUS_FSYNCED,
    InstallStep.CURRENT_NEW_WRITTEN,
    InstallStep.CURRENT_REPLACED,
    InstallStep.CURRENT_FSYNCED,
]
PER_FILE = {InstallStep.FILE_WRITTEN, InstallStep.FILE_FSYNCED}
# Each step once; the per-file steps at the first file and at the last.
UPGRADE_STOPS = [
    (step, nth) for step in InstallStep for nth in ((1, FILES) if step in PER_FILE else (1,))
]
FIRST_INSTALL_STOPS = [
    (step, nth) for step, nth in UPGRADE_STOPS if not step.startswith("previous_")
]

# The child verifies a real signed package and installs it through the real store (or rolls
# back), and dies with os._exit at the nth time the step passes: no cleanup, no finally, as at a
# power cut.
_CHILD = """
import os, sys
from pathlib import Path
from edge.content.install import ContentStore
from edge.content.package import open_package
from edge.content.signing import trusted_keys

root, action, target, public_key, step, nth, crashed = sys.argv[1:]
passed = 0

def crash_at(reached):
    global passed
    if reached == step:
        passed += 1
        if passed == int(nth):
            os._exit(int(crashed))

store = ContentStore(Path(root), crash_at=crash_at, space_margin_bytes=0)
if action == "install":
    store.install(open_package(Path(target), trusted_keys([public_key])))
else:
    store.rollback(target)
"""


class CrashError(Exception):
    """Raised by the crash hook: the install stopped by an exception at a step."""


def _die_at(root: Path, action: str, version: int, step: InstallStep, nth: int) -> None:
    """Run ``action`` in a child process that ends itself when ``step`` passes the nth time."""
    key = new_signing_key()
    target = str(signed_package_file(root.parent, version, key)) if action == "install" else NAME
    argv = [str(root), action, target, public_key_text(key.verify_key), step, str(nth)]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv, str(CRASHED)],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    assert child.returncode == CRASHED, child.stderr.decode()


def _raise_at(root: Path, version: int, step: InstallStep, nth: int) -> None:
    passed = 0

    def crash_at(reached: InstallStep) -> None:
        nonlocal passed
        passed += reached == step
        if reached == step and passed == nth:
            raise CrashError(step)

    with pytest.raises(CrashError):
        ContentStore(root, crash_at=crash_at, space_margin_bytes=0).install(package(version))


def _installed(root: Path, *versions: int) -> ContentStore:
    store = ContentStore(root, space_margin_bytes=0)
    for version in versions:
        store.install(package(version))
    return store


def _committed(step: InstallStep) -> bool:
    """Whether an install stopped at ``step`` shows the new version: ``current`` was replaced."""
    steps = list(InstallStep)
    return steps.index(step) >= steps.index(InstallStep.CURRENT_REPLACED)


def _assert_old_or_new_then_retry(
    root: Path, old: int | None, new: int, *, committed: bool
) -> None:
    """After recovery: the old or the new content whole, no leftovers; the retry ends on new."""
    store = ContentStore(root, space_margin_bytes=0)
    store.recover()
    shown = current_tree(root)
    before = None if old is None else content_of(old)
    assert shown == (content_of(new) if committed else before)
    assert leftovers(root) == []
    links = [root / NAME / "current", root / NAME / "previous"]
    assert kept_versions(root) == {link.resolve().name for link in links if link.exists()}
    assert store.recover() == ()

    if shown == content_of(new):
        with pytest.raises(InstallError) as done:
            store.install(package(new))
        assert done.value.reason is InstallReason.ALREADY_INSTALLED
    else:
        assert store.install(package(new)).version == new
    assert current_tree(root) == content_of(new)
    assert store.installed_version(NAME) == new
    previous = root / NAME / "previous"
    assert (previous.resolve().name if previous.exists() else None) == (
        None if old is None else str(old)
    )
    assert store.install(package(new + 1)).previous == new


@pytest.mark.parametrize(("step", "nth"), UPGRADE_STOPS)
def test_an_upgrade_killed_at_any_step_shows_the_old_or_the_new(
    tmp_path: Path, step: InstallStep, nth: int
) -> None:
    root = tmp_path / "content"
    _installed(root, 1, 2)
    _die_at(root, "install", 3, step, nth)
    _assert_old_or_new_then_retry(root, 2, 3, committed=_committed(step))


@pytest.mark.parametrize(("step", "nth"), FIRST_INSTALL_STOPS)
def test_a_first_install_killed_at_any_step_shows_nothing_or_the_new(
    tmp_path: Path, step: InstallStep, nth: int
) -> None:
    root = tmp_path / "content"
    _die_at(root, "install", 1, step, nth)
    _assert_old_or_new_then_retry(root, None, 1, committed=_committed(step))


@pytest.mark.parametrize(("step", "nth"), UPGRADE_STOPS)
def test_an_upgrade_stopped_by_an_exception_at_any_step_shows_the_old_or_the_new(
    tmp_path: Path, step: InstallStep, nth: int
) -> None:
    root = tmp_path / "content"
    _installed(root, 1, 2)
    _raise_at(root, 3, step, nth)
    _assert_old_or_new_then_retry(root, 2, 3, committed=_committed(step))


@pytest.mark.parametrize(("step", "nth"), FIRST_INSTALL_STOPS)
def test_a_first_install_stopped_by_an_exception_shows_nothing_or_the_new(
    tmp_path: Path, step: InstallStep, nth: int
) -> None:
    root = tmp_path / "content"
    _raise_at(root, 1, step, nth)
    _assert_old_or_new_then_retry(root, None, 1, committed=_committed(step))


# Where a rollback from 2 to 1 killed at each step stands after recovery: (current, previous).
# The link to the version rolled back to moves first, so a crash between the two links loses
# the version rolled back from (pruned as unlinked), never the one rolled back to.
ROLLBACK_STOPS = {
    InstallStep.CURRENT_NEW_WRITTEN: (2, 1),
    InstallStep.CURRENT_REPLACED: (1, 1),
    InstallStep.CURRENT_FSYNCED: (1, 1),
    InstallStep.PREVIOUS_NEW_WRITTEN: (1, 1),
    InstallStep.PREVIOUS_REPLACED: (1, 2),
    InstallStep.PREVIOUS_FSYNCED: (1, 2),
}


def test_every_link_step_of_a_rollback_is_a_stop() -> None:
    assert set(ROLLBACK_STOPS) == set(LINK_STEPS)


@pytest.mark.parametrize(("step", "links"), ROLLBACK_STOPS.items())
def test_a_rollback_killed_at_any_step_shows_one_whole_version(
    tmp_path: Path, step: InstallStep, links: tuple[int, int]
) -> None:
    root = tmp_path / "content"
    _installed(root, 1, 2)
    _die_at(root, "rollback", 2, step, 1)
    store = ContentStore(root, space_margin_bytes=0)
    store.recover()
    current, previous = links
    assert current_tree(root) == content_of(current)
    assert (root / NAME / "previous").resolve().name == str(previous)
    assert kept_versions(root) == {str(current), str(previous)}
    assert leftovers(root) == []
    assert store.install(package(3)).previous == current
