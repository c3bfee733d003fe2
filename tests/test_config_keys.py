"""The config key registry: its own consistency, every refusal with its key, and its document."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config_keys import (
    KEYS,
    ConfigValueError,
    KeyType,
    ProblemReason,
    applies_to,
    render_markdown,
    validate,
    with_defaults,
)
from edge.protocol.presence import DeviceKind

DOC = Path(__file__).parent.parent / "docs" / "config-keys.md"
KEY_NAME = re.compile(r"[a-z]+(\.[a-z][a-z0-9_]*)+")


# The registry itself.


def test_keys_are_sorted_and_named_section_dot_name() -> None:
    assert list(KEYS) == sorted(KEYS)
    assert len(KEYS) >= 15
    for name, key in KEYS.items():
        assert key.name == name
        assert KEY_NAME.fullmatch(name), name


@pytest.mark.parametrize("name", sorted(KEYS))
def test_every_key_is_consistent(name: str) -> None:
    key = KEYS[name]
    assert key.kinds, f"{name} applies to no kind"
    assert DeviceKind.UNKNOWN not in key.kinds
    assert key.description.strip(), name
    assert "\n" not in key.description
    assert "|" not in key.description, "it would break the document's table"
    assert validate({name: key.default}) == {name: key.default}, "the default must be valid"
    if key.type in {KeyType.INT, KeyType.FLOAT}:
        assert key.minimum is not None
        assert key.maximum is not None
        assert key.minimum <= key.maximum
    if key.type is KeyType.ENUM:
        assert len(set(key.choices)) == len(key.choices) >= 2
    if key.type in {KeyType.STR, KeyType.STR_LIST}:
        assert key.max_length > 0
    if key.type is KeyType.STR_LIST:
        assert key.max_items > 0


def test_registry_covers_every_type_every_kind_and_both_ways_of_applying() -> None:
    assert {key.type for key in KEYS.values()} == set(KeyType)
    assert {key.apply for key in KEYS.values()} == {"live", "restart"}
    kinds = {kind for key in KEYS.values() for kind in key.kinds}
    assert kinds == {kind for kind in DeviceKind if kind is not DeviceKind.UNKNOWN}


# Refusals: one table row per kind of problem, the key always named.

REFUSALS: list[tuple[dict[str, Any], str, ProblemReason]] = [
    ({"ui.idle_timout_s": 60}, "ui.idle_timout_s", ProblemReason.UNKNOWN_KEY),
    ({"ui.idle_timeout_s": "60"}, "ui.idle_timeout_s", ProblemReason.WRONG_TYPE),
    ({"ui.idle_timeout_s": True}, "ui.idle_timeout_s", ProblemReason.WRONG_TYPE),
    ({"ui.idle_timeout_s": 60.0}, "ui.idle_timeout_s", ProblemReason.WRONG_TYPE),
    ({"ui.idle_timeout_s": None}, "ui.idle_timeout_s", ProblemReason.WRONG_TYPE),
    ({"printer.receipt_enabled": 1}, "printer.receipt_enabled", ProblemReason.WRONG_TYPE),
    ({"printer.receipt_enabled": "true"}, "printer.receipt_enabled", ProblemReason.WRONG_TYPE),
    ({"ui.font_scale": False}, "ui.font_scale", ProblemReason.WRONG_TYPE),
    ({"ui.font_scale": "1.5"}, "ui.font_scale", ProblemReason.WRONG_TYPE),
    ({"ui.language": 1}, "ui.language", ProblemReason.WRONG_TYPE),
    ({"ui.home_items": "RS-0012"}, "ui.home_items", ProblemReason.WRONG_TYPE),
    ({"ui.home_items": ["RS-0012", 12]}, "ui.home_items", ProblemReason.WRONG_TYPE),
    ({"ui.opening_hours_text": ["mon"]}, "ui.opening_hours_text", ProblemReason.WRONG_TYPE),
    ({"ui.idle_timeout_s": 14}, "ui.idle_timeout_s", ProblemReason.OUT_OF_RANGE),
    ({"ui.idle_timeout_s": 1801}, "ui.idle_timeout_s", ProblemReason.OUT_OF_RANGE),
    ({"audio.volume_pct": -1}, "audio.volume_pct", ProblemReason.OUT_OF_RANGE),
    ({"ui.font_scale": 2.01}, "ui.font_scale", ProblemReason.OUT_OF_RANGE),
    ({"ui.font_scale": math.nan}, "ui.font_scale", ProblemReason.OUT_OF_RANGE),
    ({"ui.font_scale": math.inf}, "ui.font_scale", ProblemReason.OUT_OF_RANGE),
    ({"ui.language": "zh-TW"}, "ui.language", ProblemReason.NOT_A_CHOICE),
    ({"agent.log_level": "INFO"}, "agent.log_level", ProblemReason.NOT_A_CHOICE),
    ({"ui.opening_hours_text": "x" * 121}, "ui.opening_hours_text", ProblemReason.TOO_LONG),
    ({"ui.home_items": ["A" * 65]}, "ui.home_items", ProblemReason.TOO_LONG),
    ({"ui.home_items": ["A"] * 13}, "ui.home_items", ProblemReason.TOO_MANY),
    ({"ui.opening_hours_text": "周一\n周二"}, "ui.opening_hours_text", ProblemReason.BAD_TEXT),
    ({"ui.home_items": ["RS-0012\t"]}, "ui.home_items", ProblemReason.BAD_TEXT),
]


@pytest.mark.parametrize(("values", "key", "reason"), REFUSALS)
def test_refusal_names_the_key_and_why(
    values: dict[str, Any], key: str, reason: ProblemReason
) -> None:
    with pytest.raises(ConfigValueError) as caught:
        validate(values)
    [problem] = caught.value.problems
    assert (problem.key, problem.reason) == (key, reason)
    assert str(caught.value).startswith(f"{key}: ")
    assert caught.value.reason == "invalid_config"


def test_every_problem_reason_has_a_row() -> None:
    assert {reason for _, _, reason in REFUSALS} == set(ProblemReason)


def test_all_problems_are_reported_at_once_sorted_by_key() -> None:
    values = {row_key: value for row, row_key, _ in REFUSALS[::4] for value in row.values()}
    values["ui.idle_timeout_s"] = 90  # one good value among them is not reported
    with pytest.raises(ConfigValueError) as caught:
        validate(values)
    keys = [problem.key for problem in caught.value.problems]
    assert keys == sorted(set(values) - {"ui.idle_timeout_s"})


def test_a_refused_value_is_quoted_as_json_and_cut_short() -> None:
    with pytest.raises(ConfigValueError) as caught:
        validate({"ui.language": "x" * 500, "printer.receipt_enabled": None})
    message = str(caught.value)
    assert "printer.receipt_enabled: null is not true or false" in message
    assert '"xxx' in message
    assert len(message) < 200


# Accepted values, normalised.

AS_GIVEN: list[dict[str, Any]] = [
    {},
    {"ui.idle_timeout_s": 15, "ui.language": "en"},
    {"ui.opening_hours_text": "周一至周五\u300008:30-12:00"},  # an ideographic space
    {"printer.receipt_enabled": False},
    {"audio.volume_pct": 0, "display.brightness_pct": 100},
    {"ui.font_scale": 1.5},
]
NORMALISED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"ui.font_scale": 2}, {"ui.font_scale": 2.0}),
    ({"ui.home_items": ["RS-0012", "GA-0001"]}, {"ui.home_items": ("RS-0012", "GA-0001")}),
    ({"ui.home_items": []}, {"ui.home_items": ()}),
    ({"ui.language": "en", "ui.font_scale": 1.2}, {"ui.font_scale": 1.2, "ui.language": "en"}),
]


@pytest.mark.parametrize(("values", "expected"), [*((v, v) for v in AS_GIVEN), *NORMALISED])
def test_accepted_values_are_normalised(values: dict[str, Any], expected: dict[str, Any]) -> None:
    result = validate(values)
    assert result == expected
    assert [type(v) for v in result.values()] == [type(v) for v in expected.values()]
    assert list(result) == list(expected) == sorted(result)


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=14), max_leaves=20)
KEY_NAMES = st.sampled_from(sorted(KEYS)) | st.text(max_size=20)


@given(st.dictionaries(KEY_NAMES, JSON_VALUES, max_size=8))
def test_any_json_is_normalised_or_refused_with_each_bad_key_once(values: dict[str, Any]) -> None:
    try:
        result = validate(values)
    except ConfigValueError as exc:
        keys = [problem.key for problem in exc.problems]
        assert keys == sorted(set(keys))
        assert set(keys) <= set(values)
        for key in set(values) - set(keys):
            validate({key: values[key]})  # the values not named pass on their own
    else:
        assert set(result) == set(values)
        assert validate(result) == result, "normalising twice changes nothing"


# Defaults and kinds.


def test_with_defaults_fills_only_the_kinds_keys_and_keeps_given_values() -> None:
    pad = with_defaults(
        {"review.prompt_timeout_s": 30, "ui.idle_timeout_s": 60}, DeviceKind.REVIEW_PAD
    )
    assert pad["review.prompt_timeout_s"] == 30
    assert "ui.idle_timeout_s" not in pad, "a pad has no idle timeout"
    assert set(pad) == {name for name in KEYS if applies_to(name, DeviceKind.REVIEW_PAD)}
    kiosk = with_defaults({}, DeviceKind.KIOSK)
    assert kiosk["ui.idle_timeout_s"] == KEYS["ui.idle_timeout_s"].default
    assert with_defaults({"ui.language": "en"}, DeviceKind.UNKNOWN) == {}


def test_applies_to_knows_kinds_and_unknown_keys() -> None:
    assert applies_to("printer.receipt_enabled", DeviceKind.KIOSK)
    assert not applies_to("printer.receipt_enabled", DeviceKind.REVIEW_PAD)
    assert not applies_to("no.such_key", DeviceKind.KIOSK)


# The document.


def test_docs_config_keys_is_generated_from_the_registry() -> None:
    fix = "python -c \"from edge.config_keys import *; print(render_markdown(), end='')\""
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        f"docs/config-keys.md differs from the registry; regenerate: {fix} > docs/config-keys.md"
    )


def test_document_has_a_row_per_key_with_its_default() -> None:
    rows = [line for line in render_markdown().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(KEYS)
    assert "| `ui.idle_timeout_s` | integer | 15 to 1800 | `120` |" in render_markdown()


def test_one_key_normalises_alone_and_names_itself_when_refusing() -> None:
    assert KEYS["ui.font_scale"].normalised(2) == 2.0
    with pytest.raises(ConfigValueError) as caught:
        KEYS["ui.font_scale"].normalised(value=True)
    assert [(p.key, p.reason) for p in caught.value.problems] == [
        ("ui.font_scale", ProblemReason.WRONG_TYPE)
    ]
