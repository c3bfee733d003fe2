"""A demo district's terminals, derived from its site list (edge/simulator/data/<name>.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from edge import schedule
from edge.protocol import DeviceKind
from edge.schedule import OpeningHours

_PREFIX = {
    DeviceKind.KIOSK: "kiosk",
    DeviceKind.REVIEW_PAD: "pad",
    DeviceKind.STATION_PC: "station",
    DeviceKind.BOOTH: "booth",
}


class DistrictError(ValueError):
    """The district dataset is unknown or malformed."""


@dataclass(frozen=True, slots=True)
class SimulatedTerminal:
    device_id: str
    kind: DeviceKind
    site_code: str
    site_level: str
    window: str = ""


def available_districts() -> list[str]:
    folder = resources.files(__package__).joinpath("data")
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )


def district_file(name: str) -> Traversable:
    """The district's dataset, which ``termfleet sites import`` also reads."""
    if name not in available_districts():
        msg = f"unknown district {name!r}; known: {', '.join(available_districts())}"
        raise DistrictError(msg)
    return resources.files(__package__).joinpath("data", f"{name}.json")


def load_district(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(district_file(name).read_text())
    return data


def terminals(name: str) -> list[SimulatedTerminal]:
    """Every terminal of the district: its kiosks, booths and station PCs, and a pad per window."""
    data = load_district(name)
    result: list[SimulatedTerminal] = []
    for site in data["sites"]:
        code, level = site["code"], site["level"]
        for kind_name, count in site.get("terminals", {}).items():
            kind = DeviceKind(kind_name)
            if kind not in _PREFIX:
                msg = f"site {code}: unknown terminal kind {kind_name!r}"
                raise DistrictError(msg)
            result.extend(
                SimulatedTerminal(f"{_PREFIX[kind]}-{code}-{n:02d}", kind, code, level)
                for n in range(1, count + 1)
            )
        if data.get("review_pad_per_window"):
            result.extend(
                SimulatedTerminal(
                    f"pad-{code}-{w:02d}", DeviceKind.REVIEW_PAD, code, level, f"{w:02d}"
                )
                for w in range(1, site.get("windows", 0) + 1)
            )
    return result


def opening_hours(name: str) -> dict[str, OpeningHours]:
    """Each site's opening hours, by site code."""
    result = {}
    for site in load_district(name)["sites"]:
        try:
            result[site["code"]] = schedule.parse(site["hours"])
        except schedule.ScheduleError as exc:
            msg = f"site {site['code']}: hours: {exc}"
            raise DistrictError(msg) from None
    return result


def scaled(base: list[SimulatedTerminal], count: int) -> list[SimulatedTerminal]:
    """``count`` terminals with the district's mix: its own first, then copies with a suffix.

    Copies keep the site and kind of the terminal they copy, so a fleet of any size has the
    district's proportions of kiosks, review pads, station PCs and booths.
    """
    if count <= len(base):
        return base[:count]
    result = list(base)
    for n in range(len(base), count):
        original = base[n % len(base)]
        copy_no = n // len(base)
        result.append(
            SimulatedTerminal(
                f"{original.device_id}-c{copy_no}",
                original.kind,
                original.site_code,
                original.site_level,
                original.window,
            )
        )
    return result
