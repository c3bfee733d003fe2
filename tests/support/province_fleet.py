"""A province-sized fleet in memory, for the series budget test and the scrape benchmark. Pure.

Guangdong's shape, roughly: 21 cities, 120 districts, 1,600 towns and 33,600 villages. Each
district hall has 20 windows with a review pad each, 12 kiosks and 2 booths; each town centre 6
windows and pads, 4 kiosks and a booth; each village station one window and pad, a station PC
and, at three in ten, a kiosk; the rest of the 100,000 terminals are kiosks placed nowhere yet.
About 15 % are offline (some at sites closed now), online terminals report outbox backlogs from
0 to 200,000 records, and every known (peripheral kind, reason) pair, plus reasons nobody knows,
is faulty somewhere. Seeded: every run builds the same fleet.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from control_plane.fault_reasons import KNOWN_PAIRS
from control_plane.fleet import DeviceState, FleetState
from control_plane.site_facts import build_facts
from edge import schedule
from edge.protocol import (
    DeviceKind,
    Heartbeat,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    PresenceState,
)

TERMINALS = 100_000
CITIES = 21
DISTRICTS = 120
TOWNS = 1_600
VILLAGES_PER_TOWN = 21
OFFLINE_SHARE = 0.15
NOW = datetime(2024, 6, 11, 2, 0, tzinfo=UTC)  # Tuesday 10:00 in Guangzhou: most sites open
HOURS = {
    "district": "mon-sat 08:30-17:30",
    "town": "mon-fri 08:30-17:30",
    "village": "mon-fri 09:00-12:00,14:30-17:30",
    "weekend": "sat-sun 09:00-17:00",  # one village in ten: closed now
}
# (windows with a pad, kiosks, booths, station PCs) per site level.
STAFFING = {"district": (20, 12, 2, 0), "town": (6, 4, 1, 0), "village": (1, 0, 0, 1)}
PERIPHERALS = {
    DeviceKind.KIOSK: (
        PeripheralKind.RECEIPT_PRINTER,
        PeripheralKind.A4_PRINTER,
        PeripheralKind.ID_CARD_READER,
        PeripheralKind.CITIZEN_CARD_READER,
        PeripheralKind.CAMERA,
        PeripheralKind.CALL_BUTTON,
        PeripheralKind.SCREEN,
    ),
    DeviceKind.REVIEW_PAD: (PeripheralKind.REVIEW_PAD,),
    DeviceKind.STATION_PC: (
        PeripheralKind.ID_CARD_READER,
        PeripheralKind.DOCUMENT_CAMERA,
        PeripheralKind.RECEIPT_PRINTER,
        PeripheralKind.CITIZEN_CARD_READER,
        PeripheralKind.REVIEW_PAD,
        PeripheralKind.SCANNER,
    ),
    DeviceKind.BOOTH: (
        PeripheralKind.SCREEN,
        PeripheralKind.CAMERA,
        PeripheralKind.DOCUMENT_CAMERA,
    ),
}
UNKNOWN_REASONS = ("toner_low_v2", "firmware_says_no", "")


@dataclass
class Province:
    """The tree, sites, windows and devices, as the site cache and the ingest would give them."""

    nodes: list[tuple[str, str, str]]
    sites: list[tuple[str, str, str]]
    hours: dict[str, str]
    windows: list[tuple[str, int]]
    pad_windows: dict[str, int]
    devices: list[DeviceState]

    def fleet(self) -> FleetState:
        """A fleet state that knows all of it."""
        fleet = FleetState(self.devices)
        parsed = {text: schedule.parse(text) for text in set(self.hours.values())}
        fleet.set_opening_hours({site: parsed[text] for site, text in self.hours.items()})
        fleet.set_site_paths({code: path for code, _, path in self.sites})
        fleet.set_site_facts(build_facts(self.sites, self.nodes, self.windows, self.pad_windows))
        return fleet


def province(seed: int = 9) -> Province:
    """The province above, ``TERMINALS`` devices in all."""
    rng = random.Random(seed)
    built = Province([("44", "province", "/44/")], [], {}, [], {}, [])
    cities = [f"44{c:02}" for c in range(1, CITIES + 1)]
    for city in cities:
        built.nodes.append((city, "city", f"/44/{city}/"))
    districts = [
        (cities[d % CITIES], f"{cities[d % CITIES]}{d // CITIES + 1:02}") for d in range(DISTRICTS)
    ]
    for city, district in districts:
        path = f"/44/{city}/{district}/"
        built.nodes.append((district, "district", path))
        _site(built, rng, f"h{district}", "district", path)
    for t in range(TOWNS):
        city, district = districts[t % DISTRICTS]
        town = f"{district}{t // DISTRICTS + 1:03}"
        path = f"/44/{city}/{district}/{town}/"
        built.nodes.append((town, "town", path))
        _site(built, rng, f"t{town}", "town", path)
        for v in range(1, VILLAGES_PER_TOWN + 1):
            village = f"{town}{v:03}"
            built.nodes.append((village, "village", f"{path}{village}/"))
            _site(built, rng, f"v{village}", "village", f"{path}{village}/")
    while len(built.devices) < TERMINALS:
        built.devices.append(_device(rng, f"spare-{len(built.devices)}", DeviceKind.KIOSK, ""))
    _break_peripherals(built.devices, rng)
    return built


def _site(built: Province, rng: random.Random, code: str, level: str, path: str) -> None:
    built.sites.append((code, level, path))
    weekend = level == "village" and rng.random() < 0.1
    built.hours[code] = HOURS["weekend" if weekend else level]
    pads, kiosks, booths, pcs = STAFFING[level]
    if level == "village" and rng.random() < 0.3:
        kiosks = 1
    for n in range(pads):
        window = len(built.windows) + 1
        built.windows.append((code, window))
        pad = f"{code}-pad{n}"
        built.pad_windows[pad] = window
        built.devices.append(_device(rng, pad, DeviceKind.REVIEW_PAD, code))
    for kind, count in ((DeviceKind.KIOSK, kiosks), (DeviceKind.BOOTH, booths)):
        built.devices += [_device(rng, f"{code}-{kind.value}{n}", kind, code) for n in range(count)]
    built.devices += [
        _device(rng, f"{code}-pc{n}", DeviceKind.STATION_PC, code) for n in range(pcs)
    ]


_HEALTHY: dict[DeviceKind, tuple[PeripheralStatus, ...]] = {
    kind: tuple(
        PeripheralStatus(name=f"{p.value}0", kind=p, state=PeripheralState.OK) for p in kinds
    )
    for kind, kinds in PERIPHERALS.items()
}
_BACKLOGS = (0, 0, 0, 0, 3, 12, 150, 2_000, 40_000, 200_000)


def _device(rng: random.Random, device_id: str, kind: DeviceKind, site: str) -> DeviceState:
    online = rng.random() >= OFFLINE_SHARE
    return DeviceState(
        device_id,
        kind,
        PresenceState.ONLINE if online else PresenceState.OFFLINE,
        session=1,
        site=site,
        last_seen=NOW,
        health=Heartbeat(
            full=True, outbox_backlog=rng.choice(_BACKLOGS), peripherals=_HEALTHY[kind]
        ),
    )


def _break_peripherals(devices: list[DeviceState], rng: random.Random) -> None:
    """Give every known (kind, reason) pair and a few unknown reasons to online devices."""
    faults = [(PeripheralKind(k), r) for k, r in KNOWN_PAIRS]
    faults += [(kind, reason) for kind in PeripheralKind for reason in UNKNOWN_REASONS]
    online = [i for i, d in enumerate(devices) if d.presence is PresenceState.ONLINE]
    for n, index in enumerate(rng.sample(online, 5 * len(faults))):
        kind, reason = faults[n % len(faults)]
        state = devices[index]
        assert state.health is not None
        broken = PeripheralStatus(
            name=f"{kind.value}9", kind=kind, state=PeripheralState.FAULT, reason=reason
        )
        health = Heartbeat(
            full=True,
            outbox_backlog=state.health.outbox_backlog,
            peripherals=(*(state.health.peripherals or ()), broken),
        )
        devices[index] = DeviceState(
            state.device_id,
            state.kind,
            state.presence,
            session=state.session,
            site=state.site,
            last_seen=state.last_seen,
            health=health,
        )
