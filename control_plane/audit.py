"""The audit log: every change to termfleet's data, written by ``record`` and read by ``entries``.

Every mutation calls ``record`` inside its own transaction (``using_db``), so a change and its
entry are committed together or not at all. Actions are ``<target type>.<verb>``
(``token.create``, ``token.revoke``; later ``device.label``, ``device.move``, …); ``before`` and
``after`` hold the target's JSON view, without secrets.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.queryset import QuerySet

from . import jurisdiction
from .auth import Actor
from .db.models import AuditEntry

DEFAULT_LIMIT = 50


def local_actor() -> Actor:
    """Someone working on the database directly (``termfleet tokens``), by their OS user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid, as in some containers
        user = "unknown"
    return Actor(None, f"local:{user}")


async def record(  # noqa: PLR0913 - one parameter per column of the entry
    action: str,
    actor: Actor,
    target_type: str,
    target_id: str | int,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    note: str = "",
    scope_path: str | None = None,
    at: datetime | None = None,
    using_db: BaseDBAsyncClient | None = None,
) -> AuditEntry:
    """Write one entry; ``scope_path``: the jurisdiction path the target lies in (None: global)."""
    return await AuditEntry.create(
        at=at or datetime.now(UTC),
        actor_token_id=actor.token_id,
        actor_name=actor.name,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        scope_path=scope_path,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        note=note,
        using_db=using_db,
    )


def entries(
    *, limit: int = DEFAULT_LIMIT, before_id: int | None = None, within: str | None = None
) -> QuerySet[AuditEntry]:
    """The newest entries first, older than ``before_id`` when given.

    ``within`` is a reader's scope path: it then reads only the entries of that subtree, never
    the global ones; None reads everything.
    """
    query = AuditEntry.all()
    if within is not None:
        low, high = jurisdiction.subtree_range(within)
        query = query.filter(scope_path__gte=low, scope_path__lt=high)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return query.order_by("-id").limit(limit)


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor_name,
        "actor_token_id": entry.actor_token_id,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "scope_path": entry.scope_path,
        "before": entry.before,
        "after": entry.after,
        "note": entry.note,
    }
