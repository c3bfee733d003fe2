"""The device twin's core: scopes and layers, precedence, the merge, versions and layer counts."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.twin import (
    MAX_PRIORITY,
    Desired,
    DeviceConfigState,
    DeviceContext,
    DeviceScope,
    GlobalScope,
    Issued,
    LabelScope,
    Layer,
    LayerCounts,
    LayerError,
    NodeScope,
    Scope,
    TwinError,
    TwinErrorReason,
    affected_devices,
    desired_for,
    issue,
    layer_counts,
    next_version,
)
from edge.config_keys import ConfigValue, ProblemReason
from edge.protocol.config import ApplyStatus
from edge.protocol.presence import DeviceKind

PROVINCE = ("44",)
CITY = (*PROVINCE, "4401")
DISTRICT = (*CITY, "440117")
TOWN = (*DISTRICT, "440117001")
VILLAGE = (*TOWN, "440117001001")
OTHER_TOWN = (*DISTRICT, "440117002")

KIOSK = DeviceContext("kiosk-1", DeviceKind.KIOSK, VILLAGE, {"hall": "24h", "vendor": "a"})
PAD = DeviceContext("pad-1", DeviceKind.REVIEW_PAD, TOWN, {"hall": "24h"})
KEY = "ui.idle_timeout_s"


def layer(layer_id: str, scope: Scope, priority: int = 0, **values: ConfigValue) -> Layer:
    """A layer; keyword values use ``__`` for the key's dot (``ui__idle_timeout_s``)."""
    return Layer(layer_id, scope, {k.replace("__", "."): v for k, v in values.items()}, priority)


# Scopes and layers refuse what cannot be.

SCOPE_REFUSALS: list[tuple[Callable[..., Scope], tuple[Any, ...]]] = [
    (NodeScope, ((),)),
    (NodeScope, (("44", "x4401"),)),
    (NodeScope, (("44", "4501"),)),  # does not extend its parent's code
    (NodeScope, (("4401", "44"),)),  # root last
    (LabelScope, ((),)),
    (LabelScope, ((("Hall", "24h"),),)),
    (LabelScope, ((("hall", "a\nb"),),)),
    (LabelScope, ((("hall", "24h"), ("hall", "day")),)),
    (DeviceScope, ("",)),
    (DeviceScope, ("kiosk 1",)),
]


@pytest.mark.parametrize(("scope", "args"), SCOPE_REFUSALS)
def test_bad_scopes_are_refused(scope: Callable[..., Scope], args: tuple[Any, ...]) -> None:
    with pytest.raises(LayerError) as caught:
        scope(*args)
    assert caught.value.reason is TwinErrorReason.BAD_SCOPE


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"id": "bad id"}, TwinErrorReason.BAD_ID),
        ({"id": ""}, TwinErrorReason.BAD_ID),
        ({"priority": -1}, TwinErrorReason.BAD_PRIORITY),
        ({"priority": MAX_PRIORITY + 1}, TwinErrorReason.BAD_PRIORITY),
        ({"priority": True}, TwinErrorReason.BAD_PRIORITY),
        ({"revision": -1}, TwinErrorReason.BAD_REVISION),
        ({"values": {KEY: 5}}, TwinErrorReason.BAD_VALUES),
    ],
)
def test_bad_layers_are_refused(kwargs: dict[str, Any], reason: TwinErrorReason) -> None:
    fields: dict[str, Any] = {"id": "l1", "scope": GlobalScope(), "values": {}} | kwargs
    with pytest.raises(LayerError) as caught:
        Layer(**fields)
    assert caught.value.reason is reason


def test_bad_values_name_every_key() -> None:
    with pytest.raises(LayerError) as caught:
        Layer("l1", GlobalScope(), {KEY: "60", "ui.language": "fr", "nope": 1})
    problems = {(p.key, p.reason) for p in caught.value.problems}
    assert problems == {
        (KEY, ProblemReason.WRONG_TYPE),
        ("ui.language", ProblemReason.NOT_A_CHOICE),
        ("nope", ProblemReason.UNKNOWN_KEY),
    }
    assert str(caught.value).startswith("layer l1: ")


