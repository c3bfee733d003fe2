"""edge.content.install: versions kept and pruned, rollback, refusals, recovery, readers."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from edge.content import layout
from edge.content.install import ContentStore
from edge.content.layout import InstallError, InstallReason, InstallStep
from edge.content.manifest import PackageError, PackageKind, PackageReason
from edge.content.package import open_package, pack
from edge.content.signing import new_signing_key, public_key_text, trusted_keys
from edge.content.source import scan_directory

NAME = "guide-cards"


@dataclass(frozen=True)
class FakeFile:
    path: str
    size: int


@dataclass(frozen=True)
class FakeManifest:
    name: str
    version: int
    files: tuple[FakeFile, ...]


@dataclass(frozen=True)
class FakePackage:
    """A verified package as the installer sees it, its files held in memory."""

    manifest: FakeManifest
    contents: dict[str, bytes]

    def extract_to(self, directory: Path, on_file: Callable[[Path], None] | None = None) -> None:
        for entry in self.manifest.files:
            target = directory / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.contents[entry.path])
            if on_file is not None:
                on_file(target)


def content_of(version: int) -> dict[str, bytes]:
    """Files of ``version``: every file differs between versions, and one is its own."""
    return {
        "index.json": b'{"version": %d}' % version,
        "cards/social-security.txt": f"明白卡 第{version}版\n".encode() * version,
        "notices/hours.txt": f"opening hours, edition {version}".encode(),
        f"video/clip-{version}.bin": bytes([version % 256]) * (1000 + version),
    }


def package(
    version: int, name: str = NAME, contents: dict[str, bytes] | None = None
) -> FakePackage:
    files = content_of(version) if contents is None else contents
    entries = tuple(FakeFile(path, len(data)) for path, data in files.items())
    return FakePackage(FakeManifest(name, version, entries), files)


def write_source(directory: Path, version: int) -> Path:
    """A directory holding ``content_of(version)``, as an author would pack it."""
    for path, data in content_of(version).items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_bytes(data)
    return directory


def signed_package_file(directory: Path, version: int, key: SigningKey) -> Path:
    """A real package file of ``content_of(version)``, signed with ``key``, in ``directory``."""
    source = write_source(directory / f"source-{version}", version)
    out = directory / f"{NAME}-{version}.tfpkg"
    pack(scan_directory(source), out, kind=PackageKind.CONTENT, name=NAME, version=version, key=key)
    return out


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by its relative path."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


def current_tree(root: Path, name: str = NAME) -> dict[str, bytes] | None:
    current = root / name / "current"
    return tree(current.resolve()) if current.exists() else None


def kept_versions(root: Path, name: str = NAME) -> set[str]:
    return {path.name for path in (root / name / "versions").iterdir()}


def leftovers(root: Path, name: str = NAME) -> list[str]:
    """What a finished install or a recovery must not leave: staging entries and new links."""
    home = root / name
    return [p.name for p in (home / "staging").iterdir()] + [
        p.name for p in home.iterdir() if p.name.endswith(layout.NEW_LINK_SUFFIX)
    ]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "content"


@pytest.fixture
def store(root: Path) -> ContentStore:
    return ContentStore(root, space_margin_bytes=0)


def test_three_installs_keep_current_and_previous_and_prune_the_rest(
    root: Path, store: ContentStore
) -> None:
    results = [store.install(package(version)) for version in (1, 2, 3)]
    assert [(r.version, r.previous) for r in results] == [(1, None), (2, 1), (3, 2)]
    home = root / NAME
    links = ((home / "current").readlink(), (home / "previous").readlink())
    assert links == (Path("versions/3"), Path("versions/2"))
    assert kept_versions(root) == {"2", "3"}
    assert current_tree(root) == content_of(3)
    assert tree(home / "previous") == content_of(2)
    assert leftovers(root) == []
    assert store.installed_version(NAME) == 3


def test_rollback_swaps_current_and_previous_so_a_second_one_goes_forward(
    root: Path, store: ContentStore
) -> None:
    for version in (1, 2, 3):
        store.install(package(version))
    back = store.rollback(NAME)
    assert (back.version, back.previous) == (2, 3)
    assert current_tree(root) == content_of(2)
    assert store.installed_version(NAME) == 2
    forward = store.rollback(NAME)
    assert (forward.version, forward.previous) == (3, 2)
    assert current_tree(root) == content_of(3)
    assert kept_versions(root) == {"2", "3"}


def test_the_links_are_relative_so_the_store_can_move(root: Path, store: ContentStore) -> None:
    store.install(package(1))
    store.install(package(2))
    moved = root.parent / "moved"
    root.rename(moved)
    assert current_tree(moved) == content_of(2)
    assert ContentStore(moved).installed_version(NAME) == 2


def test_the_current_version_is_refused_and_nothing_changes(
    root: Path, store: ContentStore
) -> None:
    store.install(package(1))
    store.install(package(2))
    with pytest.raises(InstallError) as refused:
        store.install(package(2, contents={"other.txt": b"not what is installed"}))
    assert refused.value.reason is InstallReason.ALREADY_INSTALLED
    assert current_tree(root) == content_of(2)
    assert kept_versions(root) == {"1", "2"}
    assert leftovers(root) == []


def test_the_previous_version_installed_again_is_extracted_afresh(
    root: Path, store: ContentStore
) -> None:
    # The verifier lets an older package through for a rollback rollout; what is on disk for
    # that version (here with a file planted in it) is replaced, not trusted.
    store.install(package(1))
    store.install(package(2))
    (root / NAME / "versions" / "1" / "planted.txt").write_text("not in the package")
    result = store.install(package(1))
    assert (result.version, result.previous) == (1, 2)
    assert current_tree(root) == content_of(1)
    assert kept_versions(root) == {"1", "2"}
    assert leftovers(root) == []


def test_rollback_needs_a_previous_version(root: Path, store: ContentStore) -> None:
    with pytest.raises(InstallError) as never_installed:
        store.rollback(NAME)
    assert never_installed.value.reason is InstallReason.NOT_INSTALLED
    store.install(package(1))
    with pytest.raises(InstallError) as first_only:
        store.rollback(NAME)
    assert first_only.value.reason is InstallReason.NO_PREVIOUS
    assert current_tree(root) == content_of(1)


class _ChangedAfterVerifyPackage(FakePackage):
    """Finds a file changed since verification after writing the first one, as extract_to does."""

    def extract_to(self, directory: Path, on_file: Callable[[Path], None] | None = None) -> None:
        first = self.manifest.files[0]
        (directory / first.path).write_bytes(self.contents[first.path])
        if on_file is not None:
            on_file(directory / first.path)
        msg = "notices/hours.txt changed after it was verified"
        raise PackageError(PackageReason.HASH_MISMATCH, msg)


def test_a_package_changed_after_verification_leaves_current_untouched(
    root: Path, store: ContentStore
) -> None:
    store.install(package(1))
    changed = package(2)
    with pytest.raises(PackageError) as refused:
        store.install(_ChangedAfterVerifyPackage(changed.manifest, changed.contents))
    assert refused.value.reason is PackageReason.HASH_MISMATCH
    assert current_tree(root) == content_of(1)
    assert kept_versions(root) == {"1"}
    assert leftovers(root) == []
    assert store.install(package(2)).version == 2


def test_signed_packages_verified_then_installed_and_rolled_back(
    tmp_path: Path, root: Path, store: ContentStore
) -> None:
    key = new_signing_key()
    trusted = trusted_keys([public_key_text(key.verify_key)])
    for version in (1, 2, 3):
        verified = open_package(
            signed_package_file(tmp_path, version, key),
            trusted,
            installed_version=store.installed_version(NAME),
        )
        store.install(verified)
        assert current_tree(root) == content_of(version)
    assert store.rollback(NAME).version == 2
    assert current_tree(root) == content_of(2)
    assert kept_versions(root) == {"2", "3"}


def test_a_package_file_changed_after_verification_leaves_current_untouched(
    tmp_path: Path, root: Path, store: ContentStore
) -> None:
    key = new_signing_key()
    trusted = trusted_keys([public_key_text(key.verify_key)])
    store.install(open_package(signed_package_file(tmp_path, 1, key), trusted))
    path = signed_package_file(tmp_path, 2, key)
    verified = open_package(path, trusted, installed_version=1)
    original = content_of(2)["notices/hours.txt"]
    data = path.read_bytes()
    assert data.count(original) == 1
    path.write_bytes(data.replace(original, original.upper()))
    with pytest.raises(PackageError) as refused:
        store.install(verified)
    assert refused.value.reason is PackageReason.HASH_MISMATCH
    assert current_tree(root) == content_of(1)
    assert (kept_versions(root), leftovers(root)) == ({"1"}, [])


def test_too_little_free_space_is_refused_before_anything_is_written(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    margin = 10_000
    store = ContentStore(root, space_margin_bytes=margin)
    store.install(package(1))
    needed = layout.space_needed((len(data) for data in content_of(2).values()), margin)
    real_usage = shutil.disk_usage

    def usage_with_free(free: int) -> Callable[[str | os.PathLike[str]], object]:
        return lambda path: real_usage(path)._replace(free=free)

    monkeypatch.setattr(shutil, "disk_usage", usage_with_free(needed - 1))
    with pytest.raises(InstallError) as refused:
        store.install(package(2))
    assert refused.value.reason is InstallReason.NO_SPACE
    assert current_tree(root) == content_of(1)
    assert (kept_versions(root), leftovers(root)) == ({"1"}, [])

    monkeypatch.setattr(shutil, "disk_usage", usage_with_free(needed))
    assert store.install(package(2)).version == 2


@given(st.lists(st.integers(0, 10**10), max_size=50), st.integers(0, 10**9))
def test_space_needed_covers_every_file_in_whole_blocks(sizes: list[int], margin: int) -> None:
    needed = layout.space_needed(sizes, margin)
    assert needed % layout.FILE_BLOCK_BYTES == margin % layout.FILE_BLOCK_BYTES
    assert sum(sizes) + margin <= needed
    assert needed < sum(sizes) + margin + layout.FILE_BLOCK_BYTES * (len(sizes) + 1)


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".hidden", "a/b", "../outside", "nul\0byte", "x" * 256]
)
def test_a_name_that_is_no_plain_file_name_is_refused(root: Path, name: str) -> None:
    with pytest.raises(InstallError) as refused:
        ContentStore(root).install(package(1, name=name))
    assert refused.value.reason is InstallReason.BAD_NAME
    assert not root.exists() or list(root.iterdir()) == []


@pytest.mark.parametrize("version", [-1, True])
def test_a_version_that_is_no_whole_number_is_refused(root: Path, version: int) -> None:
    with pytest.raises(InstallError) as refused:
        ContentStore(root).install(package(version))
    assert refused.value.reason is InstallReason.BAD_VERSION


def test_a_second_installer_at_work_is_refused(root: Path) -> None:
    refusals: list[InstallReason] = []

    def meanwhile_install_elsewhere(step: InstallStep) -> None:
        if step is InstallStep.STAGING_FSYNCED:
            with pytest.raises(InstallError) as refused:
                ContentStore(root).install(package(3))
            refusals.append(refused.value.reason)

    ContentStore(root).install(package(1))
    ContentStore(root, crash_at=meanwhile_install_elsewhere).install(package(2))
    assert refusals == [InstallReason.BUSY]
    assert current_tree(root) == content_of(2)


def _steps_of(run: Callable[[ContentStore], object], root: Path) -> list[InstallStep]:
    steps: list[InstallStep] = []
    run(ContentStore(root, crash_at=steps.append))
    return steps


def test_the_steps_pass_in_their_order(root: Path) -> None:
    files = len(content_of(1))
    first = _steps_of(lambda s: s.install(package(1)), root)
    second = _steps_of(lambda s: s.install(package(2)), root)
    back = _steps_of(lambda s: s.rollback(NAME), root)
    per_file = [InstallStep.FILE_WRITTEN, InstallStep.FILE_FSYNCED] * files
    placed = [
        InstallStep.STAGING_FSYNCED,
        InstallStep.RENAMED_INTO_VERSIONS,
        InstallStep.VERSIONS_FSYNCED,
    ]
    previous = [
        InstallStep.PREVIOUS_NEW_WRITTEN,
        InstallStep.PREVIOUS_REPLACED,
        InstallStep.PREVIOUS_FSYNCED,
    ]
    current = [
        InstallStep.CURRENT_NEW_WRITTEN,
        InstallStep.CURRENT_REPLACED,
        InstallStep.CURRENT_FSYNCED,
    ]
    assert first == [*per_file, *placed, *current, InstallStep.PRUNED]
    assert second == [*per_file, *placed, *previous, *current, InstallStep.PRUNED]
    assert back == [*current, *previous]
    assert set(second) == set(InstallStep)


def test_recover_removes_what_a_crash_left_once_and_never_current(
    root: Path, store: ContentStore
) -> None:
    store.install(package(1))
    store.install(package(2))
    home = root / NAME
    (home / "staging" / "3.abc123" / "cards").mkdir(parents=True)
    (home / "staging" / "3.abc123" / "cards" / "half.txt").write_bytes(b"half")
    (home / "current.new").symlink_to("versions/3")
    (home / "previous.new").symlink_to("versions/2")
    (home / "versions" / "3").mkdir()
    (home / "versions" / "stray").write_bytes(b"")
    removed = store.recover()
    assert {p.relative_to(home).as_posix() for p in removed} == {
        "staging/3.abc123",
        "current.new",
        "previous.new",
        "versions/3",
        "versions/stray",
    }
    assert store.recover() == ()
    assert current_tree(root) == content_of(2)
    assert kept_versions(root) == {"1", "2"}
    assert leftovers(root) == []


def test_recover_drops_a_previous_whose_version_is_gone(root: Path, store: ContentStore) -> None:
    store.install(package(1))
    store.install(package(2))
    shutil.rmtree(root / NAME / "versions" / "1")
    assert store.recover() == (root / NAME / "previous",)
    assert not (root / NAME / "previous").is_symlink()
    assert current_tree(root) == content_of(2)


def test_recover_on_an_empty_or_missing_root_does_nothing(root: Path) -> None:
    assert ContentStore(root).recover() == ()
    root.mkdir()
    (root / ".hidden").mkdir()
    assert ContentStore(root).recover() == ()
    assert [p.name for p in root.iterdir()] == [".hidden"]


def test_a_version_being_read_outlives_the_installs_that_replace_it(
    root: Path, store: ContentStore
) -> None:
    store.install(package(1))
    with store.reading(NAME) as held:
        store.install(package(2))
        store.install(package(3))
        assert tree(held) == content_of(1)
        assert kept_versions(root) == {"1", "2", "3"}
    assert store.recover() == (root / NAME / "versions" / "1",)
    assert kept_versions(root) == {"2", "3"}


def test_a_version_being_read_is_not_replaced_by_an_install(
    root: Path, store: ContentStore
) -> None:
    store.install(package(1))
    with store.reading(NAME) as held:
        store.install(package(2))
        with pytest.raises(InstallError) as refused:
            store.install(package(1))
        assert refused.value.reason is InstallReason.VERSION_IN_USE
        assert tree(held) == content_of(1)
    assert current_tree(root) == content_of(2)
    assert leftovers(root) == []


def test_reading_what_was_never_installed_is_refused(store: ContentStore) -> None:
    with pytest.raises(InstallError) as refused, store.reading(NAME):
        pass
    assert refused.value.reason is InstallReason.NOT_INSTALLED


@dataclass
class _Reader:
    """Reads the current version whole, again and again, until asked to stop."""

    store: ContentStore
    stop: threading.Event
    first_read: threading.Event
    seen: list[int]
    wrong: list[str]

    def run(self) -> None:
        try:
            while True:
                # One more read once asked to stop: it starts after the last install.
                stopping = self.stop.is_set()
                self.read_once()
                self.first_read.set()
                if stopping:
                    return
        except Exception as exc:  # noqa: BLE001 - the test asserts there was none
            self.wrong.append(repr(exc))
            self.first_read.set()

    def read_once(self) -> None:
        with self.store.reading(NAME) as directory:
            version = int(directory.name)
            if tree(directory) != content_of(version):
                self.wrong.append(f"version {version} read incomplete or mixed")
        self.seen.append(version)


def _readers(store: ContentStore, count: int) -> Iterator[tuple[_Reader, threading.Thread]]:
    stop = threading.Event()
    for _ in range(count):
        reader = _Reader(store, stop, threading.Event(), [], [])
        yield reader, threading.Thread(target=reader.run, name="content-reader", daemon=True)


def test_readers_see_one_whole_version_at_a_time_during_50_installs(
    root: Path, store: ContentStore
) -> None:
    store.install(package(1))
    readers = list(_readers(store, 2))
    for reader, thread in readers:
        thread.start()
        reader.first_read.wait()
    for version in range(2, 52):
        store.install(package(version))
    readers[0][0].stop.set()
    for _, thread in readers:
        thread.join()
    for reader, _ in readers:
        assert reader.wrong == []
        assert reader.seen == sorted(reader.seen)
        assert reader.seen[0] >= 1
        assert reader.seen[-1] == 51
    assert current_tree(root) == content_of(51)
