"""What the terminal can serve now of its installed service-item catalog, for the heartbeat.

The catalog arrives as a package of kind catalog, installed by the content store under the
agent's content directory (``package_setup.content_root``: ``state_dir/content`` unless the
config moves it); its tree holds ``catalog.json``. At every
heartbeat ``CatalogReport.summary`` judges each item against the peripherals' latest statuses
(``edge.catalog.servable``) and sums it up as an ``ItemsSummary``: counts by level, the kinds
of peripheral that hold items back, and the codes of the items it cannot complete, bounded.

The file is read and decoded once per installed version, and the items judged again only when
the peripherals' statuses or the day changed: a heartbeat costs a few ``readlink`` calls (a
10,000-item catalog takes some 11 ms to judge).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from edge.catalog import CATALOG_FILE, Catalog, CatalogError, ServiceChannel, decode_catalog
from edge.catalog.servable import Availability, Level, servable
from edge.content.install import ContentStore
from edge.content.manifest import ContentError
from edge.protocol import (
    DeviceKind,
    ItemsSummary,
    MissingPeripheral,
    PeripheralKind,
    PeripheralStatus,
)
from edge.protocol.health import MAX_LIMITED_CODES

log = logging.getLogger(__name__)

CHANNELS = {
    DeviceKind.KIOSK: ServiceChannel.KIOSK,
    DeviceKind.STATION_PC: ServiceChannel.STATION,
    DeviceKind.BOOTH: ServiceChannel.BOOTH,
}
"""The channel each kind of terminal offers items on; a review pad offers none of its own."""


def summarise(availability: Availability, *, max_codes: int = MAX_LIMITED_CODES) -> ItemsSummary:
    """The heartbeat's summary of ``availability``: counts, missing kinds, codes worst first."""
    counts = availability.counts()
    codes: dict[Level, list[str]] = {Level.UNAVAILABLE: [], Level.QUERY_ONLY: []}
    held_back: dict[PeripheralKind, dict[Level, int]] = {}
    for item in availability.items:
        if item.level not in codes:
            continue
        codes[item.level].append(item.code)
        for kind in item.missing:
            per_level = held_back.setdefault(kind, dict.fromkeys(codes, 0))
            per_level[item.level] += 1
    unavailable = codes[Level.UNAVAILABLE][:max_codes]
    query_only = codes[Level.QUERY_ONLY][: max_codes - len(unavailable)]
    limited = counts[Level.UNAVAILABLE] + counts[Level.QUERY_ONLY]
    return ItemsSummary(
        catalog_id=availability.catalog_id,
        version=availability.version,
        full=counts[Level.FULL],
        query_only=counts[Level.QUERY_ONLY],
        unavailable=counts[Level.UNAVAILABLE],
        not_effective=counts[Level.NOT_EFFECTIVE],
        not_offered=counts[Level.NOT_OFFERED],
        missing=tuple(
            MissingPeripheral(
                kind=kind,
                query_only=per_level[Level.QUERY_ONLY],
                unavailable=per_level[Level.UNAVAILABLE],
            )
            for kind, per_level in sorted(held_back.items())
        ),
        unavailable_codes=tuple(unavailable),
        query_only_codes=tuple(query_only),
        codes_left_out=limited - len(unavailable) - len(query_only),
    )


class CatalogReport:
    """The installed catalog of one content directory, judged against the peripherals.

    When several catalog packages are installed (a rollout moved the terminal to another
    catalog and the old one is still there), the one installed last counts.
    """

    def __init__(
        self,
        content_dir: Path,
        *,
        kind: DeviceKind,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._root = content_dir
        self._store = ContentStore(content_dir)
        self._channel = CHANNELS.get(kind)
        self._today = today
        self._loaded: tuple[str, int, Catalog | None] | None = None
        # Peripherals change seldom: most heartbeats reuse the last summary.
        self._last: tuple[tuple[Catalog, tuple[PeripheralStatus, ...], date], ItemsSummary] | None
        self._last = None

    def summary(self, peripherals: Sequence[PeripheralStatus]) -> ItemsSummary | None:
        """What can be served now of the installed catalog; None when none is installed."""
        catalog = self.installed()
        if catalog is None:
            return None
        key = (catalog, tuple(peripherals), self._today())
        if self._last is None or self._last[0] != key:
            judged = servable(catalog, key[1], key[2], channel=self._channel)
            self._last = (key, summarise(judged))
        return self._last[1]

    def installed(self) -> Catalog | None:
        """The catalog installed last, decoded once per version; None when there is none."""
        found = self._newest_catalog_package()
        if found is None:
            return None
        name, version = found
        if self._loaded is None or self._loaded[:2] != (name, version):
            self._loaded = (name, version, self._read(name, version))
        return self._loaded[2]

    def _newest_catalog_package(self) -> tuple[str, int] | None:
        newest: tuple[int, str, int] | None = None
        try:
            entries = list(os.scandir(self._root))
        except FileNotFoundError:
            return None  # nothing installed yet
        for entry in entries:
            current = Path(entry.path) / "current"
            version = self._store.installed_version(entry.name) if entry.is_dir() else None
            if version is None or not (current / CATALOG_FILE).is_file():
                continue
            installed_at = current.lstat().st_mtime_ns  # the link is made anew at each install
            if newest is None or installed_at > newest[0]:
                newest = (installed_at, entry.name, version)
        return (newest[1], newest[2]) if newest else None

    def _read(self, name: str, version: int) -> Catalog | None:
        try:
            with self._store.reading(name) as tree:
                return decode_catalog((tree / CATALOG_FILE).read_bytes())
        except (CatalogError, ContentError, OSError) as exc:
            # Logged once per version: the next install replaces it, or nothing will.
            log.warning(
                "catalog %s version %s cannot be read, not reported: %s", name, version, exc
            )
            return None
