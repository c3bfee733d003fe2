"""The package manifest: its struct, its canonical bytes, the rules for file paths, the errors.

Pure: nothing here touches a file. What a manifest may say is checked here, once, for the packer
and for the agent alike: a name the packer refuses is also one the agent refuses.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import msgspec

FORMAT_VERSION = 1
"""The manifest format this build writes and reads."""

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
"""Package names: safe as a file name and as one path component on the terminal."""

MAX_PATH_BYTES = 255
"""A file path's UTF-8 length: room for the installer's own directories within PATH_MAX."""

MAX_COMPONENT_BYTES = 100
"""One path component's UTF-8 length: NAME_MAX is 255, and the installer may add a staging suffix
to a name, and file systems such as eCryptfs allow only 143."""

MAX_MANIFEST_BYTES = 1024 * 1024
"""manifest.json's size: several thousand files, and a bound on what is read before verifying."""

MAX_TOTAL_BYTES = 2 * 1024**3
"""The sum of a package's file sizes: larger than any video set a terminal stores."""

_SHA256_HEX = r"[0-9a-f]{64}"
# Format characters (Cf) include the bidirectional overrides that make a name read differently
# from what it is; Zl/Zp are line breaks; Cs are lone surrogates, which UTF-8 cannot carry.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class PackageReason(enum.StrEnum):
    """Why a package was refused: the closed set the agent reports."""

    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    HASH_MISMATCH = "hash_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    UNLISTED_FILE = "unlisted_file"
    PATH_TRAVERSAL = "path_traversal"
    OLDER_VERSION = "older_version"
    ALREADY_INSTALLED = "already_installed"
    TOO_LARGE = "too_large"


class ContentError(Exception):
    """Root of the content package's errors; ``reason`` says which kind, for machines."""

    reason: str = "error"


class PackageError(ContentError):
    """A package file, or a manifest, that must not be installed."""

    def __init__(self, reason: PackageReason, message: str) -> None:
        super().__init__(message)
        self.reason: PackageReason = reason


class ManifestError(PackageError):
    """A manifest that breaks the format's rules (a path, a name, a size)."""


class PackageKind(enum.StrEnum):
    """What a package carries. Closed: an agent installs nothing it does not understand."""

    CONTENT = "content"
    CATALOG = "catalog"
    FIRMWARE = "firmware"


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    size: Annotated[int, msgspec.Meta(ge=0)]
    sha256: Annotated[str, msgspec.Meta(pattern=rf"^{_SHA256_HEX}$(?!\n)")]


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Signed bytes: a field this build does not know could change what installing means, so an
    # unknown field is refused, not dropped; a new field comes with a new format number.
    format: int = FORMAT_VERSION
    kind: PackageKind
    name: Annotated[str, msgspec.Meta(pattern=rf"^{NAME_PATTERN}$(?!\n)")]
    version: Annotated[int, msgspec.Meta(ge=1)]
    created_at: Annotated[datetime, msgspec.Meta(tz=True)]
    files: tuple[FileEntry, ...]
    description: str = ""

    @property
    def total_size(self) -> int:
        return sum(entry.size for entry in self.files)


class _FormatOnly(msgspec.Struct):
    format: int = FORMAT_VERSION


def encode_manifest(manifest: Manifest) -> bytes:
    """The canonical manifest.json bytes: sorted keys, no spaces, UTC time; checked first."""
    check_manifest(manifest)
    canonical = msgspec.structs.replace(manifest, created_at=manifest.created_at.astimezone(UTC))
    data = msgspec.json.encode(canonical, order="sorted")
    if len(data) > MAX_MANIFEST_BYTES:
        msg = f"the manifest takes {len(data)} bytes, more than {MAX_MANIFEST_BYTES}"
        raise ManifestError(PackageReason.TOO_LARGE, msg)
    return data


