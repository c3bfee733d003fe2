"""Records stored as the ingest stores them, for the roll-up and statistics tests.

``store`` writes records straight into the ``record`` table (the ingest's own tests cover how
they get there). ``seed_district`` is a small Conghua: a district hall, two towns and three
villages with a review pad each, whose first quarter of 2026 adds up to the seed article's
table of handled cases (district hall 34,435, towns 5,277, villages 1,311), plus records that
must not count in it: another district, the quarter before and after, a kiosk's own rating.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from control_plane.db.models import StoredRecord
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.records import record_type
from edge.protocol import Rating, Record, Review, ReviewChannel, encode

SHANGHAI = ZoneInfo("Asia/Shanghai")

Stored = tuple[str, Record, datetime]
"""A record of a device, and when it was received (its device time too unless it has one)."""


async def store(records: Iterable[Stored], *, first_seq: int = 1) -> None:
    """Store records as the ingest would: channel, type, device time, receive time, raw JSON."""
    rows = []
    for seq, (device_id, record, received_at) in enumerate(records, start=first_seq):
        numbered = _with(record, seq=seq, at=record.at or received_at)
        channel = "review" if isinstance(numbered, Review) else "usage"
        rows.append(
            StoredRecord(
                device_id=device_id,
                seq=seq,
                channel=channel,
                type=record_type(numbered),
                device_time=numbered.at,
                received_at=received_at,
                payload=encode(numbered).decode(),
            )
        )
    await StoredRecord.bulk_create(rows, batch_size=2000)


def _with(record: Record, **changes: object) -> Record:
    return msgspec.structs.replace(record, **changes)


# --- the seed district -----------------------------------------------------------------------

DISTRICT, OTHER_DISTRICT = "440117", "440114"
TOWNS = ("440117101", "440117102")
VILLAGES = ("440117101001", "440117101002", "440117102001")
SEED = {"district": 34_435, "town": 5_277, "village": 1_311}
"""Q1 handled cases at Conghua's district hall, town centres and village halls (seed 000)."""
QUARTER = (date(2026, 1, 1), date(2026, 3, 31))

PADS = {
    "pad-hall": ("s440117", "district"),
    "pad-town1": ("s440117101", "town"),
    "pad-town2": ("s440117102", "town"),
    "pad-v1": ("s440117101001", "village"),
    "pad-v2": ("s440117101002", "village"),
    "pad-v3": ("s440117102001", "village"),
    "pad-huadu": ("s440114", "district"),
}
"""Each review pad, by its site and the site's level."""


def seed_inventory() -> str:
    nodes = [
        ("44", "province", None),
        ("4401", "city", "44"),
        (DISTRICT, "district", "4401"),
        (OTHER_DISTRICT, "district", "4401"),
        *((town, "town", DISTRICT) for town in TOWNS),
        *((village, "village", village[:9]) for village in VILLAGES),
    ]
    return json.dumps(
        {
            "jurisdiction": [
                {"code": code, "name": f"n{code}", "level": level, "parent": parent}
                for code, level, parent in nodes
            ],
            "sites": [
                {"code": site, "name": f"hall {site}", "level": level, "node": site[1:],
                 "hours": "mon-fri 08:30-17:30"}
                for site, level in set(PADS.values())
            ],
            "devices": [
                {"device_id": pad, "kind": "review_pad", "site": site}
                for pad, (site, _) in PADS.items()
            ],
        }
    )  # fmt: skip


def _spread(total: int, pads: Sequence[str], first: date, days: int) -> Iterable[Stored]:
    """``total`` rated window cases over the pads and the working hours of ``days`` days."""
    for n in range(total):
        day = first + timedelta(days=n % days)
        moment = datetime.combine(day, time(9 + n % 8, n % 60), SHANGHAI).astimezone(UTC)
        rating = (Rating.VERY_SATISFIED, Rating.SATISFIED, Rating.BASIC)[n % 3]
        review = Review(case_number=f"c{n}", item_code=f"I{n % 5}", rating=rating)
        yield pads[n % len(pads)], review, moment


async def seed_district() -> None:
    """The tree, sites and pads, and the quarter's reviews with records that must not count."""
    await import_inventory(read_json(seed_inventory(), "seed.json"))
    days = (QUARTER[1] - QUARTER[0]).days + 1
    records: list[Stored] = []
    for level, total in SEED.items():
        pads = [pad for pad, (site, lvl) in PADS.items() if lvl == level and site != "s440114"]
        records += _spread(total, pads, QUARTER[0], days)
    noise = [
        *_spread(50, ["pad-huadu"], QUARTER[0], days),  # another district
        *_spread(20, ["pad-hall"], date(2025, 12, 31), 1),  # the day before the quarter
        *_spread(20, ["pad-town1"], date(2026, 4, 1), 1),  # the day after
    ]
    kiosk_rating = Review(case_number="k1", rating=Rating.SATISFIED, channel=ReviewChannel.KIOSK)
    noise.append(("pad-hall", kiosk_rating, datetime(2026, 2, 2, 3, tzinfo=UTC)))
    await store(records + noise)
