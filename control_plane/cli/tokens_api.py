"""``termfleet tokens … --server URL``: the same commands, through the REST API as a token.

The API keeps the asking token to its own scope and permissions (``control_plane.token_admin``).
It names tokens by id; ``revoke`` finds the id the way the database mode reads NAME|PREFIX.
"""

from __future__ import annotations

from typing import Any

import click

from .api_calls import ApiSession, run

DISPLAY_PREFIX_LENGTH = 11
"""``tf_`` and 8 characters, as ``control_plane.auth`` shows tokens (not imported: `--help`)."""


def create(server: str, token: str | None, body: dict[str, object]) -> dict[str, Any]:
    """The new token's view, with its secret under ``token``."""
    issued: dict[str, Any] = run(
        server, token, lambda api: api.request("POST", "/api/v1/tokens", body=body)
    )
    return issued


def listed(server: str, token: str | None) -> list[dict[str, Any]]:
    return run(server, token, lambda api: api.every_page("/api/v1/tokens"))


def revoke(server: str, token: str | None, which: str) -> dict[str, Any]:
    async def work(api: ApiSession) -> dict[str, Any]:
        target = _one(which, await api.every_page("/api/v1/tokens"))
        revoked: dict[str, Any] = await api.request("POST", f"/api/v1/tokens/{target['id']}/revoke")
        return revoked

    return run(server, token, work)


def _one(which: str, tokens: list[dict[str, Any]]) -> dict[str, Any]:
    """The unrevoked token ``which`` names: by name, else by listed prefix (or a whole token's)."""
    shown = which[:DISPLAY_PREFIX_LENGTH] if which.startswith("tf_") else which
    active = [t for t in tokens if t["revoked_at"] is None]
    for matches in (
        [t for t in active if t["name"] == which],
        [t for t in active if t["prefix"] == shown],
    ):
        if len(matches) == 1:
            return matches[0]
        if matches:
            names = ", ".join(repr(t["name"]) for t in matches)
            msg = f"{len(matches)} tokens match {which!r} ({names}): give the name instead"
            raise click.ClickException(msg)
    if any(which == t["name"] or shown == t["prefix"] for t in tokens):
        msg = f"token {which!r} is already revoked"
    else:
        msg = f"no token in this token's scope is named {which!r} or starts with it"
    raise click.ClickException(msg)