def decode_manifest(data: bytes) -> Manifest:
    """The manifest in ``data``, checked by ``check_manifest``; ManifestError if it is not one."""
    if len(data) > MAX_MANIFEST_BYTES:
        msg = f"the manifest takes {len(data)} bytes, more than {MAX_MANIFEST_BYTES}"
        raise ManifestError(PackageReason.TOO_LARGE, msg)
    try:
        # The format first, so that a newer package is named as such, not as an unknown field.
        declared = msgspec.json.decode(data, type=_FormatOnly).format
        if declared != FORMAT_VERSION:
            msg = f"manifest format {declared}; this build reads format {FORMAT_VERSION}"
            raise ManifestError(PackageReason.MALFORMED, msg)
        manifest = msgspec.json.decode(data, type=Manifest)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        msg = f"manifest.json: {exc}"
        raise ManifestError(PackageReason.MALFORMED, msg) from None
    check_manifest(manifest)
    return manifest


def check_manifest(manifest: Manifest) -> None:
    """ManifestError unless every path is allowed and unique, and the total size within limits."""
    if manifest.format != FORMAT_VERSION:
        msg = f"manifest format {manifest.format}; this build writes format {FORMAT_VERSION}"
        raise ManifestError(PackageReason.MALFORMED, msg)
    if not re.fullmatch(NAME_PATTERN, manifest.name):
        msg = f"package name {manifest.name!r} is not of the form {NAME_PATTERN}"
        raise ManifestError(PackageReason.MALFORMED, msg)
    check_unique([check_path(entry.path) for entry in manifest.files])
    if manifest.total_size > MAX_TOTAL_BYTES:
        msg = f"the files take {manifest.total_size} bytes, more than {MAX_TOTAL_BYTES}"
        raise ManifestError(PackageReason.TOO_LARGE, msg)


def check_path(path: str) -> str:
    """``path`` if it is a safe relative POSIX path for a package file, else ManifestError.

    Non-empty components, none ``.`` or ``..``; no leading ``/``, no backslash, no control or
    format characters; NFC; at most MAX_PATH_BYTES in UTF-8 and MAX_COMPONENT_BYTES a component.
    """
    problem = _path_problem(path)
    if problem is not None:
        msg = f"file path {path!r}: {problem}"
        raise ManifestError(PackageReason.PATH_TRAVERSAL, msg)
    return path


def _path_problem(path: str) -> str | None:
    for broken, problem in _PATH_RULES:
        if broken(path):
            return problem
    return None


def _utf8_length(text: str) -> int:
    return len(text.encode())


_PATH_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    # In this order: a lone surrogate (Cs) does not encode, so it must be refused before a length
    # is measured.
    (lambda path: not path, "empty"),
    (lambda path: path.startswith("/"), "absolute"),
    (lambda path: "\\" in path, "a backslash, which Windows reads as a separator"),
    (
        lambda path: any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in path),
        "a control or format character",
    ),
    (lambda path: not unicodedata.is_normalized("NFC", path), "not in Unicode normal form C"),
    (
        lambda path: _utf8_length(path) > MAX_PATH_BYTES,
        f"longer than {MAX_PATH_BYTES} bytes in UTF-8",
    ),
    (
        lambda path: any(part in {"", ".", ".."} for part in path.split("/")),
        "an empty, '.' or '..' component",
    ),
    (
        lambda path: any(_utf8_length(part) > MAX_COMPONENT_BYTES for part in path.split("/")),
        f"a component longer than {MAX_COMPONENT_BYTES} bytes in UTF-8",
    ),
)
"""What makes a path unsafe, each with the words that say so, checked in order."""


def check_unique(paths: list[str]) -> None:
    """ManifestError if two paths name one file case-insensitively, or one is the other's folder.

    Either would let one entry replace or hide another when written (on Windows, on macOS).
    """
    files: dict[str, str] = {}
    directories: dict[str, str] = {}
    for path in paths:
        folded = _fold(path)
        if folded in files or folded in directories:
            other = files.get(folded) or directories[folded]
            msg = f"file path {path!r} collides with {other!r}"
            raise ManifestError(PackageReason.PATH_TRAVERSAL, msg)
        files[folded] = path
        parts = folded.split("/")
        for depth in range(1, len(parts)):
            directories.setdefault("/".join(parts[:depth]), path)
    for folded, path in directories.items():
        if folded in files:
            msg = f"file path {files[folded]!r} is also a directory of {path!r}"
            raise ManifestError(PackageReason.PATH_TRAVERSAL, msg)


def _fold(path: str) -> str:
    # Windows and macOS compare names case-insensitively; casefold also folds ß and the like.
    return unicodedata.normalize("NFC", path.casefold())
