"""Simulated citizen visits: the records each kind of terminal produces, valid on the wire."""

from __future__ import annotations

import random
from collections import Counter

import msgspec
import pytest

from edge.protocol import (
    DeviceKind,
    Rating,
    Record,
    Review,
    SessionEnded,
    SessionStarted,
    Transaction,
    TransactionOutcome,
    decode,
    encode,
    spec_for,
)
from edge.simulator.activity import STAFF_PER_WINDOW, VisitGenerator
from edge.simulator.district import scaled, terminals


def visits(kind: DeviceKind, count: int, seed: int = 1) -> list[list[object]]:
    generator = VisitGenerator(f"{kind.value}-1", kind, random.Random(seed))
    return [list(generator.visit()) for _ in range(count)]


@pytest.mark.parametrize("kind", [DeviceKind.KIOSK, DeviceKind.STATION_PC, DeviceKind.BOOTH])
def test_a_terminal_visit_is_a_whole_session(kind: DeviceKind) -> None:
    for visit in visits(kind, 200):
        assert isinstance(visit[0], SessionStarted)
        assert isinstance(visit[-1], SessionEnded)
        assert len({r.session_id for r in visit}) == 1  # type: ignore[attr-defined]


def test_kiosk_visits_carry_transactions_of_catalog_items() -> None:
    transactions = [
        r for v in visits(DeviceKind.KIOSK, 300) for r in v if isinstance(r, Transaction)
    ]
    assert len(transactions) == 300
    assert {t.department for t in transactions} >= {"rs", "sw", "ga"}


def test_review_pads_rate_one_case_per_visit_mostly_well() -> None:
    reviews = [r for v in visits(DeviceKind.REVIEW_PAD, 2_000) for r in v]
    assert all(isinstance(r, Review) for r in reviews)
    assert len({r.case_number for r in reviews}) == 2_000  # type: ignore[attr-defined]
    ratings = Counter(r.rating for r in reviews)  # type: ignore[attr-defined]
    assert ratings[Rating.VERY_SATISFIED] / 2_000 > 0.7
    assert ratings[Rating.DISSATISFIED] + ratings[Rating.VERY_DISSATISFIED] > 0


@pytest.mark.parametrize("kind", list(DeviceKind)[:4])
def test_every_record_survives_the_wire_once_numbered(kind: DeviceKind) -> None:
    # The agent gives each record its seq; with it, every record passes the ingest's codec.
    for visit in visits(kind, 50):
        for record in visit:
            assert isinstance(record, Record)
            numbered = msgspec.structs.replace(record, seq=1)
            channel, _ = spec_for(numbered)
            assert decode(channel, encode(numbered)) == numbered


def test_visits_are_deterministic_per_seed() -> None:
    assert visits(DeviceKind.KIOSK, 20, seed=5) == visits(DeviceKind.KIOSK, 20, seed=5)


def test_scaled_fleet_keeps_the_district_mix() -> None:
    base = terminals("conghua")
    fleet = scaled(base, len(base) * 3)
    assert len({t.device_id for t in fleet}) == len(base) * 3
    assert Counter(t.kind for t in fleet) == Counter(
        {k: n * 3 for k, n in Counter(t.kind for t in base).items()}
    )
    assert scaled(base, 5) == base[:5]


def test_a_pad_review_names_its_window_and_a_clerk_of_it() -> None:
    generator = VisitGenerator("pad-1", DeviceKind.REVIEW_PAD, random.Random(2), window="03")
    reviews = [r for _ in range(200) for r in generator.visit()]
    assert all(isinstance(r, Review) and r.window == "03" for r in reviews)
    clerks = {r.staff_id for r in reviews}  # type: ignore[attr-defined]
    assert 1 < len(clerks) <= STAFF_PER_WINDOW
    assert all(clerk.startswith("pad-1-") for clerk in clerks)


def test_a_station_pc_rates_on_its_pad_only_when_it_has_one() -> None:
    plain = VisitGenerator("station-1", DeviceKind.STATION_PC, random.Random(4))
    with_pad = VisitGenerator(
        "station-1", DeviceKind.STATION_PC, random.Random(4), rates_on_pad=True
    )
    assert all(plain.next_visit().rated is None for _ in range(100))
    made = [with_pad.next_visit() for _ in range(100)]
    completed = [
        v
        for v in made
        for r in v.records
        if isinstance(r, Transaction) and r.outcome is TransactionOutcome.COMPLETED
    ]
    assert completed
    assert [v.rated is not None for v in made] == [v in completed for v in made]


def test_a_started_again_simulator_numbers_new_cases() -> None:
    """Visits count from 1 at every start; the prefix keeps case numbers from repeating."""

    def cases(prefix: str) -> set[str]:
        generator = VisitGenerator(
            "pad-1", DeviceKind.REVIEW_PAD, random.Random(3), case_prefix=prefix
        )
        return {r.case_number for _ in range(50) for r in generator.visit()}  # type: ignore[attr-defined]

    first, again = cases("20261123080000-"), cases("20261123093000-")
    assert len(first) == len(again) == 50
    assert not first & again
    assert "pad-1-000001" in cases("")
