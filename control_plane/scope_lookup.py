"""Finding nodes and sites by code as a token may: what lies outside its scope does not exist.

Two rules, the same for every route (docs/api-sites.md):

- **Reading or changing** an object named in the URL: outside the scope, it is a 404 with the
  same message as an object that does not exist, so a scope does not learn what lies beyond it.
- **Placing** something (a node's parent, a site's node, a member of staff's site, a token's
  scope) at a code given in the body: outside the scope it is a 403 ``out_of_scope``. For a
  scoped token an unknown code is refused the same way (again, so as not to tell the two
  apart); a token for the whole tree is told the code is unknown (400).
"""

from __future__ import annotations

import re

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from .admin_errors import InvalidFieldError, NotFoundError
from .auth import PermissionDeniedError, Principal, Refusal
from .db.models import JurisdictionNode, Site
from .inventory import NAME as SITE_CODE
from .jurisdiction import CODE as NODE_CODE
from .sites import sites_under


def could_be(pattern: re.Pattern[str], value: str) -> bool:
    """Whether a stored object could have ``value`` as its code or number.

    Asked before a lookup: a value that no object could have is refused without a query, and
    the database never sees text longer than its column (which tortoise refuses with an error).
    """
    return pattern.fullmatch(value) is not None


async def _node(code: str) -> JurisdictionNode | None:
    return await JurisdictionNode.get_or_none(code=code) if could_be(NODE_CODE, code) else None


async def _site(code: str) -> Site | None:
    if not could_be(SITE_CODE, code):
        return None
    return await Site.get_or_none(code=code).select_related("node")


async def visible_node(principal: Principal, code: str) -> JurisdictionNode:
    node = await _node(code)
    if node is None or not principal.sees(node.path):
        msg = f"no node has the code {code!r}"
        raise NotFoundError(msg)
    return node


async def visible_site(principal: Principal, code: str) -> tuple[Site, JurisdictionNode]:
    """The site and the node it hangs off."""
    site = await _site(code)
    if site is None or not principal.sees(site.node.path):
        msg = f"no site has the code {code!r}"
        raise NotFoundError(msg)
    return site, site.node


async def placement_node(principal: Principal, code: str, field: str) -> JurisdictionNode:
    node = await _node(code)
    if node is not None and principal.sees(node.path):
        return node
    raise _placement_refused(principal, "node", code, field)


async def placement_site(
    principal: Principal, code: str, field: str
) -> tuple[Site, JurisdictionNode]:
    site = await _site(code)
    if site is not None and principal.sees(site.node.path):
        return site, site.node
    raise _placement_refused(principal, "site", code, field)


def _placement_refused(principal: Principal, what: str, code: str, field: str) -> Exception:
    if principal.scope_path is None:
        return InvalidFieldError(field, f"no {what} has the code {code!r}")
    msg = f"{field}: {code!r} is no {what} within this token's scope ({principal.scope_code})"
    return PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg)


def require_whole_tree(principal: Principal, what: str) -> None:
    """Refuse a scoped token something that belongs to no subtree (a root, a department)."""
    if principal.scope_path is not None:
        msg = f"{what} belongs to the whole tree: only a token without a scope may do this"
        raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg)


def visible_sites(principal: Principal) -> QuerySet[Site]:
    if principal.scope_path is None:
        return Site.all()
    return sites_under(principal.scope_path)


def visible_site_ids(principal: Principal) -> Subquery | None:
    """The ids of the sites in scope, as a subquery; None for the whole tree (no filter)."""
    if principal.scope_path is None:
        return None
    return Subquery(sites_under(principal.scope_path).values("id"))
