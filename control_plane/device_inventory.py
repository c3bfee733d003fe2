"""A terminal's inventory (agent, peripherals) as its health says, and what changed. Pure.

The ingest writes a device's row when its state changes (``registry.save_states``); the
inventory rows (``db/inventory_models.py``) are then brought in line with the new state, and
written only where they differ from the state stored before: most heartbeats change a reading
(CPU, memory), not what the terminal is made of.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.protocol import Heartbeat

# Column sizes of db/inventory_models.py: longer text from the wire is cut to fit.
NAME_MAX = 64
KIND_MAX = 32
MODEL_MAX = 64
FIRMWARE_MAX = 64
STATUS_MAX = 16
REASON_MAX = 64
AGENT_VERSION_MAX = 64
OS_MAX = 128
HARDWARE_MODEL_MAX = 64

NEEDS_ATTENTION = frozenset({"fault", "degraded", "absent"})
"""Peripheral statuses that ``?fault=`` finds: broken, about to be, or missing."""


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What runs a terminal."""

    agent_version: str = ""
    os: str = ""
    hardware_model: str = ""


@dataclass(frozen=True, slots=True)
class Peripheral:
    """One peripheral's row: what it is and how it is."""

    name: str
    kind: str
    status: str
    reason: str = ""
    model: str = ""
    firmware: str = ""


@dataclass(frozen=True, slots=True)
class Inventory:
    """A terminal's agent (None: never heard from) and its peripherals by name."""

    agent: AgentFacts | None = None
    peripherals: Mapping[str, Peripheral] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InventoryChange:
    """What to write to bring the stored inventory to the new one."""

    agent: AgentFacts | None = None
    """The agent row to write; None when it is unchanged."""
    upserts: tuple[Peripheral, ...] = ()
    """Peripherals new or changed in any way (a changed status starts its clock again: the
    write compares it with the stored one, ``device_rows.upsert_peripherals``)."""
    removed: tuple[str, ...] = ()
    """Names no longer reported."""

    def __bool__(self) -> bool:
        return self.agent is not None or bool(self.upserts) or bool(self.removed)


def inventory_of(agent_version: str, health: Heartbeat | None, *, heard: bool) -> Inventory:
    """The inventory a device's state implies; ``heard``: whether it was ever heard from."""
    reported = health or Heartbeat()
    agent = None
    if heard:
        agent = AgentFacts(
            agent_version=agent_version[:AGENT_VERSION_MAX],
            os=(reported.os or "")[:OS_MAX],
            hardware_model=(reported.hardware_model or "")[:HARDWARE_MODEL_MAX],
        )
    peripherals: dict[str, Peripheral] = {}
    for status in reported.peripherals or ():
        name = status.name[:NAME_MAX]
        # A name is unique on a device (the protocol says so); the last of a repeated one wins.
        peripherals[name] = Peripheral(
            name=name,
            kind=status.kind.value[:KIND_MAX],
            status=status.state.value[:STATUS_MAX],
            reason=status.reason[:REASON_MAX],
            model=status.model[:MODEL_MAX],
            firmware=status.firmware[:FIRMWARE_MAX],
        )
    return Inventory(agent, peripherals)


def changes(before: Inventory, after: Inventory) -> InventoryChange:
    """What differs from ``before`` to ``after``; an agent once heard of is never removed."""
    agent = after.agent if after.agent is not None and after.agent != before.agent else None
    upserts = tuple(
        peripheral
        for name, peripheral in sorted(after.peripherals.items())
        if before.peripherals.get(name) != peripheral
    )
    removed = tuple(sorted(set(before.peripherals) - set(after.peripherals)))
    return InventoryChange(agent, upserts, removed)
