"""``termfleet content keygen/pack/verify/show``, run as a user runs them, each with --json.

Each success prints what it made or found; each refusal exits non-zero with a message that
names the file or the reason, and leaves nothing behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from control_plane.cli import cli
from control_plane.cli.content import KINDS
from edge.content.manifest import PackageKind
from edge.content.package import open_package
from edge.content.signing import key_id, parse_public_key, parse_signing_key, trusted_keys

TREE = {"cards/社保卡申领.pdf": b"%PDF card", "notice.txt": b"hours changed", ".order": b"1"}


def run(*args: str | Path) -> Result:
    # Through the whole command, as a user runs it: invoked alone, click would cache the group's
    # help option without the parent's -h and break every later test that uses -h.
    return CliRunner().invoke(cli, ["content", *(str(arg) for arg in args)], prog_name="termfleet")


def keygen(directory: Path, name: str = "content-signing") -> tuple[Path, Path]:
    result = run("keygen", "--out", directory, "--name", name)
    assert result.exit_code == 0, result.output
    return directory / f"{name}.key", directory / f"{name}.pub"


def source(tmp_path: Path) -> Path:
    for path, data in TREE.items():
        (tmp_path / "src" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / path).write_bytes(data)
    return tmp_path / "src"


def packed(tmp_path: Path, key: Path, version: int = 1) -> Path:
    out = tmp_path / f"guide-{version}.tfpkg"
    result = run(
        "pack", source(tmp_path), "--name", "guide", "--version", str(version), "--key", key,
        "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_kinds_agree_with_the_format() -> None:
    assert tuple(kind.value for kind in PackageKind) == KINDS


def test_keygen_writes_a_private_key_0600_and_prints_its_id(tmp_path: Path) -> None:
    result = run("keygen", "--out", tmp_path / "keys")
    assert result.exit_code == 0, result.output
    private, public = (
        tmp_path / "keys" / "content-signing.key",
        tmp_path / "keys" / "content-signing.pub",
    )
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    key = parse_signing_key(private.read_bytes())
    assert len(base64.b64decode(private.read_bytes())) == 32
    assert bytes(parse_public_key(public.read_text())) == bytes(key.verify_key)
    assert result.stdout == key_id(key.verify_key) + "\n"
    assert key_id(key.verify_key) == hashlib.sha256(bytes(key.verify_key)).hexdigest()[:16]


def test_keygen_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    private, public = keygen(tmp_path)
    before = private.read_bytes(), public.read_bytes()
    result = run("keygen", "--out", tmp_path)
    assert result.exit_code == 1
    assert "exist already; --force replaces them" in result.stderr
    assert (private.read_bytes(), public.read_bytes()) == before
    result = run("keygen", "--out", tmp_path, "--force", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert private.read_bytes() != before[0]
    assert view["public_key"] == public.read_text().strip()
    assert view["key_id"] == key_id(parse_public_key(view["public_key"]))
    assert view["private_key_file"] == str(private)


def test_keygen_refuses_a_name_that_is_no_file_name(tmp_path: Path) -> None:
    result = run("keygen", "--out", tmp_path, "--name", "../elsewhere")
    assert result.exit_code == 2
    assert "--name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_pack_prints_the_package_and_it_verifies(tmp_path: Path) -> None:
    private, public = keygen(tmp_path / "keys")
    out = tmp_path / "guide-3.tfpkg"
    result = run(
        "pack", source(tmp_path), "--name", "guide", "--version", "3", "--kind", "catalog",
        "--key", private, "--out", out, "--description", "事项清单", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    data = out.read_bytes()
    assert view["path"] == str(out)
    assert (view["size"], view["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert (view["name"], view["version"], view["kind"], view["files"]) == (
        "guide",
        3,
        "catalog",
        3,
    )
    verified = open_package(out, trusted_keys([public.read_text()]))
    assert view["key_id"] == verified.key_id
    assert verified.manifest.description == "事项清单"
    assert {f.path for f in verified.manifest.files} == set(TREE)


def test_pack_writes_name_version_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, _ = keygen(tmp_path / "keys")
    monkeypatch.chdir(tmp_path)
    result = run("pack", source(tmp_path), "--name", "guide", "--version", "2", "--key", private)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "wrote guide-2.tfpkg (3 files)"
    assert lines[1].split() == ["size", str((tmp_path / "guide-2.tfpkg").stat().st_size)]
    assert lines[3].split()[:2] == ["key", "id"]
    result = run("pack", source(tmp_path), "--name", "guide", "--version", "2", "--key", private)
    assert result.exit_code == 1
    assert "guide-2.tfpkg exists already; --force replaces it" in result.stderr


def test_pack_refuses_a_symlink_naming_it(tmp_path: Path) -> None:
    private, _ = keygen(tmp_path / "keys")
    link = source(tmp_path) / "cards" / "latest.pdf"
    link.symlink_to("社保卡申领.pdf")
    result = run("pack", tmp_path / "src", "--name", "g", "--version", "1", "--key", private,
                 "--out", tmp_path / "g.tfpkg")  # fmt: skip
    assert result.exit_code == 1
    assert f"{link} is a symbolic link" in result.stderr
    assert not (tmp_path / "g.tfpkg").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Guide"], "'Guide' is not of the form"),
        (["--name", "g", "--out", "{src}/g.tfpkg"], "inside"),
        (["--name", "g", "--version", "0"], "0 is not in the range x>=1"),
        (["--name", "g", "--kind", "wallpaper"], "'wallpaper' is not one of"),
    ],
)
def test_pack_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    private, _ = keygen(tmp_path / "keys")
    src = source(tmp_path)
    args = [arg.replace("{src}", str(src)) for arg in args]
    version = [] if "--version" in args else ["--version", "1"]
    result = run("pack", src, "--key", private, *version, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_pack_refuses_a_private_key_others_may_read(tmp_path: Path) -> None:
    private, _ = keygen(tmp_path / "keys")
    private.chmod(0o644)
    result = run("pack", source(tmp_path), "--name", "g", "--version", "1", "--key", private,
                 "--out", tmp_path / "g.tfpkg")  # fmt: skip
    assert result.exit_code == 1
    assert "may be read by others (mode 644)" in result.stderr
    private.chmod(0o600)
    private.write_text("not a key\n")
    result = run("pack", source(tmp_path), "--name", "g", "--version", "1", "--key", private,
                 "--out", tmp_path / "g.tfpkg")  # fmt: skip
    assert result.exit_code == 1
    assert "not a private key" in result.stderr


def test_verify_accepts_either_trusted_key(tmp_path: Path) -> None:
    old_private, old_public = keygen(tmp_path / "keys", "old")
    _, new_public = keygen(tmp_path / "keys", "new")
    package = packed(tmp_path, old_private)
    result = run("verify", package, "--key-file", new_public, "--key-file", old_public)
    assert result.exit_code == 0, result.output
    signer = key_id(parse_public_key(old_public.read_text()))
    assert result.stdout == (
        f"verified: guide version 1 (content), 3 files, 23 bytes, signed by key {signer}\n"
    )
    result = run("verify", package, "--key-file", old_public, "--json")
    assert json.loads(result.stdout) == {
        "ok": True, "name": "guide", "version": 1, "kind": "content", "files": 3, "size": 23,
        "key_id": signer,
    }  # fmt: skip


def test_verify_refusals_give_the_reason(tmp_path: Path) -> None:
    private, public = keygen(tmp_path / "keys", "signer")
    _, stranger = keygen(tmp_path / "keys", "stranger")
    package = packed(tmp_path, private, version=4)
    result = run("verify", package, "--key-file", stranger)
    assert result.exit_code == 1
    assert "refused (unknown_key): signed by key" in result.stderr
    result = run("verify", package, "--key-file", public, "--installed-version", "4", "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert (answer["ok"], answer["reason"]) == (False, "already_installed")
    result = run("verify", package, "--key-file", public, "--installed-version", "5")
    assert "refused (older_version)" in result.stderr
    result = run("verify", package, "--key-file", public, "--installed-version", "5",
                 "--allow-older")  # fmt: skip
    assert result.exit_code == 0, result.output
    package.write_bytes(package.read_bytes()[:-1])
    result = run("verify", package, "--key-file", public, "--json")
    assert json.loads(result.stdout)["reason"] == "truncated"


def test_verify_refuses_a_key_file_that_holds_no_key(tmp_path: Path) -> None:
    private, _ = keygen(tmp_path / "keys")
    (tmp_path / "bad.pub").write_text("hello\n")
    result = run("verify", packed(tmp_path, private), "--key-file", tmp_path / "bad.pub")
    assert result.exit_code == 1
    assert "bad.pub: not an Ed25519 public key in base64" in result.stderr


def test_show_prints_the_manifest_unverified(tmp_path: Path) -> None:
    private, public = keygen(tmp_path / "keys")
    package = packed(tmp_path, private)
    signer = key_id(parse_public_key(public.read_text()))
    result = run("show", package)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("guide version 1 (content), created 2")
    assert f"names key {signer} (not verified" in result.stdout
    assert "cards/社保卡申领.pdf" in result.stdout
    result = run("show", package, "--json")
    view = json.loads(result.stdout)
    assert (view["key_id"], view["verified"]) == (signer, False)
    assert [f["path"] for f in view["manifest"]["files"]] == sorted(TREE)
    (tmp_path / "junk").write_bytes(os.urandom(100))
    result = run("show", tmp_path / "junk")
    assert result.exit_code == 1
    assert "the file ends at byte 100" in result.stderr
