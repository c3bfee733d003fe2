"""``termfleet catalog``: service-item catalogs (事项清单) imported, packed, uploaded and read.

``import`` runs where the private signing key is: it parses a CSV or JSON list of items, writes
the catalog file into a signed package of kind catalog and, with ``--upload``, sends it to the
control plane like ``content upload``. ``ls`` and ``show`` read the control plane's index of the
catalogs it holds, through the API. The file format is ``edge.catalog.items``'.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import content_api, options
from .api_calls import run
from .content import signing_key
from .output import print_rows

if TYPE_CHECKING:  # imported when a command runs, so that `--help` stays fast
    from nacl.signing import SigningKey

    from edge.catalog.items import Catalog

CATALOGS = "/api/v1/catalogs"
FORMATS = ("csv", "json")
LIST_COLUMNS = ["name", "latest_version", "latest_item_count", "versions"]
ITEM_COLUMNS = ["code", "name", "department", "channels", "needs", "query_needs"]


@click.group()
def catalog() -> None:
    """Service-item catalogs (事项清单): import them into signed packages, list what is held.

    `import` parses a CSV or JSON list of items and signs it into a package of kind catalog on
    this machine (the private key never goes to the control plane); `--upload` sends it there.
    A rollout of the package to a subtree of the jurisdiction tree assigns the catalog to the
    terminals in it. `ls` and `show` read the control plane's catalogs (--server, --token).
    """


@catalog.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--name", required=True, help="The catalog's name, also its package's.")
@click.option("--version", type=click.IntRange(min=1), required=True, help="1, 2, …")
@options.signing_key_file
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    help="The file's format [from its suffix: .csv or .json].",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(),
    help="The directory for NAME-VERSION.tfpkg [the current directory].",
)
@click.option("--force", is_flag=True, help="Replace a package file that exists already.")
@click.option("--upload", is_flag=True, help="Then upload it to the control plane (--server).")
@options.server_url
@options.api_token
@options.json_output
def import_catalog(  # noqa: PLR0913 - one parameter per option
    file: Path,
    name: str,
    version: int,
    key_file: Path,
    file_format: str | None,
    out_dir: Path,
    force: bool,
    upload: bool,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Parse FILE's items and sign them into the package NAME-VERSION.tfpkg of kind catalog.

    Every problem of FILE is reported with its CSV line (or JSON item) and column, and then
    nothing is written. Columns and their Chinese names are listed in docs/catalog.md.
    """
    from edge.content.manifest import NAME_PATTERN

    if not re.fullmatch(NAME_PATTERN, name):
        msg = f"{name!r} is not of the form {NAME_PATTERN}"
        raise click.BadParameter(msg, param_hint="--name")
    out = out_dir / f"{name}-{version}.tfpkg"
    if out.exists() and not force:
        msg = f"{out} exists already; --force replaces it"
        raise click.ClickException(msg)
    if upload:
        options.require_token(token, server)  # before the work, not after it
    catalog = _parse(file, file_format or _format_of(file), name, version)
    key = signing_key(key_file)
    view = _pack(catalog, out, key)
    if upload:
        created, answer = content_api.send_package(out, server, token, show_progress=not as_json)
        view["uploaded"] = {"created": created, "sha256": answer["sha256"]}
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    click.echo(f"wrote {view['path']}: catalog {name} version {version}, {view['items']} items")
    click.echo(f"  sha256  {view['sha256']}\n  key_id  {view['key_id']}")
    if upload:
        done = "uploaded to" if view["uploaded"]["created"] else "already in"
        click.echo(f"{done} the control plane at {server}")


@catalog.command("ls")
@options.server_url
@options.api_token
@options.json_output
def ls(server: str, token: str | None, as_json: bool) -> None:
    """List the catalogs the control plane holds: versions and item counts."""
    rows = run(server, token, lambda api: api.every_page(CATALOGS))
    if not as_json:
        rows = [{**row, "versions": _versions_cell(row["versions"])} for row in rows]
    print_rows(rows, LIST_COLUMNS, as_json=as_json)


@catalog.command("show")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--department", help="Only the items of this department (its code).")
@click.option("--channel", help="Only the items offered on this channel (kiosk, window, …).")
@options.server_url
@options.api_token
@options.json_output
def show(  # noqa: PLR0913 - one parameter per option
    name: str,
    version: int,
    department: str | None,
    channel: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Show VERSION of catalog NAME: its items, of one department or channel when asked."""
    path = f"{CATALOGS}/{name}/{version}"
    filters = (("department", department), ("channel", channel))
    wanted = {key: value for key, value in filters if value}
    items = run(server, token, lambda api: api.every_page(path, wanted))
    if as_json:
        view = {"name": name, "version": version, **wanted, "items": items}
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    rows = [{**item, **{key: _list_cell(item[key]) for key in ITEM_COLUMNS[3:]}} for item in items]
    print_rows(rows, ITEM_COLUMNS, as_json=False)


def _format_of(file: Path) -> str:
    suffix = file.suffix.lower().removeprefix(".")
    if suffix not in FORMATS:
        msg = f"{file.name}: is it CSV or JSON? Name it .csv or .json, or pass --format"
        raise click.BadParameter(msg, param_hint="FILE")
    return suffix


def _parse(file: Path, file_format: str, name: str, version: int) -> Catalog:
    from control_plane.catalog_import import (
        CatalogImportError,
        parse_catalog_csv,
        parse_catalog_json,
    )

    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{file}: not UTF-8 text (byte {exc.start}); save it as UTF-8 (Excel: CSV UTF-8)"
        raise click.ClickException(msg) from None
    except OSError as exc:
        msg = f"{file}: {exc.strerror}"
        raise click.ClickException(msg) from None
    parse = parse_catalog_csv if file_format == "csv" else parse_catalog_json
    try:
        return parse(text, catalog_id=name, version=version, published_at=datetime.now(UTC))
    except CatalogImportError as exc:
        count = len(exc.problems)
        msg = f"{file}: {count} problem{'s' if count > 1 else ''}, nothing written:\n{exc}"
        raise click.ClickException(msg) from None


def _pack(catalog: Catalog, out: Path, key: SigningKey) -> dict[str, Any]:
    """Write ``catalog`` into a package at ``out`` signed with ``key``; what was written."""
    from edge.catalog.items import CATALOG_FILE, encode_catalog
    from edge.content.manifest import ContentError, PackageKind
    from edge.content.package import pack
    from edge.content.source import scan_directory

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="catalog-") as source:
            (Path(source) / CATALOG_FILE).write_bytes(encode_catalog(catalog))
            packed = pack(
                scan_directory(Path(source)),
                out,
                kind=PackageKind.CATALOG,
                name=catalog.catalog_id,
                version=catalog.version,
                key=key,
                description=f"service-item catalog, {len(catalog.items)} items",
            )
    except (ContentError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    return {
        "path": str(packed.path),
        "name": catalog.catalog_id,
        "version": catalog.version,
        "items": len(catalog.items),
        "size": packed.size,
        "sha256": packed.sha256,
        "key_id": packed.key_id,
    }


def _versions_cell(versions: list[dict[str, Any]]) -> str:
    return ", ".join(f"{v['version']} ({v['item_count']})" for v in versions)


def _list_cell(values: list[str]) -> str:
    return ";".join(values)
