"""``termfleet content``: signing keys, and signed content packages packed, verified and shown.

Keys, packing, verifying and showing run on the machine that packs, without a control plane:
the private key stays there. ``upload`` and ``ls`` (``content_api``) go through the API. The
format is described in ``edge.content``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import content_api, options
from .output import print_rows

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from edge.content.package import PackedPackage, Progress
    from edge.content.signing import TrustedKeys

# Spelled out rather than read from edge.content, so that `--help` imports nothing more;
# tests/test_content_cli.py checks that they agree.
KINDS = ("content", "catalog", "firmware")
KEY_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
PROGRESS_MIN_BYTES = 16 * 1024 * 1024
"""Below this a package is packed in a blink; a progress bar would only flicker."""

FILE_COLUMNS = ["path", "size", "sha256"]


@click.group()
def content() -> None:
    """Signed content packages: guide cards (明白卡), videos, notices, catalogs, firmware.

    `keygen` makes an Ed25519 key pair; `pack` signs a directory into a NAME-VERSION.tfpkg
    with the private key, on this machine (the key never goes to the control plane);
    terminals verify the signature and every file's sha256 against the public keys they were
    given at enrollment (`content_keys`) before they install anything. `upload` and `ls` talk
    to the control plane's API (--server, --token); the others run here alone.
    """


@content.command("keygen")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The directory for NAME.key and NAME.pub (made if missing).",
)
@click.option("--name", default="content-signing", show_default=True, help="The files' name.")
@click.option("--force", is_flag=True, help="Replace key files that exist already.")
@options.json_output
def keygen(out_dir: Path, name: str, force: bool, as_json: bool) -> None:
    """Make a signing key pair and print its key id.

    NAME.key is the private key, readable by its owner only (0600): keep it where packages are
    packed. NAME.pub is the public key (base64) that terminals must trust, in the agent's
    `content_keys` and the control plane's provisioning settings. Keep the old public key
    trusted until every package signed with the old private key is replaced.
    """
    from edge.atomic_file import write_atomic
    from edge.content.signing import key_id, new_signing_key, public_key_text, signing_key_text

    if not re.fullmatch(KEY_NAME_PATTERN, name):
        msg = f"{name!r} is not of the form {KEY_NAME_PATTERN}"
        raise click.BadParameter(msg, param_hint="--name")
    private, public = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    existing = [str(path) for path in (private, public) if path.exists() or path.is_symlink()]
    if existing and not force:
        msg = f"{' and '.join(existing)} exist already; --force replaces them"
        raise click.ClickException(msg)
    key = new_signing_key()
    public_text = public_key_text(key.verify_key)
    try:
        write_atomic(private, signing_key_text(key), mode=0o600)
        write_atomic(public, f"{public_text}\n".encode(), mode=0o644)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None
    view = {
        "key_id": key_id(key.verify_key),
        "private_key_file": str(private),
        "public_key_file": str(public),
        "public_key": public_text,
    }
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(view["key_id"])
    click.echo(f"wrote {private} (private, 0600) and {public} (public: {public_text})", err=True)


@content.command("pack")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--name", required=True, help="The package's name: [a-z0-9][a-z0-9._-]{0,63}.")
@click.option("--version", type=click.IntRange(min=1), required=True, help="1, 2, …")
@click.option("--kind", type=click.Choice(KINDS), default="content", show_default=True)
@options.signing_key_file
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The package file [NAME-VERSION.tfpkg in the current directory].",
)
@click.option("--description", default="", help="A line for people who list packages.")
@click.option("--force", is_flag=True, help="Replace a package file that exists already.")
@options.json_output
def pack(  # noqa: PLR0913 - one parameter per option
    directory: Path,
    name: str,
    version: int,
    kind: str,
    key_file: Path,
    out: Path | None,
    description: str,
    force: bool,
    as_json: bool,
) -> None:
    """Sign DIRECTORY's files into a package; print its path, size, sha256 and key id.

    Every regular file is packed, hidden ones too; a symbolic link or a special file is
    refused. The package is written whole or not at all.
    """
    from edge.content.manifest import NAME_PATTERN, ContentError, PackageKind
    from edge.content.package import pack as pack_files
    from edge.content.source import scan_directory

    if not re.fullmatch(NAME_PATTERN, name):
        msg = f"{name!r} is not of the form {NAME_PATTERN}"
        raise click.BadParameter(msg, param_hint="--name")
    out = out or Path(f"{name}-{version}.tfpkg")
    if out.resolve().is_relative_to(directory.resolve()):
        msg = f"{out} is inside {directory}: the next pack would pack the package"
        raise click.BadParameter(msg, param_hint="--out")
    if out.exists() and not force:
        msg = f"{out} exists already; --force replaces it"
        raise click.ClickException(msg)
    key = signing_key(key_file)
    try:
        files = scan_directory(directory)

        def work(progress: Progress | None) -> PackedPackage:
            return pack_files(
                files,
                out,
                kind=PackageKind(kind),
                name=name,
                version=version,
                key=key,
                description=description,
                progress=progress,
            )

        total = sum(found.size for found in files)
        packed = _with_progress(work, total, show=not as_json)
    except (ContentError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    view = {
        "path": str(packed.path),
        "size": packed.size,
        "sha256": packed.sha256,
        "key_id": packed.key_id,
        "name": name,
        "version": version,
        "kind": kind,
        "files": len(packed.manifest.files),
    }
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(f"wrote {view['path']} ({view['files']} files)")
    for label in ("size", "sha256", "key_id"):
        click.echo(f"  {label.replace('_', ' '):<7} {view[label]}")


@content.command("verify")
@click.argument("package", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--key-file",
    "key_files",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    multiple=True,
    required=True,
    help="A trusted public key file (NAME.pub); repeat it to trust several.",
)
@click.option(
    "--installed-version",
    type=click.IntRange(min=1),
    help="Refuse this version and older ones, as a terminal that has it installed would.",
)
@click.option("--allow-older", is_flag=True, help="Accept an older version (a rollback).")
@options.json_output
def verify(
    package: Path,
    key_files: tuple[Path, ...],
    installed_version: int | None,
    allow_older: bool,
    as_json: bool,
) -> None:
    """Check PACKAGE as a terminal would: signature, every member and every sha256.

    Exit status 1 when it is refused, with the reason (with --json, as JSON on stdout:
    `ok`, `reason`, `error`).
    """
    from edge.content.manifest import ContentError
    from edge.content.package import open_package

    trusted = _trusted(key_files)
    try:
        verified = open_package(
            package, trusted, installed_version=installed_version, allow_older=allow_older
        )
    except (ContentError, OSError) as exc:
        reason = str(getattr(exc, "reason", "unreadable"))
        if as_json:
            click.echo(json.dumps({"ok": False, "reason": reason, "error": str(exc)}, indent=2))
            raise click.exceptions.Exit(1) from None
        msg = f"refused ({reason}): {exc}"
        raise click.ClickException(msg) from None
    manifest = verified.manifest
    view = {
        "ok": True,
        "name": manifest.name,
        "version": manifest.version,
        "kind": str(manifest.kind),
        "files": len(manifest.files),
        "size": manifest.total_size,
        "key_id": verified.key_id,
    }
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(
        f"verified: {manifest.name} version {manifest.version} ({manifest.kind}),"
        f" {view['files']} files, {view['size']} bytes, signed by key {verified.key_id}"
    )


@content.command("show")
@click.argument("package", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@options.json_output
def show(package: Path, as_json: bool) -> None:
    """Print PACKAGE's manifest and the key id it names, WITHOUT verifying anything."""
    import msgspec

    from edge.content.manifest import ContentError
    from edge.content.package import read_unverified

    try:
        manifest, key_id = read_unverified(package)
    except (ContentError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        view = {"manifest": msgspec.to_builtins(manifest), "key_id": key_id, "verified": False}
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"{manifest.name} version {manifest.version} ({manifest.kind}), created"
        f" {manifest.created_at.isoformat()}, {len(manifest.files)} files,"
        f" {manifest.total_size} bytes"
    )
    if manifest.description:
        click.echo(manifest.description)
    click.echo(f"names key {key_id} (not verified: `termfleet content verify` checks it)")
    rows = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in manifest.files]
    print_rows(rows, FILE_COLUMNS, as_json=False)


