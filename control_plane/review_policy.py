"""Which 好差评 rules hold at a site: its nearest jurisdiction node with a review policy.

A policy set on a node holds for its whole subtree unless a deeper node sets its own (a
district's 15 working days over the province's 5). Without any, the defaults hold: 5 working
days for a bad review's work order, 7 natural days to rate a case (Guangdong).
"""

from __future__ import annotations

from dataclasses import dataclass

from .db.models import Site
from .db.review_models import ReviewPolicy
from .jurisdiction import codes

DEFAULT_DEADLINE_WORKING_DAYS = 5
DEFAULT_RATE_WITHIN_DAYS = 7
MAX_DEADLINE_WORKING_DAYS = 60
MAX_RATE_WITHIN_DAYS = 60


@dataclass(frozen=True, slots=True)
class PolicyValues:
    deadline_working_days: int = DEFAULT_DEADLINE_WORKING_DAYS
    rate_within_days: int = DEFAULT_RATE_WITHIN_DAYS
    node_code: str | None = None
    """The node whose policy this is; None for the defaults."""


DEFAULT_POLICY = PolicyValues()


def nearest(path: str, policies: dict[str, PolicyValues]) -> PolicyValues:
    """The policy of the deepest node on ``path`` (``/44/4401/440117/``) that has one. Pure."""
    for code in reversed(codes(path)):
        if code in policies:
            return policies[code]
    return DEFAULT_POLICY


async def all_policies() -> dict[str, PolicyValues]:
    return {
        row.node_code: PolicyValues(row.deadline_working_days, row.rate_within_days, row.node_code)
        for row in await ReviewPolicy.all()
    }


async def policy_for_site(site_id: int | None) -> PolicyValues:
    """The policy at a site (the defaults for None or a site that no longer exists)."""
    if site_id is None:
        return DEFAULT_POLICY
    site = await Site.get_or_none(id=site_id).select_related("node")
    if site is None:
        return DEFAULT_POLICY
    return nearest(site.node.path, await all_policies())
