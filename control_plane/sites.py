"""Where terminals live, read from the database: subtrees of the jurisdiction tree, sites, hours.

Every subtree query is one range of ``JurisdictionNode.path`` (``jurisdiction.subtree_range``),
answered from the path's unique index, then sites by ``node_id`` and devices by ``site_id``,
both indexed.
"""

from __future__ import annotations

from datetime import date

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from edge import schedule

from . import jurisdiction
from .db.models import Device, JurisdictionNode, Site


class UnknownNodeError(LookupError):
    """No node of the jurisdiction tree has that code."""


async def node(code: str) -> JurisdictionNode:
    found = await JurisdictionNode.get_or_none(code=code)
    if found is None:
        msg = f"no jurisdiction node has the code {code!r}"
        raise UnknownNodeError(msg)
    return found


def nodes_under(path: str) -> QuerySet[JurisdictionNode]:
    """The nodes of the subtree rooted at the node with ``path``, itself included."""
    low, high = jurisdiction.subtree_range(path)
    return JurisdictionNode.filter(path__gte=low, path__lt=high)


# Subqueries rather than filters across relations: tortoise joins those with LEFT OUTER JOIN,
# which SQLite does not reorder, so it would scan every device and look up its site's node.


def sites_under(path: str) -> QuerySet[Site]:
    """The sites hanging off the subtree rooted at ``path``."""
    return Site.filter(node_id__in=Subquery(nodes_under(path).values("id")))


def devices_under(path: str) -> QuerySet[Device]:
    """The devices placed at sites of the subtree rooted at ``path``."""
    return Device.filter(site_id__in=Subquery(sites_under(path).values("id")))


def opening_hours(site: Site) -> schedule.OpeningHours:
    """The site's week and holiday overrides, as ``schedule`` reads them (checked on import)."""
    overrides = [(date.fromisoformat(day), spans) for day, spans in site.holidays.items()]
    return schedule.parse(site.hours, overrides)
