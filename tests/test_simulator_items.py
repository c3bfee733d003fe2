"""The simulated item mix (edge/simulator/data/catalog/items.json): valid, and drawn by it."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from edge.protocol import DeviceKind, Transaction
from edge.simulator.activity import VisitGenerator
from edge.simulator.items import ItemMix, ServiceItem, load_items, self_service_items, window_items

DRAWS = 20_000


def test_items_are_unique_and_weighted() -> None:
    items = load_items()
    codes = [item.code for item in items]
    assert len(codes) == len(set(codes))
    assert all(item.weight > 0 for item in items)
    assert len({item.department for item in items}) >= 15


def test_kiosks_offer_only_self_service_items_and_windows_every_item() -> None:
    assert all(item.self_service for item in self_service_items().items)
    assert set(window_items().items) == set(load_items())


def test_draws_follow_the_weights() -> None:
    mix = window_items()
    rng = random.Random(3)
    drawn = Counter(mix.pick(rng).code for _ in range(DRAWS))
    top = max(load_items(), key=lambda item: item.weight)
    assert drawn.most_common(1)[0][0] == top.code
    # Binomial: the share is within 5 standard deviations of what the weights say.
    expected = mix.share(top.code)
    sigma = (expected * (1 - expected) / DRAWS) ** 0.5
    assert abs(drawn[top.code] / DRAWS - expected) < 5 * sigma


def test_a_kiosk_transaction_names_a_self_service_item_of_its_department() -> None:
    offered = {(item.department, item.code) for item in self_service_items().items}
    visits = VisitGenerator("kiosk-1", DeviceKind.KIOSK, random.Random(5))
    transactions = [
        record for _ in range(200) for record in visits.visit() if isinstance(record, Transaction)
    ]
    assert transactions
    assert {(t.department, t.item_code) for t in transactions} <= offered


def test_an_empty_mix_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        ItemMix(())


def test_one_item_is_always_drawn() -> None:
    only = ServiceItem("rs", "RS-1", "one", 1.0, self_service=True)
    assert ItemMix((only,)).pick(random.Random(0)) is only
