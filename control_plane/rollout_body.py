"""A new rollout's JSON body, checked field by field into a ``RolloutRequest``. Pure.

Two kinds of refusal, each naming the field: ``BodyShapeError`` for JSON of the wrong shape (an
unknown field, a string where a list goes: HTTP 400, as every body of the API), and
``RolloutSpecError`` with ``field`` for values a rollout cannot take (waves that do not increase,
a threshold above 100 %: HTTP 422 with the reason). Percentages are given as numbers or strings
of per cent (``"0.5"``, ``10``) and kept as exact fractions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import TypeGuard

from edge.content.manifest import NAME_PATTERN
from edge.protocol import DeviceKind
from edge.protocol.common import ID_PATTERN

from . import jurisdiction
from .device_labels import MAX_LABELS, LabelError, check_key, check_value
from .rollout_create import MAX_DEVICES, RolloutRequest, Targeting
from .rollouts import InstallPolicy, RolloutSpecError, percent
from .rollouts.spec import DEFAULT_DEVICE_TIMEOUT, DEFAULT_MIN_FINISHED
from .rollouts.waves import DEFAULT_WAVES, WHOLE, check_shares

FIELDS = frozenset(
    {
        "package",
        "target",
        "waves",
        "success_threshold",
        "failure_threshold",
        "min_finished",
        "device_timeout_s",
        "install_policy",
        "peripheral",
        "id",
    }
)
TARGET_FIELDS = frozenset({"node", "kinds", "labels", "device_ids"})
PACKAGE_FIELDS = frozenset({"name", "version", "kind"})
PACKAGE_KINDS = frozenset({"content", "catalog", "firmware"})
MAX_WAVES = 20
MAX_TIMEOUT_S = 30 * 24 * 3600
"""A month: a device silent for longer is gone, not slow."""
SHA256 = re.compile(r"[0-9a-f]{64}")
ROLLOUT_ID = re.compile(ID_PATTERN)
PERIPHERAL = re.compile(ID_PATTERN)
KINDS = frozenset(kind.value for kind in DeviceKind if kind is not DeviceKind.UNKNOWN)

SPEC_FIELDS: Mapping[str, str] = {
    "no_devices": "target",
    "too_many_devices": "target",
    "unknown_device": "target.device_ids",
    "duplicate_device": "target.device_ids",
    "previous_is_target": "package",
    "min_finished_out_of_range": "min_finished",
    "timeout_out_of_range": "device_timeout_s",
    "no_waves": "waves",
    "waves_not_increasing": "waves",
    "last_wave_not_whole": "waves",
}
"""The field a planner's refusal (``RolloutSpecError.reason``) is about, when it is one field."""


class BodyShapeError(ValueError):
    """JSON of the wrong shape for a rollout; ``field`` names where (None: the whole body)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class PackageRef:
    """The package a rollout sends: by its file's sha256, or by name and version (and kind)."""

    sha256: str | None = None
    name: str = ""
    version: int = 0
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class RolloutBody:
    """A checked body: the package to look up, and the request once its sha256 is known."""

    package: PackageRef
    request: RolloutRequest