def test_layer_values_are_normalised_and_read_only() -> None:
    raw: dict[str, Any] = {"ui.home_items": ["RS-1"], "ui.font_scale": 2}  # as JSON has them
    made = Layer("l1", GlobalScope(), raw)
    assert dict(made.values) == {"ui.font_scale": 2.0, "ui.home_items": ("RS-1",)}
    with pytest.raises(TypeError):
        made.values["ui.font_scale"] = 1.0  # type: ignore[index]


def test_scopes_from_their_usual_spellings() -> None:
    assert NodeScope.from_path("/44/4401/440117/") == NodeScope(DISTRICT)
    assert LabelScope.of({"vendor": "a", "hall": "24h"}) == LabelScope.of(
        {"hall": "24h", "vendor": "a"}
    )


# Which devices a scope reaches.

REACH: list[tuple[Scope, bool]] = [
    (GlobalScope(), True),
    (NodeScope(PROVINCE), True),
    (NodeScope(DISTRICT), True),
    (NodeScope(VILLAGE), True),
    (NodeScope(OTHER_TOWN), False),
    (NodeScope((*TOWN, "440117001002")), False),  # the village next door
    (LabelScope.of({"hall": "24h"}), True),
    (LabelScope.of({"hall": "24h", "vendor": "a"}), True),
    (LabelScope.of({"hall": "24h", "vendor": "b"}), False),
    (LabelScope.of({"floor": "1"}), False),
    (DeviceScope("kiosk-1"), True),
    (DeviceScope("kiosk-2"), False),
]


@pytest.mark.parametrize(("scope", "reaches"), REACH)
def test_scope_reaches_the_devices_it_names(scope: Scope, *, reaches: bool) -> None:
    desired = desired_for(KIOSK, [Layer("l1", scope, {KEY: 60})])
    assert (KEY in desired.values) is reaches


def test_a_node_scope_does_not_reach_above_its_node() -> None:
    town_kiosk = DeviceContext("kiosk-3", DeviceKind.KIOSK, TOWN, {})
    assert desired_for(town_kiosk, [Layer("l1", NodeScope(VILLAGE), {KEY: 60})]).values == {}


# Precedence: every pair of layer kinds, in both input orders.

LADDER: list[Layer] = [
    layer("global", GlobalScope(), ui__idle_timeout_s=20),
    layer("province", NodeScope(PROVINCE), ui__idle_timeout_s=30),
    layer("city", NodeScope(CITY), ui__idle_timeout_s=40),
    layer("district", NodeScope(DISTRICT), ui__idle_timeout_s=50),
    layer("town", NodeScope(TOWN), ui__idle_timeout_s=60),
    layer("village", NodeScope(VILLAGE), ui__idle_timeout_s=70),
    layer("z-label-low", LabelScope.of({"vendor": "a"}), 1, ui__idle_timeout_s=80),
    layer("a-label-high", LabelScope.of({"hall": "24h"}), 2, ui__idle_timeout_s=90),
    layer("device", DeviceScope("kiosk-1"), ui__idle_timeout_s=100),
]


@pytest.mark.parametrize(
    ("lower", "higher"),
    list(itertools.combinations(LADDER, 2)),
    ids=[f"{a.id}<{b.id}" for a, b in itertools.combinations(LADDER, 2)],
)
def test_the_higher_layer_wins_whatever_the_order(lower: Layer, higher: Layer) -> None:
    for order in ([lower, higher], [higher, lower]):
        desired = desired_for(KIOSK, order)
        assert desired.values == {KEY: higher.values[KEY]}
        assert desired.sources == {KEY: higher.id}


