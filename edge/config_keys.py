"""The typed config keys of the device twin: the registry, validation and its document. Pure.

The control plane validates every layer's values with ``validate`` before accepting them and the
agent validates what arrives in ``DesiredConfig.values`` with the same registry, so both ends
agree on every key's type, bounds and default. ``docs/config-keys.md`` is ``render_markdown()``.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from edge.catalog.items import MAX_CODE_CHARS
from edge.protocol.presence import DeviceKind

ConfigValue = int | float | bool | str | tuple[str, ...]
"""A validated value; a list of text is normalised to a tuple."""

SHOWN_CHARS = 40
"""A refused value is quoted in the message up to this many characters."""

LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
"""Unicode categories refused in text: controls (newline, tab …), line and paragraph separators."""

_Number = TypeVar("_Number", int, float)
_T = TypeVar("_T")


class KeyType(StrEnum):
    INT = "integer"
    FLOAT = "number"
    BOOL = "boolean"
    STR = "text"
    ENUM = "one of"
    STR_LIST = "list of text"


class Apply(StrEnum):
    """How the agent puts a new value into effect."""

    LIVE = "live"
    """At once, without interrupting a citizen's session."""
    RESTART = "restart"
    """The agent (and the kiosk application) restarts, outside a citizen session."""


class ProblemReason(StrEnum):
    """Why one value was refused; the closed set behind ``KeyProblem.reason``."""

    UNKNOWN_KEY = "unknown_key"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_A_CHOICE = "not_a_choice"
    TOO_LONG = "too_long"
    TOO_MANY = "too_many"
    BAD_TEXT = "bad_text"


@dataclass(frozen=True, slots=True)
class KeyProblem:
    key: str
    reason: ProblemReason
    message: str


class ConfigValueError(ValueError):
    """Config values refused; ``problems`` names every refused key and why, sorted by key."""

    reason = "invalid_config"

    def __init__(self, problems: tuple[KeyProblem, ...]) -> None:
        super().__init__("; ".join(f"{p.key}: {p.message}" for p in problems))
        self.problems = problems