class SpecFieldError(RolloutSpecError):
    """A value of one field a rollout cannot take; ``reason`` says why in one word."""

    def __init__(self, message: str, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {message}", reason=reason)
        self.field = field


def field_of(error: RolloutSpecError) -> str | None:
    """The field a spec refusal is about: its own, else the one its reason is about."""
    if isinstance(error, SpecFieldError):
        return error.field
    return SPEC_FIELDS.get(error.reason)


def parse(body: Mapping[str, object]) -> RolloutBody:
    """The rollout ``body`` asks for, with ``package_sha256`` empty until the package is found."""
    if unknown := sorted(set(body) - FIELDS):
        msg = f"unknown field(s) {', '.join(unknown)}; a rollout takes {', '.join(sorted(FIELDS))}"
        raise BodyShapeError(msg, field=unknown[0])
    for required in ("package", "target"):
        if required not in body:
            msg = "required"
            raise BodyShapeError(msg, field=required)
    request = RolloutRequest(
        package_sha256="",
        targeting=_targeting(body["target"]),
        rollout_id=_rollout_id(body.get("id")),
        waves=_waves(body.get("waves")),
        **_thresholds(body),
        min_finished=_min_finished(body.get("min_finished")),
        device_timeout=_timeout(body.get("device_timeout_s")),
        install_policy=_policy(body.get("install_policy")),
        peripheral=_peripheral(body.get("peripheral")),
    )
    return RolloutBody(_package(body["package"]), request)


def _package(value: object) -> PackageRef:
    if isinstance(value, str):
        if not SHA256.fullmatch(value):
            msg = "a sha256 must be 64 lowercase hex digits"
            raise BodyShapeError(msg, field="package")
        return PackageRef(sha256=value)
    if not isinstance(value, dict):
        msg = 'a sha256, or {"name": NAME, "version": N}'
        raise BodyShapeError(msg, field="package")
    if unknown := sorted(set(value) - PACKAGE_FIELDS):
        msg = "unknown field; a package takes name, version, kind"
        raise BodyShapeError(msg, field=f"package.{unknown[0]}")
    name, version, kind = value.get("name"), value.get("version"), value.get("kind")
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        msg = f"a package name ({NAME_PATTERN}) is required"
        raise BodyShapeError(msg, field="package.name")
    if not _is_int(version) or not 1 <= version < 2**63:
        msg = "a version (a whole number from 1) is required"
        raise BodyShapeError(msg, field="package.version")
    if kind is not None and kind not in PACKAGE_KINDS:
        msg = f"one of {', '.join(sorted(PACKAGE_KINDS))}"
        raise BodyShapeError(msg, field="package.kind")
    return PackageRef(name=name, version=version, kind=kind)


def _targeting(value: object) -> Targeting:
    if not isinstance(value, dict):
        msg = "an object of node, kinds, labels, device_ids ({}: every device)"
        raise BodyShapeError(msg, field="target")
    if unknown := sorted(set(value) - TARGET_FIELDS):
        msg = "unknown field; a target takes node, kinds, labels, device_ids"
        raise BodyShapeError(msg, field=f"target.{unknown[0]}")
    node = _node(value.get("node"))
    kinds = _strings(value.get("kinds", []), "target.kinds")
    if bad := sorted(set(kinds) - KINDS):
        msg = f"{bad[0]!r} is not one of {sorted(KINDS)}"
        raise SpecFieldError(msg, field="target.kinds", reason="unknown_kind")
    device_ids = _device_ids(value.get("device_ids", []))
    labels = _labels(value.get("labels", {}))
    if device_ids and (node is not None or kinds or labels):
        msg = "either device_ids, or node, kinds and labels: not both"
        raise SpecFieldError(msg, field="target.device_ids", reason="mixed_targeting")
    return Targeting(
        node=node,
        kinds=tuple(sorted(set(kinds))),
        labels=labels,
        device_ids=tuple(sorted(set(device_ids))),
    )


def _node(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        msg = "a 行政区划 code"
        raise BodyShapeError(msg, field="target.node")
    try:
        return jurisdiction.check_code(value)
    except jurisdiction.JurisdictionError as exc:
        raise SpecFieldError(str(exc), field="target.node", reason="unknown_node") from None


def _device_ids(value: object) -> list[str]:
    device_ids = _strings(value, "target.device_ids")
    if len(device_ids) > MAX_DEVICES:
        msg = f"more than {MAX_DEVICES}"
        raise SpecFieldError(msg, field="target.device_ids", reason="too_many_devices")
    if bad := [d for d in device_ids if not ROLLOUT_ID.fullmatch(d)]:
        msg = f"{bad[0]!r} is no device id"
        raise SpecFieldError(msg, field="target.device_ids", reason="unknown_device")
    return device_ids


def _strings(value: object, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        msg = "a list of strings"
        raise BodyShapeError(msg, field=field)
    return value


def _labels(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        msg = 'an object of labels: {"key": "value"}'
        raise BodyShapeError(msg, field="target.labels")
    if len(value) > MAX_LABELS:
        msg = f"at most {MAX_LABELS}"
        raise SpecFieldError(msg, field="target.labels", reason="too_many_labels")
    try:
        return tuple(sorted((check_key(k), check_value(k, v)) for k, v in value.items()))
    except LabelError as exc:
        raise SpecFieldError(str(exc), field="target.labels", reason="invalid_label") from None


def _share(value: object, field: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = "a number of per cent, or one as a string"
        raise BodyShapeError(msg, field=field)
    try:
        # str: percent() reads a float by its shortest repr, so 0.1 is exactly 1/10.
        share = percent(str(value))
    except RolloutSpecError as exc:
        raise SpecFieldError(str(exc), field=field, reason=exc.reason) from None
    if not 0 <= share <= WHOLE:
        msg = f"must be between 0 and 100 per cent, not {value}"
        raise SpecFieldError(msg, field=field, reason="out_of_range")
    return share


def _waves(value: object) -> tuple[Fraction, ...]:
    if value is None:
        return DEFAULT_WAVES
    if not isinstance(value, list):
        msg = 'a list of cumulative per cents: ["1", "10", "50", "100"]'
        raise BodyShapeError(msg, field="waves")
    if len(value) > MAX_WAVES:
        msg = f"at most {MAX_WAVES} waves"
        raise SpecFieldError(msg, field="waves", reason="too_many_waves")
    shares = [_share(item, "waves") for item in value]
    try:
        return check_shares(shares)
    except RolloutSpecError as exc:
        raise SpecFieldError(str(exc), field="waves", reason=exc.reason) from None


def _thresholds(body: Mapping[str, object]) -> dict[str, Fraction]:
    return {
        name: _share(body[name], name)
        for name in ("success_threshold", "failure_threshold")
        if body.get(name) is not None
    }


def _min_finished(value: object) -> int:
    if value is None:
        return DEFAULT_MIN_FINISHED
    if not _is_int(value):
        msg = "a whole number"
        raise BodyShapeError(msg, field="min_finished")
    if value < 1:
        msg = f"at least 1, not {value}"
        raise SpecFieldError(msg, field="min_finished", reason="min_finished_out_of_range")
    return value


def _timeout(value: object) -> timedelta:
    if value is None:
        return DEFAULT_DEVICE_TIMEOUT
    if not _is_int(value):
        msg = "a whole number of seconds"
        raise BodyShapeError(msg, field="device_timeout_s")
    if not 1 <= value <= MAX_TIMEOUT_S:
        msg = f"from 1 to {MAX_TIMEOUT_S} seconds, not {value}"
        raise SpecFieldError(msg, field="device_timeout_s", reason="timeout_out_of_range")
    return timedelta(seconds=value)


def _policy(value: object) -> InstallPolicy:
    if value is None:
        return InstallPolicy.OUTSIDE_OPENING_HOURS
    allowed = sorted(policy.value for policy in InstallPolicy)
    if not isinstance(value, str) or value not in allowed:
        msg = f"one of {', '.join(allowed)}"
        raise BodyShapeError(msg, field="install_policy")
    return InstallPolicy(value)


def _peripheral(value: object) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not PERIPHERAL.fullmatch(value):
        msg = "a peripheral's name on the terminal, such as pad0"
        raise BodyShapeError(msg, field="peripheral")
    return value


def _rollout_id(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not ROLLOUT_ID.fullmatch(value):
        msg = f"a rollout id ({ID_PATTERN})"
        raise BodyShapeError(msg, field="id")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
