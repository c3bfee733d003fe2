"""What the fleet gauges know of sites besides their hours: labels, districts, windows. Pure.

The site cache (``site_cache.py``) builds a ``SiteFacts`` from the database and hands it to the
fleet state whole; a change to one site makes a new one with ``with_site``. Nothing is ever
changed in place, so a scrape that holds the old one reads a consistent picture to its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .jurisdiction import Level
from .site_labels import SiteLabels, site_labels

NodeRow = tuple[str, str, str]
"""A node of the tree as the database gives it: (code, level, path)."""
SiteRow = tuple[str, str, str]
"""A site as the database gives it: (code, level, its node's path)."""


@dataclass(frozen=True, slots=True)
class SiteFacts:
    """Every site's labels and windows, every district of the tree, and pads' windows."""

    labels: Mapping[str, SiteLabels] = field(default_factory=dict)
    """Each known site's city, district and hall level, by site code."""
    districts: frozenset[tuple[str, str]] = frozenset()
    """(city, district) of every district node of the tree, sites or not."""
    windows: Mapping[str, frozenset[int]] = field(default_factory=dict)
    """Each site's service windows (窗口, by id), by site code; sites with none are absent."""
    pad_windows: Mapping[str, int] = field(default_factory=dict)
    """The window each bound device is at, by device id (review pads are the ones that count)."""

    def with_site(
        self, code: str, labels: SiteLabels | None, windows: frozenset[int] = frozenset()
    ) -> SiteFacts:
        """A copy after a change to one site; ``labels`` None forgets it (deleted)."""
        new_labels = dict(self.labels)
        new_windows = dict(self.windows)
        new_windows.pop(code, None)
        if labels is None:
            new_labels.pop(code, None)
        else:
            new_labels[code] = labels
            if windows:
                new_windows[code] = windows
        return SiteFacts(new_labels, self.districts, new_windows, self.pad_windows)


def node_levels(nodes: Iterable[NodeRow]) -> dict[str, Level]:
    """Each node's level by code; a level this version does not know is left out."""
    levels: dict[str, Level] = {}
    for code, level, _path in nodes:
        if level in Level.__members__.values():
            levels[code] = Level(level)
    return levels


def build_facts(
    sites: Iterable[SiteRow],
    nodes: Iterable[NodeRow],
    windows: Iterable[tuple[str, int]] = (),
    pad_windows: Mapping[str, int] | None = None,
) -> SiteFacts:
    """The facts of the whole tree: sites, nodes, (site code, window id) pairs, pads' windows."""
    node_list = list(nodes)
    levels = node_levels(node_list)
    districts = frozenset(
        (labels.city, labels.district)
        for code, level, path in node_list
        if level == Level.DISTRICT.value
        for labels in (site_labels(path, level, levels),)
    )
    by_site: dict[str, set[int]] = {}
    for site, window in windows:
        by_site.setdefault(site, set()).add(window)
    return SiteFacts(
        labels={code: site_labels(path, level, levels) for code, level, path in sites},
        districts=districts,
        windows={code: frozenset(ids) for code, ids in by_site.items()},
        pad_windows=dict(pad_windows or {}),
    )