class _RefusedError(Exception):
    """Inside a key's checks only; ``ConfigKey.normalised`` turns it into ConfigValueError."""

    def __init__(self, reason: ProblemReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigKey:
    """One key: its type and bounds, default, the kinds it applies to and how it is applied."""

    name: str
    type: KeyType
    default: ConfigValue
    kinds: frozenset[DeviceKind]
    description: str
    apply: Apply = Apply.LIVE
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int = 0
    """Characters in a text, or in each text of a list."""
    max_items: int = 0

    def normalised(self, value: object) -> ConfigValue:
        """The value in its one form (a list as a tuple, 1 as 1.0 for a number).

        Raises ``ConfigValueError`` with this key's one problem.
        """
        try:
            return self._normalise(value)
        except _RefusedError as refused:
            problem = KeyProblem(self.name, refused.reason, refused.message)
            raise ConfigValueError((problem,)) from None

    def _normalise(self, value: object) -> ConfigValue:
        match self.type:
            case KeyType.BOOL:
                return _typed(value, bool, "true or false")
            case KeyType.INT:
                return self._in_range(_typed(value, int, "an integer"))
            case KeyType.FLOAT:
                number = float(_typed(value, (int, float), "a number"))  # 1 is a number too
                return self._in_range(number)
            case KeyType.STR:
                return self._text(_typed(value, str, "text"))
            case KeyType.ENUM:
                choice = _typed(value, str, "text")
                if choice not in self.choices:
                    msg = f"{_shown(choice)} is not one of {', '.join(self.choices)}"
                    raise _RefusedError(ProblemReason.NOT_A_CHOICE, msg)
                return choice
            case KeyType.STR_LIST:
                return self._texts(_typed(value, (list, tuple), "a list of text"))

    def _in_range(self, number: _Number) -> _Number:
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if not low <= number <= high:  # NaN fails here too
            msg = f"{_shown(number)} is outside {allowed(self)}"
            raise _RefusedError(ProblemReason.OUT_OF_RANGE, msg)
        return number

    def _text(self, text: str) -> str:
        if len(text) > self.max_length:
            msg = f"{len(text)} characters, at most {self.max_length}"
            raise _RefusedError(ProblemReason.TOO_LONG, msg)
        # Not str.isprintable: it refuses the ideographic space (U+3000) of Chinese text.
        if any(unicodedata.category(char) in LINE_BREAKING for char in text):
            msg = "control characters (a newline, a tab …) are not allowed"
            raise _RefusedError(ProblemReason.BAD_TEXT, msg)
        return text

    def _texts(self, items: list[object] | tuple[object, ...]) -> tuple[str, ...]:
        if len(items) > self.max_items:
            msg = f"{len(items)} items, at most {self.max_items}"
            raise _RefusedError(ProblemReason.TOO_MANY, msg)
        return tuple(self._text(_typed(item, str, "a list of text")) for item in items)


def _typed(value: object, expected: type[_T] | tuple[type, ...], wanted: str) -> _T:
    # bool is a subclass of int: True must not pass for 1, nor 1 for True.
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        msg = f"{_shown(value)} is not {wanted}"
        raise _RefusedError(ProblemReason.WRONG_TYPE, msg)
    return value  # type: ignore[return-value]


def _shown(value: object) -> str:
    """A value as the JSON it most likely came from, cut short: messages go back to the sender."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def validate(values: Mapping[str, object]) -> dict[str, ConfigValue]:
    """The values normalised and sorted by key, or ``ConfigValueError`` naming every problem."""
    result: dict[str, ConfigValue] = {}
    problems: list[KeyProblem] = []
    for name, value in values.items():
        key = KEYS.get(name)
        if key is None:
            problems.append(KeyProblem(name, ProblemReason.UNKNOWN_KEY, "no such key"))
            continue
        try:
            result[name] = key.normalised(value)
        except ConfigValueError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigValueError(tuple(sorted(problems, key=lambda p: p.key)))
    return dict(sorted(result.items()))


def applies_to(name: str, kind: DeviceKind) -> bool:
    """Whether the key ``name`` exists and means something on a terminal of ``kind``."""
    key = KEYS.get(name)
    return key is not None and kind in key.kinds


def with_defaults(values: Mapping[str, ConfigValue], kind: DeviceKind) -> dict[str, ConfigValue]:
    """What a terminal of ``kind`` runs with: every default of its keys, overlaid by ``values``."""
    defaults = {key.name: key.default for key in KEYS.values() if kind in key.kinds}
    return defaults | {name: v for name, v in values.items() if name in defaults}


def allowed(key: ConfigKey) -> str:
    """The key's bounds, choices or lengths in words, as the document and messages show them."""
    match key.type:
        case KeyType.INT | KeyType.FLOAT:
            return f"{_number(key.minimum)} to {_number(key.maximum)}"
        case KeyType.ENUM:
            return ", ".join(key.choices)
        case KeyType.STR:
            return f"up to {key.max_length} characters"
        case KeyType.STR_LIST:
            return f"up to {key.max_items} items of up to {key.max_length} characters"
        case KeyType.BOOL:
            return "true, false"


def _number(bound: float | None) -> str:
    return "any" if bound is None else f"{bound:g}"


ALL_KINDS = frozenset(kind for kind in DeviceKind if kind is not DeviceKind.UNKNOWN)
# Terminals that show our screens to citizens; a review pad has its own small display.
SCREENS = frozenset({DeviceKind.KIOSK, DeviceKind.STATION_PC, DeviceKind.BOOTH})
# Terminals whose display and speaker the agent drives; a station PC's are the PC's own.
APPLIANCES = frozenset({DeviceKind.KIOSK, DeviceKind.REVIEW_PAD, DeviceKind.BOOTH})
LARGE_SCREENS = frozenset({DeviceKind.KIOSK, DeviceKind.BOOTH})
PRINTING = frozenset({DeviceKind.KIOSK, DeviceKind.STATION_PC})
PADS = frozenset({DeviceKind.REVIEW_PAD})
PERCENT = 100
OPENING_HOURS_CHARS = 120
HOME_ITEMS = 12
"""Items a kiosk's home screen shows at once (常用事项)."""

_INT, _FLOAT, _BOOL = KeyType.INT, KeyType.FLOAT, KeyType.BOOL
_STR, _ENUM, _LIST = KeyType.STR, KeyType.ENUM, KeyType.STR_LIST

# One key a paragraph, sorted by name (a test checks): a table reads better than the formatter's
# one argument a line.
_KEYS = (
    ConfigKey(name="agent.log_level", type=_ENUM, default="info", kinds=ALL_KINDS,
              choices=("debug", "info", "warning", "error"),
              description="How much the agent logs (日志级别); debug only to diagnose a terminal."),
    ConfigKey(name="audio.volume_pct", type=_INT, default=60, kinds=APPLIANCES,
              minimum=0, maximum=PERCENT,
              description="Loudness of voice prompts (语音提示), such as the pad's 请您评价."),
    ConfigKey(name="content.refresh_interval_min", type=_INT, default=60, kinds=SCREENS,
              minimum=5, maximum=24 * 60,
              description="Minutes between checks for new guide cards (明白卡), videos, notices."),
    ConfigKey(name="display.brightness_pct", type=_INT, default=80, kinds=APPLIANCES,
              minimum=10, maximum=PERCENT,
              description="Screen brightness; below 10 % a screen in a sunlit hall looks off."),
    ConfigKey(name="display.orientation", type=_ENUM, default="portrait", kinds=LARGE_SCREENS,
              choices=("portrait", "landscape"), apply=Apply.RESTART,
              description="Screen orientation; the kiosk application restarts to lay out again."),
    ConfigKey(name="help.button_target", type=_ENUM, default="window", kinds=SCREENS,
              choices=("window", "video", "hotline", "off"),
              description="What the 呼叫帮办 call-for-help button does: call the 帮办 window,"
                          " open remote video help (远程视频帮办), show the 12345 hotline, or"
                          " nothing."),
    ConfigKey(name="printer.receipt_enabled", type=_BOOL, default=True, kinds=PRINTING,
              description="Print a receipt (回执/凭条) after a completed service."),
    ConfigKey(name="review.comment_on_bad", type=_BOOL, default=True, kinds=PADS,
              description="Ask for the reason after a bad rating (差评: 不满意, 非常不满意)."),
    ConfigKey(name="review.prompt_timeout_s", type=_INT, default=60, kinds=PADS,
              minimum=10, maximum=600,
              description="Seconds the pad waits for a rating once the window triggers it"
                          " (好差评); then the case stays unrated."),
    ConfigKey(name="telemetry.full_snapshot_every", type=_INT, default=10, kinds=ALL_KINDS,
              minimum=1, maximum=120,
              description="Every Nth heartbeat carries the full health snapshot, the rest a diff."),
    ConfigKey(name="telemetry.heartbeat_interval_s", type=_INT, default=30, kinds=ALL_KINDS,
              minimum=10, maximum=3600,
              description="Seconds between heartbeats; presence expires after a few missed ones."),
    ConfigKey(name="ui.font_scale", type=_FLOAT, default=1.0, kinds=SCREENS,
              minimum=1.0, maximum=2.0,
              description="Text size factor; 1.5 and above is the elder-friendly mode (适老化)."),
    ConfigKey(name="ui.home_items", type=_LIST, default=(), kinds=LARGE_SCREENS,
              max_items=HOME_ITEMS, max_length=MAX_CODE_CHARS,
              description="Service-item codes (实施编码) pinned to the home screen (常用事项),"
                          " in order."),
    ConfigKey(name="ui.idle_timeout_s", type=_INT, default=120, kinds=SCREENS,
              minimum=15, maximum=1800,
              description="Seconds without a touch before the session is cleared and the home"
                          " screen returns (无操作退出), so no citizen sees the last one's data."),
    ConfigKey(name="ui.language", type=_ENUM, default="zh-CN", kinds=ALL_KINDS,
              choices=("zh-CN", "zh-HK", "en"),
              description="Language of the screens: 简体中文, 繁體中文, English."),
    ConfigKey(name="ui.opening_hours_text", type=_STR, default="", kinds=SCREENS,
              max_length=OPENING_HOURS_CHARS,
              description="Opening hours shown on the home screen (办公时间); empty: the site's."),
)  # fmt: skip
KEYS: Mapping[str, ConfigKey] = {key.name: key for key in _KEYS}
"""Every key by name, sorted by name."""


def render_markdown() -> str:
    """``docs/config-keys.md``: every key with its type, bounds, default, kinds and how applied."""
    lines = [
        "# Config keys",
        "",
        "<!-- Generated by edge.config_keys.render_markdown(); tests/test_config_keys.py fails",
        "     when this file differs. -->",
        "",
        "The settings an administrator can give terminals through the device twin (issue 7).",
        "Every value is checked against this table before the control plane accepts a layer, and",
        "again by the agent. A refusal names every key that is wrong and why: `unknown_key`,",
        "`wrong_type` (`true` is no integer, `1` no boolean), `out_of_range`, `not_a_choice`,",
        "`too_long`, `too_many` or `bad_text` (a control character).",
        "",
        "Desired values are merged from layers, later ones winning key by key: global, then each",
        "jurisdiction node from the top down (province, city, district, town, village: the",
        "deeper node wins), then label layers by their priority (then by id), then the device's",
        "own layer. A key no layer sets is left out of the desired state; the agent uses the",
        "default below. A key is sent only to the kinds it applies to.",
        "",
        "| key | type | allowed | default | kinds | applied | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in KEYS.values():
        kinds = ", ".join(sorted(kind.value for kind in key.kinds))
        default = json.dumps(key.default, ensure_ascii=False)
        lines.append(
            f"| `{key.name}` | {key.type.value} | {allowed(key)} | `{default}` | {kinds}"
            f" | {key.apply.value} | {key.description} |"
        )
    return "\n".join(lines) + "\n"