def signing_key(key_file: Path) -> SigningKey:
    """The private key in ``key_file``; ClickException if others may read it or it is no key."""
    from edge.atomic_file import too_open
    from edge.content.signing import ContentKeyError, parse_signing_key

    try:
        mode = too_open(key_file)
        if mode is not None:
            msg = f"{key_file} may be read by others (mode {mode}): chmod 600 it first"
            raise click.ClickException(msg)
        return parse_signing_key(key_file.read_bytes())
    except (ContentKeyError, OSError) as exc:
        msg = f"{key_file}: {exc}"
        raise click.ClickException(msg) from None


def _trusted(key_files: tuple[Path, ...]) -> TrustedKeys:
    from edge.content.signing import ContentKeyError, read_trusted_keys

    try:
        return read_trusted_keys(key_files)
    except ContentKeyError as exc:
        raise click.ClickException(str(exc)) from None


def _with_progress(
    work: Callable[[Progress | None], PackedPackage], total: int, *, show: bool
) -> PackedPackage:
    """``work`` with a progress bar on a terminal when there is much to read, twice over."""
    if not show or not sys.stdout.isatty() or total < PROGRESS_MIN_BYTES:
        return work(None)
    with click.progressbar(length=2 * total, label="hashing, then writing") as bar:
        return work(bar.update)


content.add_command(content_api.upload)
content.add_command(content_api.ls)
