"""Package files: pack a directory into one, and open one, verified, to extract it.

The format is in this package's docstring (``edge.content``). Opening reads the file once, in
order, and believes nothing a tar header says: the signed manifest decides every name and size.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from edge.atomic_file import fsync_directory

from .manifest import (
    MAX_MANIFEST_BYTES,
    FileEntry,
    Manifest,
    PackageError,
    PackageKind,
    PackageReason,
    decode_manifest,
    encode_manifest,
)
from .signing import (
    MAX_SIGNATURE_FILE_BYTES,
    TrustedKeys,
    key_id,
    sign_manifest,
    signature_key_id,
    verify_manifest,
)
from .source import SourceError, SourceFile, SourceReason
from .tar_reader import CHUNK_BYTES, TarReader

if TYPE_CHECKING:
    from nacl.signing import SigningKey

MANIFEST_MEMBER = "manifest.json"
SIGNATURE_MEMBER = "manifest.sig"
FILES_PREFIX = "files/"
PACKAGE_SUFFIX = ".tfpkg"

Progress = Callable[[int], object]
"""Told how many more bytes were read, for a progress bar."""


@dataclass(frozen=True, slots=True)
class VerifiedPackage:
    """A package file whose signature, member list and every file hash have been checked."""

    manifest: Manifest
    manifest_bytes: bytes
    key_id: str
    path: Path

    def extract_to(self, directory: Path, on_file: Callable[[Path], None] | None = None) -> None:
        """Write every file into ``directory`` (fresh and empty), checking each hash again.

        The package file may have changed since it was verified: PackageError then, and the file
        that failed its check is removed. ``on_file`` gets each file once written and closed.
        """
        with self.path.open("rb") as stream:
            reader = TarReader(stream)
            manifest_bytes = _read_member(reader, MANIFEST_MEMBER, MAX_MANIFEST_BYTES)
            if manifest_bytes != self.manifest_bytes:
                msg = f"{MANIFEST_MEMBER} is no longer the one verified"
                raise PackageError(PackageReason.BAD_SIGNATURE, msg)
            # The signature was checked over these very bytes; what manifest.sig says now is moot.
            _read_member(reader, SIGNATURE_MEMBER, MAX_SIGNATURE_FILE_BYTES)
            for entry in _file_members(reader, self.manifest):
                target = directory.joinpath(*entry.path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                _extract_file(reader, entry, target)
                if on_file is not None:
                    on_file(target)


@dataclass(frozen=True, slots=True)
class PackedPackage:
    path: Path
    size: int
    sha256: str
    key_id: str
    manifest: Manifest


def open_package(
    path: Path,
    trusted: TrustedKeys,
    *,
    installed_version: int | None = None,
    allow_older: bool = False,
) -> VerifiedPackage:
    """The package at ``path``, verified against ``trusted`` keys; PackageError with the reason.

    The signature is checked over the exact manifest bytes before anything in them is used, then
    the version against ``installed_version``, then every member's name, size and sha256.
    """
    with path.open("rb") as stream:
        reader = TarReader(stream)
        manifest_bytes = _read_member(reader, MANIFEST_MEMBER, MAX_MANIFEST_BYTES)
        signature = _read_member(reader, SIGNATURE_MEMBER, MAX_SIGNATURE_FILE_BYTES)
        signer = verify_manifest(manifest_bytes, signature, trusted)
        manifest = decode_manifest(manifest_bytes)
        _check_version(manifest.version, installed_version, allow_older=allow_older)
        for entry in _file_members(reader, manifest):
            _copy_checked(reader, entry, lambda _chunk: None)
    return VerifiedPackage(manifest, manifest_bytes, signer, path)


def read_unverified(path: Path) -> tuple[Manifest, str]:
    """The manifest of the package at ``path`` and the id of the key it names, NOT verified."""
    with path.open("rb") as stream:
        reader = TarReader(stream)
        manifest_bytes = _read_member(reader, MANIFEST_MEMBER, MAX_MANIFEST_BYTES)
        signature = _read_member(reader, SIGNATURE_MEMBER, MAX_SIGNATURE_FILE_BYTES)
    return decode_manifest(manifest_bytes), signature_key_id(signature)


def pack(  # noqa: PLR0913 - the manifest's fields, keyword-only
    files: Sequence[SourceFile],
    out: Path,
    *,
    kind: PackageKind,
    name: str,
    version: int,
    key: SigningKey,
    description: str = "",
    created_at: datetime | None = None,
    progress: Progress | None = None,
) -> PackedPackage:
    """Hash ``files`` (from ``scan_directory``), sign the manifest, write the package atomically.

    ManifestError for a name or size the format refuses; SourceError if a file changes while it
    is packed. The bytes depend only on the files, the fields and ``created_at`` (now).
    """
    when = (created_at or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
    entries = tuple(_source_entry(source, progress) for source in files)
    manifest = Manifest(
        kind=kind,
        name=name,
        version=version,
        created_at=when,
        files=entries,
        description=description,
    )
    manifest_bytes = encode_manifest(manifest)
    members = _Members(manifest_bytes, sign_manifest(manifest_bytes, key), files, entries, when)
    size, digest = _write_atomically(out, lambda stream: members.write(stream, progress))
    return PackedPackage(out, size, digest, key_id(key.verify_key), manifest)


def _read_member(reader: TarReader, name: str, limit: int) -> bytes:
    member = reader.next_member()
    if member is None or member.name != name:
        found = "the end" if member is None else repr(member.name)
        msg = f"the package's next member should be {name}, found {found}"
        raise PackageError(PackageReason.MALFORMED, msg)
    if member.size > limit:
        msg = f"{name} takes {member.size} bytes, more than {limit}"
        raise PackageError(PackageReason.TOO_LARGE, msg)
    return reader.read_all(member.size)


def _file_members(reader: TarReader, manifest: Manifest) -> Iterator[FileEntry]:
    """Each entry once the reader stands at its data, which the caller reads; then the end."""
    listed = {FILES_PREFIX + entry.path for entry in manifest.files}
    for entry in manifest.files:
        expected = FILES_PREFIX + entry.path
        member = reader.next_member()
        if member is None:
            msg = f"{expected} is missing: the archive ends before it"
            raise PackageError(PackageReason.MALFORMED, msg)
        _check_listed(member.name, listed, expected)
        if member.size != entry.size:
            msg = f"{expected} has {member.size} bytes, the manifest says {entry.size}"
            raise PackageError(PackageReason.SIZE_MISMATCH, msg)
        yield entry
    extra = reader.next_member()
    if extra is not None:
        _check_listed(extra.name, listed, None)


def _check_listed(name: str, listed: set[str], expected: str | None) -> None:
    if name == expected:
        return
    if name not in listed:
        msg = f"member {name!r} is not in the manifest"
        raise PackageError(PackageReason.UNLISTED_FILE, msg)
    where = f"where {expected} should be" if expected else "again after the last file"
    msg = f"member {name!r} stands {where}"
    raise PackageError(PackageReason.MALFORMED, msg)


def _copy_checked(reader: TarReader, entry: FileEntry, write: Callable[[bytes], object]) -> None:
    digest = hashlib.sha256()

    def both(chunk: bytes) -> None:
        digest.update(chunk)
        write(chunk)

    reader.copy(entry.size, both)
    if digest.hexdigest() != entry.sha256:
        msg = f"{FILES_PREFIX}{entry.path}: its sha256 differs from the manifest's"
        raise PackageError(PackageReason.HASH_MISMATCH, msg)


def _extract_file(reader: TarReader, entry: FileEntry, target: Path) -> None:
    try:
        # "x": never through a file or symlink that is there already.
        with target.open("xb") as out:
            _copy_checked(reader, entry, out.write)
    except PackageError:
        target.unlink(missing_ok=True)
        raise


def _check_version(version: int, installed: int | None, *, allow_older: bool) -> None:
    if installed is None or version > installed:
        return
    if version == installed:
        msg = f"version {version} is installed already"
        raise PackageError(PackageReason.ALREADY_INSTALLED, msg)
    if not allow_older:
        msg = f"version {version} is older than the installed {installed} (no rollback allowed)"
        raise PackageError(PackageReason.OLDER_VERSION, msg)


def _source_entry(source: SourceFile, progress: Progress | None) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with source.source.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return FileEntry(path=source.path, size=size, sha256=digest.hexdigest())


@dataclass(frozen=True, slots=True)
class _Members:
    """What goes into the tar, in order: manifest.json, manifest.sig, then every file."""

    manifest_bytes: bytes
    signature: bytes
    files: Sequence[SourceFile]
    entries: Sequence[FileEntry]
    created_at: datetime

    def write(self, stream: BinaryIO, progress: Progress | None) -> None:
        mtime = int(self.created_at.timestamp())
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, content in (
                (MANIFEST_MEMBER, self.manifest_bytes),
                (SIGNATURE_MEMBER, self.signature),
            ):
                tar.addfile(_tar_member(name, len(content), mtime), io.BytesIO(content))
            for source, entry in zip(self.files, self.entries, strict=True):
                member = _tar_member(FILES_PREFIX + entry.path, entry.size, mtime)
                with source.source.open("rb") as data:
                    reader = _HashingReader(data, progress)
                    try:
                        tar.addfile(member, reader)
                    except OSError:
                        if reader.size < entry.size:  # tarfile's "unexpected end of data"
                            _changed(source)
                        raise
                if reader.digest.hexdigest() != entry.sha256:
                    _changed(source)


class _HashingReader:
    """A file's data on its way into the tar, hashed: it must be what the manifest says."""

    def __init__(self, stream: BinaryIO, progress: Progress | None) -> None:
        self._stream = stream
        self._progress = progress
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        self.size += len(data)
        if self._progress is not None:
            self._progress(len(data))
        return data


def _tar_member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    # Owner 0, mode 0644 and one mtime for all: the package's bytes depend on its content only.
    member = tarfile.TarInfo(name)
    member.size = size
    member.mtime = mtime
    return member


def _changed(source: SourceFile) -> NoReturn:
    msg = f"{source.source} changed while it was packed; pack again once it is finished"
    raise SourceError(SourceReason.CHANGED, msg)


def _write_atomically(out: Path, write: Callable[[BinaryIO], None]) -> tuple[int, str]:
    """Write ``out`` through a synced temporary file beside it; its size and sha256."""
    temporary = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    try:
        with temporary.open("xb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        with temporary.open("rb") as written:
            digest = hashlib.file_digest(written, "sha256").hexdigest()
        size = temporary.stat().st_size
        temporary.replace(out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(out.parent)
    return size, digest
