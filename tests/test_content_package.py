"""Signed content packages: the format's rules, and the rejection matrix of ``open_package``.

Packages are packed from a directory and opened back; the hostile ones are built member by
member with tarfile and signed here, so each refusal is reached with a valid signature and its
reason checked. Property tests feed any bytes, every prefix and any single flipped bit.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import posixpath
import tarfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from edge.content.manifest import (
    MAX_COMPONENT_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_PATH_BYTES,
    MAX_TOTAL_BYTES,
    FileEntry,
    Manifest,
    ManifestError,
    PackageError,
    PackageKind,
    PackageReason,
    check_path,
    decode_manifest,
    encode_manifest,
)
from edge.content.package import open_package, pack, read_unverified
from edge.content.signing import (
    ContentKeyError,
    TrustedKeys,
    key_id,
    parse_public_key,
    parse_signing_key,
    public_key_text,
    sign_manifest,
    signing_key_text,
    trusted_keys,
)
from edge.content.source import SourceError, SourceReason, scan_directory

KEY = SigningKey(bytes(range(32)))
OLD_KEY = SigningKey(bytes(range(100, 132)))
STRANGER = SigningKey(bytes(range(200, 232)))
TRUSTED = trusted_keys([public_key_text(KEY.verify_key)])
CREATED = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
TREE = {
    "notice.txt": "请携带身份证原件。\n".encode(),
    "cards/居民身份证办理指南.pdf": b"%PDF-1.7 " + bytes(range(256)) * 3,
    "cards/deep/a/b/c.json": b'{"x": 1}',
    ".hidden": b"kept",
    "empty.bin": b"",
}
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
fuzz_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    for path, data in tree.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def packed(tmp_path: Path, *, version: int = 1, key: SigningKey = KEY) -> Path:
    source = write_tree(tmp_path / f"source-{version}", TREE)
    out = tmp_path / f"guide-{version}.tfpkg"
    pack(
        scan_directory(source),
        out,
        kind=PackageKind.CONTENT,
        name="guide",
        version=version,
        key=key,
        created_at=CREATED,
    )
    return out


def manifest_json(contents: Sequence[tuple[str, bytes]], **fields: object) -> bytes:
    """Manifest bytes written by hand, so that they may break any rule."""
    manifest = {
        "format": 1, "kind": "content", "name": "guide", "version": 1,
        "created_at": "2025-03-01T08:30:00Z", "description": "",
        "files": [
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for path, data in contents
        ],
    } | fields  # fmt: skip
    return json.dumps(manifest, sort_keys=True).encode()


def raw_package(
    path: Path,
    manifest: bytes,
    members: Sequence[tuple[str, bytes]],
    *,
    signature: bytes | None = None,
    key: SigningKey = KEY,
) -> Path:
    """A tar of manifest.json, manifest.sig (signed with ``key`` unless given), then members."""
    sig = sign_manifest(manifest, key) if signature is None else signature
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("manifest.json", manifest), ("manifest.sig", sig), *members]:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def signed_files(tmp_path: Path, contents: Sequence[tuple[str, bytes]], **fields: object) -> Path:
    """A well-formed package of ``contents`` whose manifest has ``fields`` changed."""
    members = [(f"files/{name}", data) for name, data in contents]
    return raw_package(tmp_path / "p.tfpkg", manifest_json(contents, **fields), members)


def refused(
    path: Path,
    reason: PackageReason,
    *,
    trusted: TrustedKeys = TRUSTED,
    installed_version: int | None = None,
    allow_older: bool = False,
) -> PackageError:
    with pytest.raises(PackageError) as caught:
        open_package(path, trusted, installed_version=installed_version, allow_older=allow_older)
    assert caught.value.reason is reason, caught.value
    return caught.value


def data_offset(path: Path, name: str) -> int:
    with tarfile.open(path) as tar:
        return tar.getmember(name).offset_data


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


# The round trip


def test_pack_verify_extract_reproduces_the_directory_byte_for_byte(tmp_path: Path) -> None:
    package = packed(tmp_path)
    verified = open_package(package, TRUSTED)
    written: list[Path] = []
    verified.extract_to(tmp_path / "out", written.append)
    assert read_tree(tmp_path / "out") == TREE
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == sorted(TREE)
    assert verified.key_id == key_id(KEY.verify_key)
    assert (verified.manifest.name, verified.manifest.version) == ("guide", 1)
    assert verified.manifest_bytes == encode_manifest(verified.manifest)


def test_a_package_is_the_documented_tar_and_reproducible(tmp_path: Path) -> None:
    package = packed(tmp_path)
    with tarfile.open(package) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "manifest.json", "manifest.sig", *(f"files/{p}" for p in sorted(TREE))
    ]  # fmt: skip
    assert all(m.isreg() and m.mode == 0o644 and m.uid == 0 for m in members)
    assert package.stat().st_size % (20 * 512) == 0
    again = tmp_path / "again"
    again.mkdir()
    assert packed(again).read_bytes() == package.read_bytes()


def test_pack_reports_the_package_file(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", TREE)
    result = pack(
        scan_directory(source), tmp_path / "p.tfpkg",
        kind=PackageKind.CATALOG, name="items", version=3, key=KEY,
    )  # fmt: skip
    data = (tmp_path / "p.tfpkg").read_bytes()
    assert (result.size, result.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert result.key_id == key_id(KEY.verify_key)
    assert result.manifest.kind is PackageKind.CATALOG
    assert [f.path for f in result.manifest.files] == sorted(TREE)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_keys_can_be_rotated_two_trusted_keys_accept_either(tmp_path: Path) -> None:
    both = trusted_keys([public_key_text(OLD_KEY.verify_key), public_key_text(KEY.verify_key)])
    old = open_package(packed(tmp_path, version=1, key=OLD_KEY), both)
    new = open_package(packed(tmp_path, version=2, key=KEY), both)
    assert old.key_id == key_id(OLD_KEY.verify_key)
    assert new.key_id == key_id(KEY.verify_key)
    refused(packed(tmp_path, version=3, key=OLD_KEY), PackageReason.UNKNOWN_KEY)


# The rejection matrix


@pytest.mark.parametrize("position", [0, 1, 100, -2, -1])
def test_one_bit_flipped_in_the_manifest_is_a_bad_signature(tmp_path: Path, position: int) -> None:
    package = packed(tmp_path)
    length = len(read_unverified_bytes(package))
    flip_bit(package, data_offset(package, "manifest.json") + position % length, bit=1)
    refused(package, PackageReason.BAD_SIGNATURE)


def read_unverified_bytes(package: Path) -> bytes:
    with tarfile.open(package) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return member.read()


@pytest.mark.parametrize("byte", [0, 31, 63])
def test_one_bit_flipped_in_the_signature_is_a_bad_signature(tmp_path: Path, byte: int) -> None:
    manifest = manifest_json([("a.txt", b"a")])
    sig = json.loads(sign_manifest(manifest, KEY))
    raw = bytearray(base64.b64decode(sig["signature"]))
    raw[byte] ^= 0x04
    sig["signature"] = base64.b64encode(raw).decode()
    package = raw_package(
        tmp_path / "p", manifest, [("files/a.txt", b"a")], signature=json.dumps(sig).encode()
    )
    refused(package, PackageReason.BAD_SIGNATURE)


def test_a_signature_in_non_canonical_base64_is_refused(tmp_path: Path) -> None:
    manifest = manifest_json([("a.txt", b"a")])
    sig = json.loads(sign_manifest(manifest, KEY))
    text = sig["signature"]
    assert text.endswith("==")  # 64 bytes: the last symbol carries 2 bits and 4 unused ones
    last = BASE64_ALPHABET.index(text[-3])
    sig["signature"] = text[:-3] + BASE64_ALPHABET[last + 1] + "=="
    assert base64.b64decode(sig["signature"]) == base64.b64decode(text)
    package = raw_package(
        tmp_path / "p", manifest, [("files/a.txt", b"a")], signature=json.dumps(sig).encode()
    )
    refused(package, PackageReason.BAD_SIGNATURE)


def test_a_key_not_trusted_is_an_unknown_key(tmp_path: Path) -> None:
    error = refused(packed(tmp_path, key=STRANGER), PackageReason.UNKNOWN_KEY)
    assert key_id(STRANGER.verify_key) in str(error)
    refused(packed(tmp_path, version=2), PackageReason.UNKNOWN_KEY, trusted={})


def test_one_byte_of_a_file_changed_is_a_hash_mismatch(tmp_path: Path) -> None:
    package = packed(tmp_path)
    flip_bit(package, data_offset(package, "files/notice.txt") + 3)
    error = refused(package, PackageReason.HASH_MISMATCH)
    assert "notice.txt" in str(error)


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([("files/a", b"a"), ("files/b", b"b"), ("files/extra", b"x")], "unlisted_file"),
        ([("files/a", b"a"), ("files/../x", b"x"), ("files/b", b"b")], "unlisted_file"),
        ([("files/a", b"a"), ("files/b", b"b"), ("files/a", b"a")], "malformed"),
        ([("files/a", b"a")], "malformed"),  # a listed file missing
        ([("files/b", b"b"), ("files/a", b"a")], "malformed"),  # out of order
        ([("files/a", b"a"), ("files/b", b"bb")], "size_mismatch"),
        ([("files/a", b"a"), ("files/b", b"c")], "hash_mismatch"),
    ],
)
def test_members_are_exactly_the_manifest_in_order(
    tmp_path: Path, members: list[tuple[str, bytes]], reason: str
) -> None:
    manifest = manifest_json([("a", b"a"), ("b", b"b")])
    refused(raw_package(tmp_path / "p", manifest, members), PackageReason(reason))


@pytest.mark.parametrize(
    "paths",
    [
        ["../x"], ["/etc/x"], ["a/../../x"], ["a/.."], ["a\\b"], ["..\\x"], ["a\x00b"], ["."],
        ["a/./b"], ["a//b"], ["a/"], [""], ["a\nb"], ["\u202etxt.exe"], ["e\u0301.txt"],
        ["x" * (MAX_COMPONENT_BYTES + 1)], ["/".join(["d" * 99] * 3)],
        ["Guide.pdf", "guide.PDF"], ["straße", "STRASSE"], ["a", "a/b"], ["a/b", "A"],
    ],
)  # fmt: skip
def test_unsafe_paths_in_a_signed_manifest_are_path_traversal(
    tmp_path: Path, paths: list[str]
) -> None:
    files = [(path, b"data") for path in paths]
    members = [(f"files/{n}", b"data") for n in ("x", "y")[: len(paths)]]
    package = raw_package(tmp_path / "p", manifest_json(files), members)
    refused(package, PackageReason.PATH_TRAVERSAL)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"version": 0}, "malformed"),
        ({"format": 2}, "malformed"),
        ({"kind": "wallpaper"}, "malformed"),
        ({"name": "../guide"}, "malformed"),
        ({"created_at": "2025-03-01T08:30:00"}, "malformed"),  # no offset
        ({"delete": ["/"]}, "malformed"),  # a field this build does not know
        ({"files": [{"path": "a", "size": -1, "sha256": "0" * 64}]}, "malformed"),
        ({"files": [{"path": "a", "size": 1, "sha256": "Z" * 64}]}, "malformed"),
        (
            {
                "files": [
                    {"path": p, "size": MAX_TOTAL_BYTES // 2 + 1, "sha256": "0" * 64} for p in "ab"
                ]
            },
            "too_large",
        ),
    ],
)
def test_a_signed_manifest_that_breaks_the_format(
    tmp_path: Path, fields: dict[str, object], reason: str
) -> None:
    refused(signed_files(tmp_path, [], **fields), PackageReason(reason))


def test_a_signed_manifest_that_is_no_json_is_malformed(tmp_path: Path) -> None:
    refused(raw_package(tmp_path / "p", b"{not json", []), PackageReason.MALFORMED)


def test_a_manifest_larger_than_the_cap_is_too_large_before_it_is_read(tmp_path: Path) -> None:
    big = b" " * MAX_MANIFEST_BYTES + manifest_json([])
    refused(raw_package(tmp_path / "p", big, []), PackageReason.TOO_LARGE)


@pytest.mark.parametrize(
    "build",
    [
        lambda tar: tar.addfile(tarfile.TarInfo("manifest.sig"), io.BytesIO()),  # order
        lambda tar: tar.addfile(_info("manifest.json", tarfile.DIRTYPE)),
        lambda tar: tar.addfile(_info("manifest.json", tarfile.SYMTYPE)),
        lambda tar: tar.addfile(_info("manifest.json", tarfile.CHRTYPE)),
    ],
)
def test_members_other_than_regular_files_in_order_are_malformed(
    tmp_path: Path, build: Callable[[tarfile.TarFile], None]
) -> None:
    with tarfile.open(tmp_path / "p", "w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    refused(tmp_path / "p", PackageReason.MALFORMED)


def _info(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    return info


def test_a_gnu_or_compressed_tar_is_malformed(tmp_path: Path) -> None:
    package = packed(tmp_path)
    for mode, fmt in (("w", tarfile.GNU_FORMAT), ("w:gz", tarfile.PAX_FORMAT)):
        copy = tmp_path / f"copy-{fmt}"
        with tarfile.open(package) as source, tarfile.open(copy, mode, format=fmt) as tar:  # type: ignore[call-overload]
            for member in source.getmembers():
                tar.addfile(member, source.extractfile(member))
        refused(copy, PackageReason.MALFORMED)


def test_data_after_the_end_is_malformed(tmp_path: Path) -> None:
    package = packed(tmp_path)
    package.write_bytes(package.read_bytes() + bytes(512))
    refused(package, PackageReason.MALFORMED)
    package.write_bytes(package.read_bytes()[:-1] + b"x")
    refused(package, PackageReason.MALFORMED)


def test_a_download_cut_anywhere_is_never_accepted(tmp_path: Path) -> None:
    package = packed(tmp_path)
    reasons = set()
    with package.open("r+b") as cut:  # shortened in place: rewriting each prefix takes 10x
        for length in reversed(range(package.stat().st_size)):
            cut.truncate(length)
            with pytest.raises(PackageError) as caught:
                open_package(package, TRUSTED)
            reasons.add(caught.value.reason)
    assert reasons <= {PackageReason.TRUNCATED, PackageReason.MALFORMED}
    assert PackageReason.TRUNCATED in reasons


def test_a_download_cut_inside_a_file_is_truncated(tmp_path: Path) -> None:
    package = packed(tmp_path)
    end = data_offset(package, "files/notice.txt") + 5
    package.write_bytes(package.read_bytes()[:end])
    refused(package, PackageReason.TRUNCATED)


def test_versions_older_or_installed_are_refused_unless_a_rollback(tmp_path: Path) -> None:
    package = packed(tmp_path, version=2)
    refused(package, PackageReason.OLDER_VERSION, installed_version=3)
    refused(package, PackageReason.ALREADY_INSTALLED, installed_version=2)
    refused(package, PackageReason.ALREADY_INSTALLED, installed_version=2, allow_older=True)
    rollback = open_package(package, TRUSTED, installed_version=3, allow_older=True)
    assert rollback.manifest.version == 2
    assert open_package(package, TRUSTED, installed_version=1).manifest.version == 2


@fuzz_settings
@given(data=st.binary(max_size=3000))
def test_any_bytes_are_refused_with_a_reason(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "any").write_bytes(data)
    with pytest.raises(PackageError) as caught:
        open_package(tmp_path / "any", TRUSTED)
    assert caught.value.reason in PackageReason


@fuzz_settings
@given(position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_single_bit_flipped_anywhere_is_refused(
    tmp_path: Path, position: float, bit: int
) -> None:
    package = tmp_path / "flipped.tfpkg"
    if not package.exists():
        packed(tmp_path).rename(package)
    original = package.read_bytes()
    flip_bit(package, int(position * len(original)), bit)
    try:
        with pytest.raises(PackageError):
            open_package(package, TRUSTED)
    finally:
        package.write_bytes(original)


# Extracting


def test_extract_checks_again_a_file_changed_after_verifying(tmp_path: Path) -> None:
    package = packed(tmp_path)
    verified = open_package(package, TRUSTED)
    flip_bit(package, data_offset(package, "files/notice.txt"))
    with pytest.raises(PackageError) as caught:
        verified.extract_to(tmp_path / "out")
    assert caught.value.reason is PackageReason.HASH_MISMATCH
    assert not (tmp_path / "out" / "notice.txt").exists()


def test_extract_refuses_a_package_replaced_after_verifying(tmp_path: Path) -> None:
    verified = open_package(packed(tmp_path), TRUSTED)
    other = packed(tmp_path, version=5)
    other.replace(verified.path)
    with pytest.raises(PackageError) as caught:
        verified.extract_to(tmp_path / "out")
    assert caught.value.reason is PackageReason.BAD_SIGNATURE


def test_extract_never_writes_through_what_is_there(tmp_path: Path) -> None:
    verified = open_package(packed(tmp_path), TRUSTED)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notice.txt").symlink_to(tmp_path / "victim")
    with pytest.raises(FileExistsError):
        verified.extract_to(out)
    assert not (tmp_path / "victim").exists()


# Packing refusals


def test_pack_refuses_links_and_special_files_by_path(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", TREE)
    (source / "cards" / "link.pdf").symlink_to(source / "notice.txt")
    with pytest.raises(SourceError) as caught:
        scan_directory(source)
    assert caught.value.reason is SourceReason.SYMLINK
    assert str(source / "cards" / "link.pdf") in str(caught.value)
    (source / "cards" / "link.pdf").unlink()
    os.mkfifo(source / "pipe")
    with pytest.raises(SourceError) as caught:
        scan_directory(source)
    assert caught.value.reason is SourceReason.SPECIAL_FILE
    with pytest.raises(SourceError):
        scan_directory(source / "notice.txt")


@pytest.mark.parametrize(
    "names", [["a\\b"], ["e\u0301.txt"], ["Notice.txt", "notice.TXT"], ["x\tb"]]
)
def test_pack_refuses_names_the_format_refuses(tmp_path: Path, names: list[str]) -> None:
    source = write_tree(tmp_path / "src", dict.fromkeys(names, b"x"))
    with pytest.raises(ManifestError) as caught:
        scan_directory(source)
    assert caught.value.reason is PackageReason.PATH_TRAVERSAL


def test_pack_refuses_a_file_that_changes_while_packed(tmp_path: Path) -> None:
    size = 3 * 1024 * 1024
    source = write_tree(tmp_path / "src", {"video.mp4": bytes(size)})
    files = scan_directory(source)
    seen = 0

    def change_once_hashed(read: int) -> None:
        nonlocal seen
        seen += read
        if seen == size:
            (source / "video.mp4").write_bytes(b"y" * size)

    with pytest.raises(SourceError) as caught:
        pack(files, tmp_path / "p", kind=PackageKind.CONTENT, name="v", version=1, key=KEY,
             progress=change_once_hashed)  # fmt: skip
    assert caught.value.reason is SourceReason.CHANGED
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


# The pure parts


def test_check_path_accepts_ordinary_names() -> None:
    for path in ("a", "a/b/c.txt", ".hidden", "a..b", "居民身份证办理指南.pdf", "d" * 100):
        assert check_path(path) == path


@given(st.text(max_size=40))
def test_an_accepted_path_stays_inside_the_directory(path: str) -> None:
    refusal = _refusal(path)
    if refusal is not None:
        assert refusal is PackageReason.PATH_TRAVERSAL
        return
    assert posixpath.normpath(path) == path
    assert posixpath.normpath("/base/" + path).startswith("/base/")
    assert len(path.encode()) <= MAX_PATH_BYTES


def _refusal(path: str) -> PackageReason | None:
    try:
        check_path(path)
    except ManifestError as exc:
        return exc.reason
    return None


def test_the_manifest_encodes_canonically() -> None:
    manifest = Manifest(
        kind=PackageKind.FIRMWARE, name="pad-fw", version=7,
        created_at=datetime(2025, 3, 1, 16, 30, tzinfo=timezone(timedelta(hours=8))),
        files=(FileEntry("fw.bin", 3, "0" * 64),),
    )  # fmt: skip
    data = encode_manifest(manifest)
    assert data == (
        b'{"created_at":"2025-03-01T08:30:00Z","description":"","files":[{"path":"fw.bin",'
        b'"sha256":"' + b"0" * 64 + b'","size":3}],"format":1,"kind":"firmware",'
        b'"name":"pad-fw","version":7}'
    )
    assert decode_manifest(data) == msgspec.structs.replace(manifest, created_at=CREATED)
    assert encode_manifest(decode_manifest(data)) == data


def test_key_texts_round_trip_and_ids_are_the_documented_hash() -> None:
    assert parse_signing_key(signing_key_text(KEY)) == KEY
    assert signing_key_text(KEY).endswith(b"\n")
    assert bytes(parse_public_key(public_key_text(KEY.verify_key))) == bytes(KEY.verify_key)
    assert key_id(KEY.verify_key) == hashlib.sha256(bytes(KEY.verify_key)).hexdigest()[:16]


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(bytes(31)).decode()])
def test_a_bad_key_is_a_content_key_error(text: str) -> None:
    with pytest.raises(ContentKeyError):
        trusted_keys([public_key_text(KEY.verify_key), text])
    with pytest.raises(ContentKeyError):
        parse_signing_key(text.encode())


def test_show_reads_the_manifest_without_verifying(tmp_path: Path) -> None:
    manifest, signer = read_unverified(packed(tmp_path, key=STRANGER))
    assert signer == key_id(STRANGER.verify_key)
    assert [f.path for f in manifest.files] == sorted(TREE)
