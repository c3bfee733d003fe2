"""Layers of desired config: their scopes, whom they reach and which wins. Pure.

A layer sets some config keys for everything in its scope. Precedence, lowest first; a higher
layer wins key by key:

1. global;
2. a jurisdiction node and its whole subtree, the deeper node winning: province < city <
   district < town < village (a device only ever matches the nodes on its own path, so depth
   orders them);
3. label selectors (``key=value`` pairs, all must match), by their ``priority``;
4. the device itself.

Within one step, ``priority`` (higher wins) and then the layer id (later in sort order wins)
break ties, so the merge never depends on the order in which layers are listed.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from control_plane import jurisdiction
from control_plane.device_labels import LabelError, check_key, check_value
from edge.config_keys import ConfigValue, ConfigValueError, KeyProblem, validate
from edge.protocol.common import ID_PATTERN
from edge.protocol.presence import DeviceKind

LAYER_ID = re.compile(ID_PATTERN)
MAX_PRIORITY = 9_999
"""Priorities run from 0 to this; plenty to slot a new label layer between two others."""


class TwinErrorReason(enum.StrEnum):
    """Why a layer or a merge was refused; the closed set behind ``TwinError.reason``."""

    BAD_ID = "bad_id"
    BAD_SCOPE = "bad_scope"
    BAD_PRIORITY = "bad_priority"
    BAD_REVISION = "bad_revision"
    BAD_VALUES = "bad_values"
    DUPLICATE_LAYER = "duplicate_layer"


class TwinError(ValueError):
    """A refused layer or merge; ``problems`` lists each refused key for ``bad_values``."""

    def __init__(
        self, reason: TwinErrorReason, message: str, problems: tuple[KeyProblem, ...] = ()
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.problems = problems


class LayerError(TwinError):
    """A layer that cannot be made: a bad id, scope, priority, revision or value."""


class Tier(enum.IntEnum):
    """The precedence steps of the module docstring, lowest first."""

    GLOBAL = 0
    NODE = 1
    LABELS = 2
    DEVICE = 3


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What the merge needs to know about one device."""

    device_id: str
    kind: DeviceKind
    node_path: tuple[str, ...]
    """The codes from the root to the device's node, as ``jurisdiction.codes`` gives them."""
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class GlobalScope:
    tier: ClassVar[Tier] = Tier.GLOBAL


@dataclass(frozen=True, slots=True)
class NodeScope:
    """A jurisdiction node and everything below it."""

    path: tuple[str, ...]
    """Codes from the root down, each extending its parent's: ``("44", "4401", "440117")``."""
    tier: ClassVar[Tier] = Tier.NODE

    def __post_init__(self) -> None:
        if not self.path:
            msg = "a node scope needs the node's path; the whole tree is the global scope"
            raise LayerError(TwinErrorReason.BAD_SCOPE, msg)
        try:
            for depth, code in enumerate(self.path):
                jurisdiction.check_code(code)
                if depth:
                    jurisdiction.check_child_code(self.path[depth - 1], code)
        except jurisdiction.JurisdictionError as exc:
            raise LayerError(TwinErrorReason.BAD_SCOPE, str(exc)) from None

    @classmethod
    def from_path(cls, path: str) -> NodeScope:
        """The scope of the node at a materialized path such as ``/44/4401/440117/``."""
        return cls(tuple(jurisdiction.codes(path)))


@dataclass(frozen=True, slots=True)
class LabelScope:
    """Devices carrying every one of these labels."""

    selector: tuple[tuple[str, str], ...]
    """``(key, value)`` pairs, sorted by key; ``LabelScope.of`` builds it from a mapping."""
    tier: ClassVar[Tier] = Tier.LABELS

    def __post_init__(self) -> None:
        if not self.selector:
            msg = "a label scope needs at least one key=value; the whole tree is the global scope"
            raise LayerError(TwinErrorReason.BAD_SCOPE, msg)
        keys = [key for key, _ in self.selector]
        if len(set(keys)) != len(keys):
            msg = f"a label scope names each key once: {', '.join(keys)}"
            raise LayerError(TwinErrorReason.BAD_SCOPE, msg)
        try:
            for key, value in self.selector:
                check_value(check_key(key), value)
        except LabelError as exc:
            raise LayerError(TwinErrorReason.BAD_SCOPE, str(exc)) from None
        # Equal selectors compare equal whatever order they were written in.
        object.__setattr__(self, "selector", tuple(sorted(self.selector)))

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> LabelScope:
        return cls(tuple(labels.items()))


@dataclass(frozen=True, slots=True)
class DeviceScope:
    device_id: str
    tier: ClassVar[Tier] = Tier.DEVICE

    def __post_init__(self) -> None:
        if not LAYER_ID.fullmatch(self.device_id):
            msg = f"{self.device_id!r} is not a device id"
            raise LayerError(TwinErrorReason.BAD_SCOPE, msg)


Scope = GlobalScope | NodeScope | LabelScope | DeviceScope


@dataclass(frozen=True, slots=True)
class Layer:
    """Values for every device in ``scope``; checked on creation, ``values`` sorted and read-only.

    ``revision`` is the global revision counter's value when the layer was last created or
    changed; the store keeps it, the merge only carries it.
    """

    id: str
    scope: Scope
    values: Mapping[str, ConfigValue]
    priority: int = 0
    revision: int = 0

    def __post_init__(self) -> None:
        if not LAYER_ID.fullmatch(self.id):
            msg = f"{self.id!r} is not a layer id (letters, digits, '_.-', up to 64)"
            raise LayerError(TwinErrorReason.BAD_ID, msg)
        if isinstance(self.priority, bool) or not 0 <= self.priority <= MAX_PRIORITY:
            msg = f"layer {self.id}: priority {self.priority!r} is not 0 to {MAX_PRIORITY}"
            raise LayerError(TwinErrorReason.BAD_PRIORITY, msg)
        if isinstance(self.revision, bool) or self.revision < 0:
            msg = f"layer {self.id}: revision {self.revision!r} is negative"
            raise LayerError(TwinErrorReason.BAD_REVISION, msg)
        try:
            values = validate(self.values)
        except ConfigValueError as exc:
            msg = f"layer {self.id}: {exc}"
            raise LayerError(TwinErrorReason.BAD_VALUES, msg, exc.problems) from None
        object.__setattr__(self, "values", MappingProxyType(values))


def matches(scope: Scope, device: DeviceContext) -> bool:
    """Whether ``scope`` reaches ``device``."""
    match scope:
        case GlobalScope():
            return True
        case NodeScope(path=path):
            return device.node_path[: len(path)] == path
        case LabelScope(selector=selector):
            return all(device.labels.get(key) == value for key, value in selector)
        case DeviceScope(device_id=device_id):
            return device.device_id == device_id


def precedence(layer: Layer) -> tuple[int, int, int, str]:
    """A sort key: of two layers setting a key for a device, the greater one wins."""
    depth = len(layer.scope.path) if isinstance(layer.scope, NodeScope) else 0
    return (layer.scope.tier, depth, layer.priority, layer.id)