def test_the_whole_ladder_merges_key_by_key() -> None:
    layers = [
        *LADDER,
        layer("g2", GlobalScope(), ui__language="en", printer__receipt_enabled=False),
        layer("t2", NodeScope(TOWN), ui__language="zh-HK"),
    ]
    desired = desired_for(KIOSK, layers)
    assert desired.values == {KEY: 100, "printer.receipt_enabled": False, "ui.language": "zh-HK"}
    assert desired.sources == {KEY: "device", "printer.receipt_enabled": "g2", "ui.language": "t2"}


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ((NodeScope(TOWN), 0, "a"), (NodeScope(TOWN), 0, "b"), "b"),
        ((NodeScope(TOWN), 5, "a"), (NodeScope(TOWN), 0, "b"), "a"),
        ((LabelScope.of({"hall": "24h"}), 3, "b"), (LabelScope.of({"vendor": "a"}), 3, "a"), "b"),
        ((GlobalScope(), 1, "a"), (GlobalScope(), 0, "b"), "a"),
        ((DeviceScope("kiosk-1"), 0, "a"), (DeviceScope("kiosk-1"), 0, "b"), "b"),
    ],
)
def test_ties_go_to_priority_then_id(
    first: tuple[Scope, int, str], second: tuple[Scope, int, str], winner: str
) -> None:
    layers = [
        Layer(layer_id, scope, {KEY: 15 + n}, priority)
        for n, (scope, priority, layer_id) in enumerate((first, second))
    ]
    assert desired_for(KIOSK, layers).sources == {KEY: winner}
    assert desired_for(KIOSK, layers[::-1]).sources == {KEY: winner}


# Kinds, defaults and duplicates.


def test_only_the_kinds_keys_are_merged_and_defaults_are_left_out() -> None:
    layers = [layer("g", GlobalScope(), ui__idle_timeout_s=60, review__prompt_timeout_s=30)]
    assert desired_for(PAD, layers).values == {"review.prompt_timeout_s": 30}
    assert desired_for(KIOSK, layers).values == {KEY: 60}
    assert desired_for(KIOSK, []) == Desired({}, {})
    unknown = DeviceContext("x-1", DeviceKind.UNKNOWN, VILLAGE, {})
    assert desired_for(unknown, layers).values == {}


def test_repeated_layer_ids_are_refused() -> None:
    layers = [layer("g", GlobalScope(), ui__idle_timeout_s=60), layer("g", NodeScope(TOWN))]
    with pytest.raises(TwinError) as caught:
        desired_for(KIOSK, layers)
    assert caught.value.reason is TwinErrorReason.DUPLICATE_LAYER


def test_affected_devices_are_those_reached_with_a_key_of_their_kind() -> None:
    other = DeviceContext("kiosk-2", DeviceKind.KIOSK, OTHER_TOWN, {})
    devices = [other, PAD, KIOSK]
    town_kiosks = layer("t", NodeScope(TOWN), ui__idle_timeout_s=60)
    assert affected_devices(town_kiosks, devices) == ("kiosk-1",)
    everyone = layer("g", GlobalScope(), ui__language="en")
    assert affected_devices(everyone, devices) == ("kiosk-2", "pad-1", "kiosk-1")
    assert affected_devices(layer("empty", GlobalScope()), devices) == ()


# Properties of the merge over any layers.

NODES = [PROVINCE, CITY, DISTRICT, TOWN, VILLAGE, OTHER_TOWN]
DEVICE_IDS = ["kiosk-1", "pad-1", "kiosk-2"]
VALUE_POOL: dict[str, list[Any]] = {
    KEY: [15, 60, 300],
    "ui.language": ["zh-CN", "en"],
    "review.prompt_timeout_s": [10, 60],
    "printer.receipt_enabled": [True, False],
    "ui.home_items": [(), ("RS-1", "GA-2")],
}
LABEL_KEYS = st.sampled_from(["hall", "vendor"])
LABEL_VALUES = st.sampled_from(["24h", "a", "b"])

scopes = st.one_of(
    st.just(GlobalScope()),
    st.sampled_from(NODES).map(NodeScope),
    st.dictionaries(LABEL_KEYS, LABEL_VALUES, min_size=1).map(LabelScope.of),
    st.sampled_from(DEVICE_IDS).map(DeviceScope),
)
layer_values = st.dictionaries(st.sampled_from(sorted(VALUE_POOL)), st.integers(0, 2), max_size=4)


