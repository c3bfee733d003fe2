"""Bringing the running server's picture of sites up to date right after an API change.

The fleet state keeps every site's opening hours (for ``offline_expected``), jurisdiction path
(for scopes) and ``SiteFacts`` (metric labels, windows, the pads bound to them) in memory;
``server.py`` re-reads all of them every ``PLACEMENT_REFRESH_S`` for changes made elsewhere (an
import, another replica). A change through this replica's API re-reads the one site it changed,
after its commit and before answering, so that the next request already sees it. Re-reading every
site instead would parse every site's schedule: about 0.9 s of the event loop for 10,000 sites on
the development machine, against well under a millisecond for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from edge.schedule import OpeningHours, ScheduleError

from . import registry
from .db import DATABASE_ERRORS
from .db.models import Site
from .jurisdiction import SEPARATOR
from .site_facts import SiteFacts, build_facts, node_levels
from .site_labels import site_labels
from .sites import opening_hours

log = logging.getLogger(__name__)

SiteChanged = Callable[[str], Awaitable[None]]
"""Called with a site's code after a change to it has been committed."""


class SiteAwareFleet(Protocol):
    """What of ``fleet.FleetState`` the cache needs."""

    def set_opening_hours(self, hours: Mapping[str, OpeningHours]) -> None: ...

    def set_site_paths(self, paths: Mapping[str, str]) -> None: ...

    def set_site(self, code: str, hours: OpeningHours | None, path: str | None) -> None: ...

    @property
    def site_facts(self) -> SiteFacts: ...

    def set_site_facts(self, facts: SiteFacts) -> None: ...


class SiteCache:
    """Re-reads sites into a fleet state: one after a change, or all of them.

    Both run under one lock, so that a re-read cannot set what it read before another one that
    read later: the last to run read the newest. ``server.py``'s periodic refresh and the API's
    changes share one cache (``make_app``'s ``sites_cache``).
    """

    def __init__(self, fleet: SiteAwareFleet) -> None:
        self._fleet = fleet
        self._lock = asyncio.Lock()

    async def site_changed(self, code: str) -> None:
        """Re-read one site (gone: forget it). A failure is logged: the periodic refresh heals."""
        async with self._lock:
            try:
                site = await Site.get_or_none(code=code).select_related("node")
                if site is not None:
                    ancestors = site.node.path.strip(SEPARATOR).split(SEPARATOR)
                    nodes = await registry.load_node_rows(ancestors)
                    windows = await registry.load_windows(code)
            except DATABASE_ERRORS as exc:
                log.warning("could not re-read site %s after a change: %s", code, exc)
                return
            facts = self._fleet.site_facts
            if site is None:
                self._fleet.set_site(code, None, None)
                self._fleet.set_site_facts(facts.with_site(code, None))
                return
            self._fleet.set_site(code, _hours_of(site), site.node.path)
            labels = site_labels(site.node.path, site.level, node_levels(nodes))
            window_ids = frozenset(window for _site, window in windows)
            self._fleet.set_site_facts(facts.with_site(code, labels, window_ids))

    async def reload(self) -> None:
        """Re-read every site's hours, path and facts, and pads' windows.

        The server does at start and every ``PLACEMENT_REFRESH_S``: a window added or a pad
        bound to one (changes that do not call ``site_changed``) shows within that time.
        """
        async with self._lock:
            hours = await registry.load_opening_hours()
            paths = await registry.load_site_paths()
            facts = build_facts(
                await registry.load_site_rows(),
                await registry.load_node_rows(),
                await registry.load_windows(),
                await registry.load_pad_windows(),
            )
            self._fleet.set_opening_hours(hours)
            self._fleet.set_site_paths(paths)
            self._fleet.set_site_facts(facts)


def _hours_of(site: Site) -> OpeningHours | None:
    """The site's hours; None (and a warning) for hours the API should never have let in."""
    try:
        return opening_hours(site)
    except (ScheduleError, ValueError) as exc:
        log.warning("site %s: opening hours %r unreadable: %s", site.code, site.hours, exc)
        return None
