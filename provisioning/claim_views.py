"""Claim tokens as people and scripts see them: listings and views, never a code. Read only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Subquery

from control_plane.db.models import Site
from control_plane.db.provisioning_models import ClaimToken
from control_plane.sites import sites_under


def token_view(token: ClaimToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "prefix": token.prefix,
        "batch": token.batch,
        "site_id": token.site_id,
        "device_id": token.device_id,
        "kind": token.kind,
        "uses": token.uses,
        "max_uses": token.max_uses,
        "created_at": token.created_at.isoformat(),
        "created_by": token.created_by,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "note": token.note,
    }


async def list_tokens(now: datetime | None = None) -> list[dict[str, Any]]:
    """Every token, batches' too, with its state (never a code)."""
    now = now or datetime.now(UTC)
    tokens = await ClaimToken.all().order_by("id").prefetch_related("site")
    return [
        {**token_view(t), "site": t.site.code if t.site else None, "state": state(t, now)}
        for t in tokens
    ]


def state(token: ClaimToken, now: datetime) -> str:
    """``revoked``, ``used``, ``expired`` or ``active``: the first that holds, in that order."""
    if token.revoked_at is not None:
        return "revoked"
    if token.uses >= token.max_uses:
        return "used"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


async def site_tokens(scope_path: str | None, *, after: int | None, limit: int) -> list[ClaimToken]:
    """The tokens of the sites in the subtree at ``scope_path`` (None: every site's), by id.

    A batch's tokens are bound to no site and lie in no scope: they stay with the CLI.
    """
    query = ClaimToken.filter(site_id__isnull=False)
    if scope_path is not None:
        query = ClaimToken.filter(site_id__in=Subquery(sites_under(scope_path).values("id")))
    if after is not None:
        query = query.filter(id__gt=after)
    return await query.order_by("id").limit(limit).prefetch_related("site")


async def site_code(token: ClaimToken) -> str | None:
    """The code of the token's site (None: a batch's token)."""
    if token.site_id is None:
        return None
    codes = await Site.filter(id=token.site_id).values_list("code", flat=True)
    return str(codes[0]) if codes else None


def claim_view(token: ClaimToken, site: str | None, now: datetime) -> dict[str, Any]:
    """A token as the API shows it: ``site`` its site's code; never the code itself."""
    view = token_view(token)
    del view["site_id"], view["batch"]
    return {**view, "site": site, "state": state(token, now)}
