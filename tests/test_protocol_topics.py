"""The topic tree: builders and parse agree, and every malformed topic is refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.protocol import Channel, Direction, ProtocolError, RejectReason, Topic, TopicError
from edge.protocol import topics as wire

BUILDERS = {Direction.UP: wire.uplink, Direction.DOWN: wire.downlink, Direction.CLAIM: wire.claim}
CHANNEL_DIRECTION = {
    channel: direction
    for direction, channels in wire.CHANNELS_BY_DIRECTION.items()
    for channel in channels
}
KIOSK = "kiosk-440117000-01"

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)


def test_every_channel_belongs_to_exactly_one_direction() -> None:
    counts = {c: sum(c in cs for cs in wire.CHANNELS_BY_DIRECTION.values()) for c in Channel}
    assert counts == dict.fromkeys(Channel, 1)


@pytest.mark.parametrize("channel", list(Channel), ids=str)
def test_builder_and_parse_round_trip(channel: Channel) -> None:
    direction = CHANNEL_DIRECTION[channel]
    topic = BUILDERS[direction](KIOSK, channel)
    assert topic == f"termfleet/v1/{direction.value}/{KIOSK}/{channel.value}"
    parsed = wire.parse(topic)
    assert parsed == Topic(direction, KIOSK, channel)
    assert str(parsed) == topic


@given(subject=ids, channel=st.sampled_from(list(Channel)))
def test_any_valid_id_round_trips(subject: str, channel: Channel) -> None:
    direction = CHANNEL_DIRECTION[channel]
    topic = BUILDERS[direction](subject, channel)
    assert wire.parse(topic) == Topic(direction, subject, channel)


@pytest.mark.parametrize(
    ("direction", "channel"),
    [(d, c) for d in Direction for c in Channel if c not in wire.CHANNELS_BY_DIRECTION[d]],
    ids=str,
)
def test_builders_refuse_a_channel_of_another_direction(
    direction: Direction, channel: Channel
) -> None:
    with pytest.raises(TopicError, match=f"channel '{channel.value}' does not belong under"):
        BUILDERS[direction](KIOSK, channel)


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        # wrong root
        ("other/v1/up/kiosk-440117000-01/usage", "is not under termfleet/v1/"),
        ("termfleet/v2/up/kiosk-440117000-01/usage", "is not under termfleet/v1/"),
        ("Termfleet/v1/up/kiosk-440117000-01/usage", "is not under termfleet/v1/"),
        # wrong number of levels
        ("", "has 1 levels"),
        ("termfleet/v1/up/kiosk-440117000-01", "has 4 levels"),
        ("termfleet/v1/up/kiosk-440117000-01/usage/extra", "has 6 levels"),
        ("/termfleet/v1/up/kiosk-440117000-01/usage", "has 6 levels"),
        ("termfleet/v1/up/kiosk-440117000-01/usage/", "has 6 levels"),
        ("$share/g/termfleet/v1/up/kiosk-440117000-01/usage", "has 7 levels"),
        # unknown direction or channel (case matters)
        ("termfleet/v1/sideways/kiosk-440117000-01/usage", "unknown direction 'sideways'"),
        ("termfleet/v1/UP/kiosk-440117000-01/usage", "unknown direction 'UP'"),
        ("termfleet/v1/up/kiosk-440117000-01/selfie", "unknown channel 'selfie'"),
        ("termfleet/v1/up/kiosk-440117000-01/Usage", "unknown channel 'Usage'"),
        ("termfleet/v1/up/kiosk-440117000-01/", "unknown channel ''"),
        # a channel under the wrong direction
        ("termfleet/v1/up/kiosk-440117000-01/ack", "channel 'ack' does not belong under 'up'"),
        (
            "termfleet/v1/down/kiosk-440117000-01/usage",
            "channel 'usage' does not belong under 'down'",
        ),
        ("termfleet/v1/claim/c5e1a9f04b7d2e36/presence", "does not belong under 'claim'"),
        (
            "termfleet/v1/up/c5e1a9f04b7d2e36/request",
            "channel 'request' does not belong under 'up'",
        ),
        # wildcards
        ("termfleet/v1/up/+/usage", "contains a wildcard"),
        ("termfleet/v1/up/kiosk-440117000-01/#", "contains a wildcard"),
        ("termfleet/v1/+/kiosk-440117000-01/usage", "contains a wildcard"),
        ("termfleet/v1/up/kiosk+1/usage", "contains a wildcard"),
        # bad ids
        ("termfleet/v1/up//usage", "invalid id ''"),
        ("termfleet/v1/up/-kiosk/usage", "invalid id '-kiosk'"),
        ("termfleet/v1/up/.kiosk/usage", "invalid id '.kiosk'"),
        ("termfleet/v1/up/kiosk 1/usage", "invalid id 'kiosk 1'"),
        ("termfleet/v1/up/kiosk\n/usage", "invalid id 'kiosk\\\\n'"),
        ("termfleet/v1/up/从化-0001/usage", "invalid id '从化-0001'"),
        (f"termfleet/v1/up/{'k' * 65}/usage", f"invalid id '{'k' * 65}'"),
    ],
)
def test_parse_refuses_and_names_the_problem(topic: str, problem: str) -> None:
    with pytest.raises(TopicError, match=problem) as caught:
        wire.parse(topic)
    assert caught.value.reason is RejectReason.TOPIC
    assert isinstance(caught.value, ProtocolError)


def test_the_longest_valid_id_is_accepted() -> None:
    subject = "k" * 64
    assert wire.parse(f"termfleet/v1/up/{subject}/usage").subject == subject


@given(st.text())
def test_parse_raises_nothing_but_topic_error_on_any_text(text: str) -> None:
    try:
        parsed = wire.parse(text)
    except TopicError:
        return
    assert str(parsed) == text


levels = st.one_of(
    st.sampled_from(["termfleet", "v1", "up", "down", "claim", KIOSK, "+", "#", ""]),
    st.sampled_from([c.value for c in Channel]),
    st.text(max_size=8),
)


@given(st.lists(levels, max_size=7).map("/".join))
def test_parse_raises_nothing_but_topic_error_on_near_topics(text: str) -> None:
    try:
        parsed = wire.parse(text)
    except TopicError:
        return
    assert str(parsed) == text
    assert parsed.channel in wire.CHANNELS_BY_DIRECTION[parsed.direction]


def test_subscription_filters() -> None:
    assert wire.all_uplink_filter() == "termfleet/v1/up/+/+"
    assert wire.device_downlink_filter(KIOSK) == f"termfleet/v1/down/{KIOSK}/+"
    assert wire.device_uplink_filter(KIOSK) == f"termfleet/v1/up/{KIOSK}/+"
    assert wire.claim_request_filter() == "termfleet/v1/claim/+/request"
    assert (
        wire.shared("termfleet-ingest", wire.all_uplink_filter())
        == "$share/termfleet-ingest/termfleet/v1/up/+/+"
    )


@pytest.mark.parametrize("bad", ["", "+", "#", "a/b", "-x", "kiosk\n", "k" * 65])
def test_filters_refuse_bad_ids_and_groups(bad: str) -> None:
    with pytest.raises(TopicError, match="invalid id"):
        wire.device_downlink_filter(bad)
    with pytest.raises(TopicError, match="invalid id"):
        wire.device_uplink_filter(bad)
    with pytest.raises(TopicError, match="invalid share group"):
        wire.shared(bad, wire.all_uplink_filter())


def test_uplink_filter_covers_one_channel_of_every_device_and_refuses_downlink() -> None:
    assert wire.uplink_filter(Channel.USAGE) == "termfleet/v1/up/+/usage"
    with pytest.raises(TopicError, match="not an uplink channel"):
        wire.uplink_filter(Channel.ACK)