@st.composite
def layer_lists(draw: st.DrawFn) -> list[Layer]:
    ids = draw(st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=8))
    return [
        Layer(
            layer_id,
            draw(scopes),
            {k: VALUE_POOL[k][i % len(VALUE_POOL[k])] for k, i in draw(layer_values).items()},
            draw(st.integers(0, 3)),
        )
        for layer_id in ids
    ]


devices = st.builds(
    DeviceContext,
    st.sampled_from(DEVICE_IDS),
    st.sampled_from([DeviceKind.KIOSK, DeviceKind.REVIEW_PAD, DeviceKind.STATION_PC]),
    st.sampled_from(NODES),
    st.dictionaries(LABEL_KEYS, LABEL_VALUES),
)


@given(devices, layer_lists(), st.randoms(use_true_random=False))
def test_merge_is_deterministic_and_ignores_input_order(
    device: DeviceContext, layers: list[Layer], rng: random.Random
) -> None:
    desired = desired_for(device, layers)
    shuffled = list(layers)
    rng.shuffle(shuffled)
    assert desired_for(device, shuffled) == desired
    assert list(desired.values) == list(desired.sources) == sorted(desired.values)
    assert set(desired.sources.values()) <= {candidate.id for candidate in layers}


@given(devices, layer_lists())
def test_a_device_layer_always_wins(device: DeviceContext, layers: list[Layer]) -> None:
    desired = desired_for(device, layers)
    own = {candidate.id for candidate in layers if candidate.scope == DeviceScope(device.device_id)}
    own_keys = {k for candidate in layers if candidate.id in own for k in candidate.values}
    for key in own_keys & set(desired.values):
        assert desired.sources[key] in own


@given(devices, layer_lists())
def test_removing_a_layer_that_contributes_nothing_changes_nothing(
    device: DeviceContext, layers: list[Layer]
) -> None:
    desired = desired_for(device, layers)
    for idle in [c for c in layers if c.id not in set(desired.sources.values())]:
        assert desired_for(device, [c for c in layers if c is not idle]) == desired


@given(devices, layer_lists())
def test_affected_devices_covers_every_device_a_layer_feeds(
    device: DeviceContext, layers: list[Layer]
) -> None:
    for source in set(desired_for(device, layers).sources.values()):
        feeding = next(candidate for candidate in layers if candidate.id == source)
        assert affected_devices(feeding, [device]) == (device.device_id,)


# Versions.

VERSIONS: list[tuple[int, dict[str, Any] | None, dict[str, Any], int, int]] = [
    (0, None, {}, 0, 1),  # the first issue always goes out, even with nothing set
    (0, None, {KEY: 60}, 7, 7),
    (7, {KEY: 60}, {KEY: 60}, 9, 7),  # unchanged: same version
    (7, {KEY: 60}, {KEY: 90}, 9, 9),  # changed: the revision
    (7, {KEY: 60}, {}, 9, 9),  # a key gone is a change
    (9, {KEY: 60}, {KEY: 90}, 9, 10),  # the counter was not bumped: still newer
    (9, {KEY: 60}, {KEY: 90}, 3, 10),  # ... nor ever older
    (4, {"ui.home_items": ["A"]}, {"ui.home_items": ("A",)}, 9, 4),  # JSON lists are tuples
]


@pytest.mark.parametrize(("last", "last_values", "values", "revision", "expected"), VERSIONS)
def test_version_rule(
    last: int,
    last_values: dict[str, Any] | None,
    values: dict[str, Any],
    revision: int,
    expected: int,
) -> None:
    assert next_version(last, last_values, values, revision) == expected


def test_negative_versions_are_refused() -> None:
    with pytest.raises(TwinError) as caught:
        next_version(-1, None, {}, 3)
    assert caught.value.reason is TwinErrorReason.BAD_REVISION


