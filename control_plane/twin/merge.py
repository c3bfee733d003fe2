"""The merge of layers into one device's desired config, its version, and per-layer counts. Pure.

Desired values hold only keys some layer sets and the device's kind has: defaults are left
out. The agent ships the same registry (``edge.config_keys``) and fills them in
(``with_defaults``), so removing the last layer that sets a key returns it to its default, and
a newer agent's better default takes effect without anyone editing a layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from edge.config_keys import ConfigValue, applies_to
from edge.protocol.config import ApplyStatus

from .layers import DeviceContext, Layer, TwinError, TwinErrorReason, matches, precedence

_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Desired:
    """A device's merged values, and for each key the id of the layer it comes from."""

    values: Mapping[str, ConfigValue]
    sources: Mapping[str, str]


def desired_for(device: DeviceContext, layers: Iterable[Layer]) -> Desired:
    """The merge for ``device``: key by key, the highest layer reaching it (see ``layers``)."""
    reaching = [layer for layer in _unique(layers) if matches(layer.scope, device)]
    values: dict[str, ConfigValue] = {}
    sources: dict[str, str] = {}
    for layer in sorted(reaching, key=precedence):
        for key, value in layer.values.items():
            if applies_to(key, device.kind):
                values[key] = value
                sources[key] = layer.id
    return Desired(_frozen(values), _frozen(sources))


def _unique(layers: Iterable[Layer]) -> list[Layer]:
    listed = list(layers)
    ids = Counter(layer.id for layer in listed)
    if repeated := sorted(layer_id for layer_id, n in ids.items() if n > 1):
        msg = f"layer ids must be unique; repeated: {', '.join(repeated)}"
        raise TwinError(TwinErrorReason.DUPLICATE_LAYER, msg)
    return listed


def affected_devices(layer: Layer, devices: Iterable[DeviceContext]) -> tuple[str, ...]:
    """Ids of the devices (in the order given) whose merge ``layer`` takes part in.

    That is every device the scope reaches whose kind has one of the layer's keys. For a
    change, ask for the old and the new layer and take both: a device the old scope reached
    and the new one does not must fall back too.
    """
    return tuple(
        device.device_id
        for device in devices
        if matches(layer.scope, device) and any(applies_to(k, device.kind) for k in layer.values)
    )


def next_version(
    last_version: int,
    last_values: Mapping[str, object] | None,
    values: Mapping[str, object],
    revision: int,
) -> int:
    """The version to issue ``values`` under, after ``last_values`` went out as ``last_version``.

    Unchanged values keep their version. Otherwise the version is the global revision counter,
    which only goes up; a caller that did not bump the counter still gets ``last_version + 1``,
    because an agent takes a version no newer than its own for one it has already applied.
    ``last_values`` is None when nothing was ever issued, which always issues a version.
    """
    if last_version < 0 or revision < 0:
        msg = f"versions and revisions are not negative: {last_version}, {revision}"
        raise TwinError(TwinErrorReason.BAD_REVISION, msg)
    if last_values is not None and _comparable(last_values) == _comparable(values):
        return last_version
    return max(revision, last_version + 1)


def _comparable(values: Mapping[str, object]) -> dict[str, object]:
    # Stored values come back from JSON with lists where the registry made tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


@dataclass(frozen=True, slots=True)
class Issued:
    """What a device was last sent, and the version since which each layer's part is unchanged."""

    version: int
    values: Mapping[str, ConfigValue]
    sources: Mapping[str, str]
    layer_since: Mapping[str, int]
    """Layer id → the first version carrying that layer's values as they are now."""


def issue(last: Issued | None, desired: Desired, revision: int) -> Issued:
    """What to send the device now, after ``last`` (None: nothing sent yet)."""
    version = next_version(
        last.version if last else 0, last.values if last else None, desired.values, revision
    )
    since: dict[str, int] = {}
    for layer_id in sorted(set(desired.sources.values())):
        if (
            last
            and layer_id in last.layer_since
            and _part(last, layer_id) == _part(desired, layer_id)
        ):
            since[layer_id] = last.layer_since[layer_id]
        else:
            since[layer_id] = version
    return Issued(version, desired.values, desired.sources, _frozen(since))


def _part(state: Issued | Desired, layer_id: str) -> dict[str, object]:
    """The values ``layer_id`` contributes to ``state``."""
    own = {key: state.values[key] for key, source in state.sources.items() if source == layer_id}
    return _comparable(own)


@dataclass(frozen=True, slots=True)
class DeviceConfigState:
    """One device's twin: what it was sent and what it last reported (``ReportedConfig``)."""

    issued: Issued
    reported_version: int
    status: ApplyStatus


@dataclass(frozen=True, slots=True)
class LayerCounts:
    targeted: int = 0
    """Devices whose issued config takes at least one value from the layer."""
    applied: int = 0
    """Of those, devices that applied a version carrying the layer's current part."""
    failed: int = 0
    """Of those, devices that failed to apply such a version."""

    @property
    def pending(self) -> int:
        return self.targeted - self.applied - self.failed


def layer_counts(devices: Iterable[DeviceConfigState]) -> dict[str, LayerCounts]:
    """Targeted, applied and failed devices per layer id, sorted by id.

    A report counts for a layer when its version is at least the layer's ``layer_since`` on
    that device: versions only go up, so that version carries the layer's current values. A
    failure of an older version is pending, as is any other status.
    """
    tallies: dict[str, Counter[str]] = {}
    for device in devices:
        for layer_id, since in device.issued.layer_since.items():
            tally = tallies.setdefault(layer_id, Counter())
            tally["targeted"] += 1
            if device.reported_version >= since:
                if device.status is ApplyStatus.APPLIED:
                    tally["applied"] += 1
                elif device.status is ApplyStatus.FAILED:
                    tally["failed"] += 1
    return {
        layer_id: LayerCounts(tally["targeted"], tally["applied"], tally["failed"])
        for layer_id, tally in sorted(tallies.items())
    }


def _frozen(mapping: dict[str, _V]) -> Mapping[str, _V]:
    return MappingProxyType(dict(sorted(mapping.items())))
