"""The service items (事项) simulated citizens come for, and how often: ``data/catalog/items.json``.

A few items carry most of a hall's handled cases (social-security and medical-insurance
statements, household register copies), a long tail the rest, as in any 事项清单. Windows handle
every item; kiosks and station PCs only the self-service ones. The data is illustrative (its
``note`` says so): departments the seeds name, made-up codes and weights.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True, slots=True)
class ServiceItem:
    department: str
    code: str
    name: str
    weight: float
    self_service: bool


@dataclass(frozen=True)
class ItemMix:
    """Items with their weights, drawn by ``pick`` (one ``rng.random()`` call per draw)."""

    items: tuple[ServiceItem, ...]

    def __post_init__(self) -> None:
        if not self.items:
            msg = "an item mix needs at least one item"
            raise ValueError(msg)

    @functools.cached_property
    def _cumulative(self) -> list[float]:
        total = 0.0
        cumulative = []
        for item in self.items:
            total += item.weight
            cumulative.append(total)
        return cumulative

    def pick(self, rng: random.Random) -> ServiceItem:
        return rng.choices(self.items, cum_weights=self._cumulative)[0]

    def share(self, code: str) -> float:
        """The item's expected share of draws."""
        return sum(i.weight for i in self.items if i.code == code) / self._cumulative[-1]


@functools.cache
def _data() -> dict[str, Any]:
    source = resources.files(__package__).joinpath("data", "catalog", "items.json")
    data: dict[str, Any] = json.loads(source.read_text())
    return data


def departments() -> list[dict[str, str]]:
    """The items' departments as inventory rows (code, name).

    The demo registers them, so that statistics and the transactions metric name them.
    """
    return [{"code": d["code"], "name": d["name"]} for d in _data()["departments"]]


@functools.cache
def load_items() -> tuple[ServiceItem, ...]:
    known = {d["code"] for d in _data()["departments"]}
    items = tuple(ServiceItem(**item) for item in _data()["items"])
    for item in items:
        if item.department not in known or item.weight <= 0:
            msg = f"items.json: item {item.code} has an unknown department or no weight"
            raise ValueError(msg)
    return items


@functools.cache
def window_items() -> ItemMix:
    """What citizens bring to a hall's windows: every item."""
    return ItemMix(load_items())


@functools.cache
def self_service_items() -> ItemMix:
    """What citizens do at a kiosk or a station PC themselves."""
    return ItemMix(tuple(i for i in load_items() if i.self_service))
