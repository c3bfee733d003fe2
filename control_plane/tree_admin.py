"""The jurisdiction tree through the API: list, show, create, rename and delete nodes.

Every function takes the asking token's principal and keeps to its scope (``scope_lookup``);
every change writes the audit log in the change's own transaction. A node's code, level and
parent are its identity here: restructuring the tree (moving a subtree) is the import's job,
which rewrites the paths below a moved node.
"""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from . import audit, jurisdiction
from .admin_errors import ALREADY_EXISTS, IN_USE, ConflictError, InvalidFieldError
from .auth import Principal
from .db.models import ApiToken, JurisdictionNode, Site
from .inventory import NodeSpec
from .jurisdiction import JurisdictionError, Level
from .paging import Page, page_of
from .scope_lookup import placement_node, require_whole_tree, visible_node
from .site_views import node_view
from .sites import devices_under, sites_under


async def list_nodes(
    principal: Principal, parent: str | None, *, after: str | None, limit: int
) -> Page[str]:
    """The children of ``parent``, or the tops of the token's tree: the roots, or its scope.

    Each with how many children and sites it has (its own sites, not its subtree's).
    """
    if parent is not None:
        query = JurisdictionNode.filter(parent_id=(await visible_node(principal, parent)).id)
    elif principal.scope_path is None:
        query = JurisdictionNode.filter(parent_id__isnull=True)
    else:
        query = JurisdictionNode.filter(path=principal.scope_path)
    if after is not None:
        query = query.filter(code__gt=after)
    rows = await query.order_by("code").limit(limit + 1)
    ids = [row.id for row in rows]
    children = await _counts(JurisdictionNode.filter(parent_id__in=ids), "parent_id")
    sites = await _counts(Site.filter(node_id__in=ids), "node_id")

    def view(node: JurisdictionNode) -> dict[str, Any]:
        return {
            **node_view(node),
            "children": children.get(node.id, 0),
            "sites": sites.get(node.id, 0),
        }

    return page_of(rows, limit, lambda node: node.code, view)


async def _counts(query: QuerySet[Any], column: str) -> dict[int, int]:
    """How many rows of ``query`` each value of ``column`` has, by value (absent: none)."""
    rows = await query.annotate(n=Count("id")).group_by(column).values_list(column, "n")
    return {int(key): int(n) for key, n in rows}


async def node_detail(principal: Principal, code: str) -> dict[str, Any]:
    """A node with its ancestors (root first), its own counts as listed, its subtree's counts."""
    node = await visible_node(principal, code)
    ancestors = await JurisdictionNode.filter(code__in=jurisdiction.codes(node.path)[:-1])
    return {
        **node_view(node),
        "ancestors": [
            {"code": a.code, "name": a.name, "level": a.level}
            for a in sorted(ancestors, key=lambda a: len(a.path))
        ],
        "children": await JurisdictionNode.filter(parent_id=node.id).count(),
        "sites": await Site.filter(node_id=node.id).count(),
        "subtree": {
            "sites": await sites_under(node.path).count(),
            "devices": await devices_under(node.path).count(),
        },
    }


async def create_node(principal: Principal, spec: NodeSpec) -> dict[str, Any]:
    """A new node below ``spec.parent`` (which the token must see), or a new root."""
    async with in_transaction() as connection:
        parent = None
        if spec.parent is None:
            require_whole_tree(principal, "a root node")
        else:
            parent = await placement_node(principal, spec.parent, "parent")
            _check_below(parent, spec)
        if await JurisdictionNode.exists(code=spec.code):
            msg = f"a node with the code {spec.code} exists"
            raise ConflictError(msg, ALREADY_EXISTS)
        path = jurisdiction.path_of(parent.path if parent else None, spec.code)
        try:
            node = await JurisdictionNode.create(
                code=spec.code, name=spec.name, level=spec.level.value, parent=parent, path=path
            )
        except IntegrityError:  # created meanwhile by another request
            msg = f"a node with the code {spec.code} exists"
            raise ConflictError(msg, ALREADY_EXISTS) from None
        view = node_view(node)
        await audit.record(
            "node.create",
            principal.actor,
            "node",
            node.code,
            after=view,
            scope_path=node.path,
            using_db=connection,
        )
    return view


def _check_below(parent: JurisdictionNode, spec: NodeSpec) -> None:
    try:
        jurisdiction.check_child(Level(parent.level), spec.level)
    except JurisdictionError as exc:
        raise InvalidFieldError(field="level", problem=f"{exc} ({parent.code})") from None
    try:
        jurisdiction.check_child_code(parent.code, spec.code)
    except JurisdictionError as exc:
        raise InvalidFieldError(field="code", problem=str(exc)) from None


async def rename_node(principal: Principal, code: str, name: str) -> dict[str, Any]:
    async with in_transaction() as connection:
        node = await visible_node(principal, code)
        before = node_view(node)
        node.name = name
        await node.save(update_fields=["name"], using_db=connection)
        after = node_view(node)
        await audit.record(
            "node.update",
            principal.actor,
            "node",
            node.code,
            before=before,
            after=after,
            scope_path=node.path,
            using_db=connection,
        )
    return after


async def delete_node(principal: Principal, code: str) -> None:
    """Delete a node that nothing hangs off: no children, no sites, no tokens (revoked or not)."""
    async with in_transaction() as connection:
        node = await visible_node(principal, code)
        holds = {
            "child node": await JurisdictionNode.filter(parent_id=node.id).count(),
            "site": await Site.filter(node_id=node.id).count(),
            "API token": await ApiToken.filter(scope_id=node.id).count(),
        }
        if any(holds.values()):
            raise ConflictError(_in_use(node.code, holds), IN_USE)
        before = node_view(node)
        try:
            await node.delete(using_db=connection)
        except IntegrityError:  # something was hung off it meanwhile
            msg = f"node {node.code} came into use while being deleted; try again"
            raise ConflictError(msg, IN_USE) from None
        await audit.record(
            "node.delete",
            principal.actor,
            "node",
            node.code,
            before=before,
            scope_path=node.path,
            using_db=connection,
        )


def _in_use(code: str, holds: dict[str, int]) -> str:
    parts = [f"{n} {what}{'s' if n > 1 else ''}" for what, n in holds.items() if n]
    msg = f"node {code} cannot be deleted: it has {', '.join(parts)}"
    if holds["API token"]:
        msg += " (revoked tokens count too: they are kept for the audit log)"
    return msg + "; delete or move those first"
