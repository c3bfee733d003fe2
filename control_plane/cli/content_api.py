"""``termfleet content upload|ls --server URL``: the control plane's content repository, by API.

``upload`` streams a package file (``content pack``) to ``POST /api/v1/packages`` as a token with
``content.publish``; the server verifies it with its trusted public keys and keeps it. ``ls``
lists what the repository holds.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import click

from . import options
from .api_calls import run
from .output import print_rows

PACKAGES = "/api/v1/packages"
CHUNK_BYTES = 1024 * 1024
PROGRESS_MIN_BYTES = 16 * 1024 * 1024
"""Below this an upload takes a blink; a progress bar would only flicker."""
CONNECT_TIMEOUT_S = 30
ANSWER_TIMEOUT_S = 600
"""A read may wait this long: the server verifies every byte of the package before answering."""
SHA_SHOWN = 12
COLUMNS = ["name", "version", "kind", "size", "sha256", "key_id", "uploaded_at", "uploaded_by"]


@click.command("upload")
@click.argument("package", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@options.server_url
@options.api_token
@options.json_output
def upload(package: Path, server: str, token: str | None, as_json: bool) -> None:
    """Upload PACKAGE (a .tfpkg from `content pack`) to the control plane's repository.

    The control plane verifies the signature and every file's sha256 with its trusted public
    keys (`server run --content-key`) and keeps the file by its sha256. Uploading the same file
    again changes nothing; another file for a name and version it holds is refused: pack a new
    version. Needs a token with `content.publish` (an admin for the whole tree).
    """
    created, answer = send_package(package, server, token, show_progress=not as_json)
    if as_json:
        click.echo(json.dumps({**answer, "created": created}, ensure_ascii=False, indent=2))
        return
    what = "uploaded" if created else "already in the repository"
    click.echo(
        f"{what}: {answer['name']} version {answer['version']} ({answer['kind']}),"
        f" {answer['size']} bytes, signed by key {answer['key_id']}"
    )
    click.echo(f"  sha256 {answer['sha256']}")


def send_package(
    package: Path, server: str, token: str | None, *, show_progress: bool
) -> tuple[bool, dict[str, Any]]:
    """Upload ``package``: whether it was new (else there already), and the API's view of it.

    ClickException with the API's reason when refused; a progress bar on a terminal if asked.
    """
    secret = options.require_token(token, server)
    size = package.stat().st_size
    if show_progress and sys.stdout.isatty() and size >= PROGRESS_MIN_BYTES:
        with click.progressbar(length=size, label=f"uploading {package.name}") as bar:
            status, answer = asyncio.run(_post(server, secret, (package, size), bar.update))
    else:
        status, answer = asyncio.run(_post(server, secret, (package, size), None))
    return status == 201, answer  # noqa: PLR2004 - HTTP Created; 200: the file was there already


@click.command("ls")
@click.option("--kind", type=click.Choice(("content", "catalog", "firmware")), help="Only these.")
@click.option("--name", help="Only the versions of this package.")
@options.server_url
@options.api_token
@options.json_output
def ls(kind: str | None, name: str | None, server: str, token: str | None, as_json: bool) -> None:
    """List the packages in the control plane's repository, oldest upload first."""
    params = {key: value for key, value in (("kind", kind), ("name", name)) if value}
    rows = run(server, token, lambda api: api.every_page(PACKAGES, params))
    if not as_json:
        rows = [{**row, "sha256": row["sha256"][:SHA_SHOWN] + "…"} for row in rows]
    print_rows(rows, COLUMNS, as_json=as_json)


async def _post(
    server: str,
    secret: str,
    file: tuple[Path, int],
    progress: Callable[[int], object] | None,
) -> tuple[int, dict[str, Any]]:
    """The status and JSON of the upload of ``file`` (path, size); ClickException if refused."""
    import aiohttp

    url = server.rstrip("/") + PACKAGES
    timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=ANSWER_TIMEOUT_S)
    headers = {
        "Authorization": f"Bearer {secret}",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(file[1]),
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=_chunks(file[0], progress), headers=headers) as resp,
        ):
            try:
                answer = await resp.json(content_type=None)
            except ValueError:
                msg = f"{url}: HTTP {resp.status} {resp.reason}: the reply is not JSON"
                raise click.ClickException(msg) from None
            if resp.status >= 300:  # noqa: PLR2004 - not a success
                raise click.ClickException(_refusal(url, resp.status, answer))
            return resp.status, answer
    except aiohttp.ClientError as exc:
        msg = f"cannot upload to the control plane at {server}: {exc}"
        raise click.ClickException(msg) from None


async def _chunks(package: Path, progress: Callable[[int], object] | None) -> AsyncIterator[bytes]:
    """The file a chunk at a time, read in a thread: never all of it in memory."""
    with package.open("rb") as stream:
        while chunk := await asyncio.to_thread(stream.read, CHUNK_BYTES):
            if progress is not None:
                progress(len(chunk))
            yield chunk


def _refusal(url: str, status: int, answer: object) -> str:
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    error = error if isinstance(error, dict) else {}
    message = error.get("message", "refused")
    reason = error.get("details", {}).get("reason")
    msg = f"{url}: HTTP {status}: {message}" + (f" ({reason})" if reason else "")
    if status == 401:  # noqa: PLR2004 - HTTP Unauthorized
        msg += f"\n{options.HOW_TO_AUTHENTICATE}"
    return msg
