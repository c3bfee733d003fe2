"""``termfleet devices``: the device registry, through the control plane's REST API."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from control_plane.fleet import PRESENCE_FILTERS
from edge.protocol import DeviceKind

from . import options
from .output import print_rows

COLUMNS = ["device_id", "kind", "availability", "site", "agent_version", "last_seen"]
PAGE = 500


@click.group()
def devices() -> None:
    """Inspect the terminals known to the control plane."""


@devices.command("ls")
@options.server_url
@options.api_token
@click.option("--kind", type=click.Choice([k.value for k in DeviceKind]))
@click.option(
    "--presence",
    type=click.Choice(sorted(PRESENCE_FILTERS)),
    help="online, offline, unknown; or offline_expected (site closed) / offline_unexpected.",
)
@options.json_output
def ls(
    server: str, token: str | None, kind: str | None, presence: str | None, as_json: bool
) -> None:
    """List devices with their kind, presence and last contact (those in the token's scope)."""
    query = {k: v for k, v in {"kind": kind, "presence": presence}.items() if v}
    rows = asyncio.run(_fetch_all(server, options.require_token(token), query))
    print_rows(rows, COLUMNS, as_json=as_json)
    if not as_json:
        click.echo(f"{len(rows)} devices", err=True)


async def _fetch_all(server: str, token: str, query: dict[str, str]) -> list[dict[str, Any]]:
    import aiohttp

    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    url = server.rstrip("/") + "/api/v1/devices"
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while True:
                params = {**query, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
                async with session.get(url, params=params) as resp:
                    try:
                        body = await resp.json(content_type=None)
                    except ValueError:
                        msg = f"{url}: HTTP {resp.status} {resp.reason}: the reply is not JSON"
                        raise click.ClickException(msg) from None
                    if resp.status != 200:  # noqa: PLR2004 - HTTP OK
                        message = body.get("error", {}).get("message", resp.reason)
                        msg = f"{url}: HTTP {resp.status}: {message}"
                        if resp.status == 401:  # noqa: PLR2004 - HTTP Unauthorized
                            msg += f"\n{options.HOW_TO_AUTHENTICATE}"
                        raise click.ClickException(msg)
                rows.extend(body["items"])
                cursor = body.get("next_cursor")
                if not cursor:
                    return rows
    except aiohttp.ClientError as exc:
        msg = f"cannot reach the control plane at {server}: {exc}"
        raise click.ClickException(msg) from None
