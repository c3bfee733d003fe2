"""Where a site lies, as metric labels: its city, its district and its hall level. Pure.

Alertmanager routes alerts by jurisdiction on ``city`` and ``district`` (行政区划 codes of the
site's ancestors at those levels); dashboards group by hall ``level``. A device placed nowhere, or
at a site not known yet, gets ``none`` for all three, so its series still add up in the totals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitoring.metrics import NONE

from .jurisdiction import SEPARATOR, Level


@dataclass(frozen=True, slots=True)
class SiteLabels:
    city: str = NONE
    district: str = NONE
    level: str = NONE


UNPLACED = SiteLabels()


def site_labels(path: str, site_level: str, node_levels: Mapping[str, Level]) -> SiteLabels:
    """The labels of a site at ``path`` (its node's, ``/44/4401/440117/``) of ``site_level``.

    ``node_levels`` gives each node's level by code; the nearest ancestor (or the node itself) at
    the city and district level names them. A county directly under a province (省直辖县) has no
    city: ``none``.
    """
    city = district = NONE
    for code in path.strip(SEPARATOR).split(SEPARATOR):
        level = node_levels.get(code)
        if level is Level.CITY:
            city = code
        elif level is Level.DISTRICT:
            district = code
    return SiteLabels(city, district, site_level or NONE)