@given(st.lists(st.tuples(st.sampled_from([{}, {KEY: 60}, {KEY: 90}]), st.integers(0, 50))))
def test_versions_never_go_down(steps: list[tuple[dict[str, Any], int]]) -> None:
    version, values = 0, None
    for new_values, revision in steps:
        new_version = next_version(version, values, new_values, revision)
        if values is not None and new_values == values:
            assert new_version == version
        else:
            assert new_version > version
            assert new_version >= revision
        version, values = new_version, new_values


# Issuing and per-layer counts.

GLOBAL = layer("global", GlobalScope(), display__brightness_pct=80)
OWN = layer("own", DeviceScope("kiosk-1"), ui__idle_timeout_s=60)


def test_layer_since_moves_only_with_the_layers_part() -> None:
    first = issue(None, desired_for(KIOSK, [GLOBAL]), revision=1)
    assert (first.version, dict(first.layer_since)) == (1, {"global": 1})
    second = issue(first, desired_for(KIOSK, [GLOBAL, OWN]), revision=5)
    assert (second.version, dict(second.layer_since)) == (5, {"global": 1, "own": 5})
    brighter = layer("global", GlobalScope(), display__brightness_pct=90)
    third = issue(second, desired_for(KIOSK, [brighter, OWN]), revision=7)
    assert (third.version, dict(third.layer_since)) == (7, {"global": 7, "own": 5})
    again = issue(third, desired_for(KIOSK, [brighter, OWN]), revision=8)
    assert again == third


def test_a_source_change_without_a_value_change_keeps_the_version() -> None:
    first = issue(None, desired_for(KIOSK, [GLOBAL]), revision=1)
    same = layer("own", DeviceScope("kiosk-1"), display__brightness_pct=80)
    second = issue(first, desired_for(KIOSK, [GLOBAL, same]), revision=4)
    assert second.version == 1
    assert dict(second.layer_since) == {"own": 1}
    assert dict(second.sources) == {"display.brightness_pct": "own"}


def state(issued: Issued, version: int, status: ApplyStatus) -> DeviceConfigState:
    return DeviceConfigState(issued, version, status)


def test_layer_counts_per_layer() -> None:
    one = issue(None, desired_for(KIOSK, [GLOBAL]), revision=1)
    five = issue(one, desired_for(KIOSK, [GLOBAL, OWN]), revision=5)
    pad = issue(None, desired_for(PAD, [GLOBAL]), revision=1)
    counts = layer_counts([
        state(five, 1, ApplyStatus.APPLIED),  # runs v1: has global's part, not own's yet
        state(pad, 1, ApplyStatus.FAILED),
        state(one, 1, ApplyStatus.PENDING),
    ])  # fmt: skip
    assert counts == {
        "global": LayerCounts(targeted=3, applied=1, failed=1),
        "own": LayerCounts(targeted=1, applied=0, failed=0),
    }
    assert counts["global"].pending == 1
    assert layer_counts([state(five, 5, ApplyStatus.FAILED)]) == {
        "global": LayerCounts(1, 0, 1),
        "own": LayerCounts(1, 0, 1),
    }


def test_a_device_newly_reached_by_a_label_layer_is_pending_until_it_applies() -> None:
    vendor = Layer("vendor", LabelScope.of({"vendor": "a"}), {"audio.volume_pct": 30}, 1, 2)
    before = issue(None, desired_for(PAD, [GLOBAL]), revision=3)
    tagged = DeviceContext(PAD.device_id, PAD.kind, PAD.node_path, {"vendor": "a"})
    after = issue(before, desired_for(tagged, [GLOBAL, vendor]), revision=9)
    assert after.layer_since["vendor"] == 9
    assert layer_counts([state(after, 3, ApplyStatus.APPLIED)])["vendor"] == LayerCounts(1, 0, 0)
    assert layer_counts([state(after, 9, ApplyStatus.APPLIED)])["vendor"] == LayerCounts(1, 1, 0)
