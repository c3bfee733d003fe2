"""The MQTT topic tree. Nothing outside this module formats or splits a termfleet topic.

    termfleet/v1/up/{device_id}/{uplink channel}      device → control plane
    termfleet/v1/down/{device_id}/{downlink channel}  control plane → device
    termfleet/v1/claim/{claim_id}/request|response    enrollment exchange

Each terminal's traffic sits under its own device id, so one broker rule per direction confines
a terminal to its own data.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .common import ID_PATTERN
from .errors import TopicError

ROOT = "termfleet/v1"
_LEVELS = 5
"""termfleet / v1 / direction / id / channel."""
_ID = re.compile(ID_PATTERN)
"""Matched whole (fullmatch): with ``$``, re.match would also accept a trailing newline."""
_WILDCARDS = ("+", "#")


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    CLAIM = "claim"


class Channel(enum.StrEnum):
    """The last topic level: what kind of message travels there."""

    # uplink
    PRESENCE = "presence"
    HEALTH = "health"
    USAGE = "usage"
    REVIEW = "review"
    EVENT = "event"
    REPORTED = "reported"
    RESULT = "result"
    PACKAGES = "packages"
    # downlink
    ACK = "ack"
    DESIRED = "desired"
    CONTENT = "content"
    COMMAND = "command"
    CASE = "case"
    # enrollment
    REQUEST = "request"
    RESPONSE = "response"


CHANNELS_BY_DIRECTION: dict[Direction, frozenset[Channel]] = {
    Direction.UP: frozenset(
        {
            Channel.PRESENCE,
            Channel.HEALTH,
            Channel.USAGE,
            Channel.REVIEW,
            Channel.EVENT,
            Channel.REPORTED,
            Channel.RESULT,
            Channel.PACKAGES,
        }
    ),
    Direction.DOWN: frozenset(
        {
            Channel.ACK,
            Channel.DESIRED,
            Channel.CONTENT,
            Channel.COMMAND,
            Channel.CASE,
        }
    ),
    Direction.CLAIM: frozenset({Channel.REQUEST, Channel.RESPONSE}),
}


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed, validated topic. ``subject`` is the device id, or the claim id for enrollment."""

    direction: Direction
    subject: str
    channel: Channel

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.subject):
            msg = f"invalid id {self.subject!r}: 1-64 of A-Z a-z 0-9 _ . - starting alphanumeric"
            raise TopicError(msg)
        if self.channel not in CHANNELS_BY_DIRECTION[self.direction]:
            msg = f"channel {self.channel.value!r} does not belong under {self.direction.value!r}"
            raise TopicError(msg)

    def __str__(self) -> str:
        return f"{ROOT}/{self.direction.value}/{self.subject}/{self.channel.value}"


def uplink(device_id: str, channel: Channel) -> str:
    """The topic a device publishes ``channel`` on."""
    return str(Topic(Direction.UP, device_id, channel))


def downlink(device_id: str, channel: Channel) -> str:
    """The topic the control plane publishes ``channel`` on for one device."""
    return str(Topic(Direction.DOWN, device_id, channel))


def claim(claim_id: str, channel: Channel) -> str:
    """An enrollment exchange topic; ``claim_id`` is chosen at random by the enrolling agent."""
    return str(Topic(Direction.CLAIM, claim_id, channel))


def parse(topic: str) -> Topic:
    """Parse a concrete topic (no wildcards) or raise TopicError saying what is wrong."""
    if any(w in topic for w in _WILDCARDS):
        msg = f"topic {topic!r} contains a wildcard; only subscription filters may"
        raise TopicError(msg)
    parts = topic.split("/")
    if len(parts) != _LEVELS:
        msg = f"topic {topic!r} has {len(parts)} levels, not {ROOT}/<up|down|claim>/<id>/<channel>"
        raise TopicError(msg)
    if f"{parts[0]}/{parts[1]}" != ROOT:
        msg = f"topic {topic!r} is not under {ROOT}/"
        raise TopicError(msg)
    # Dictionary lookups, not Direction(...)/Channel(...): the ingest parses every message's topic.
    direction = _DIRECTIONS.get(parts[2])
    if direction is None:
        msg = f"topic {topic!r}: unknown direction {parts[2]!r}"
        raise TopicError(msg)
    channel = _CHANNELS.get(parts[4])
    if channel is None:
        msg = f"topic {topic!r}: unknown channel {parts[4]!r}"
        raise TopicError(msg)
    return Topic(direction, parts[3], channel)


_DIRECTIONS = {direction.value: direction for direction in Direction}
_CHANNELS = {channel.value: channel for channel in Channel}


# Subscription filters. A "+" stands for one level, "#" for the rest.


def all_uplink_filter() -> str:
    """What the control plane subscribes to: every device's uplink."""
    return f"{ROOT}/{Direction.UP.value}/+/+"


def device_downlink_filter(device_id: str) -> str:
    """What one agent subscribes to: its own downlink."""
    Topic(Direction.DOWN, device_id, Channel.ACK)  # validates the id
    return f"{ROOT}/{Direction.DOWN.value}/{device_id}/+"


def device_uplink_filter(device_id: str) -> str:
    """The broker ACL pattern for what one device may publish."""
    Topic(Direction.UP, device_id, Channel.PRESENCE)
    return f"{ROOT}/{Direction.UP.value}/{device_id}/+"


def claim_request_filter() -> str:
    """What the claim service subscribes to."""
    return f"{ROOT}/{Direction.CLAIM.value}/+/{Channel.REQUEST.value}"


INGEST_SHARE_GROUP = "termfleet-ingest"
"""The shared-subscription group in which control-plane replicas split the uplink."""

RETAINED_STATE_CHANNELS = (Channel.PRESENCE, Channel.REPORTED, Channel.PACKAGES)
"""Uplink channels whose retained message is a device's current state."""


EVERY_REPLICA_CHANNELS = (*RETAINED_STATE_CHANNELS, Channel.HEALTH)
"""Uplink channels every control-plane replica reads in full: its copy of the fleet's state."""


def ingest_filters(*, shared_group: str | None = INGEST_SHARE_GROUP) -> list[str]:
    """The control plane's subscriptions.

    Device state is subscribed to plainly by every replica. Retained state (presence, reported
    config, packages), because MQTT 5 sends no retained messages to a new shared subscription
    (section 4.8.2), so a restarted replica would never read them. State and health, because
    every replica keeps the whole fleet's state in memory and exposes it as metrics: a replica
    given every other heartbeat of a terminal would show its faults late or not at all.
    The records (usage, reviews, events, command results) are split between replicas through
    ``shared_group`` (None: unshared): each is stored and acknowledged by one replica.
    """
    filters = [uplink_filter(c) for c in EVERY_REPLICA_CHANNELS]
    for channel in sorted(CHANNELS_BY_DIRECTION[Direction.UP] - set(EVERY_REPLICA_CHANNELS)):
        topic_filter = uplink_filter(channel)
        filters.append(shared(shared_group, topic_filter) if shared_group else topic_filter)
    return filters


def uplink_filter(channel: Channel) -> str:
    """One uplink channel of every device, e.g. every terminal's usage records."""
    if channel not in CHANNELS_BY_DIRECTION[Direction.UP]:
        msg = f"channel {channel.value!r} is not an uplink channel"
        raise TopicError(msg)
    return f"{ROOT}/{Direction.UP.value}/+/{channel.value}"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription, so control-plane replicas split the uplink between them."""
    if not _ID.fullmatch(group):
        msg = f"invalid share group {group!r}"
        raise TopicError(msg)
    return f"$share/{group}/{topic_filter}"


# Broker ACL patterns (provisioning/dynsec.py): a "+" in an ACL also permits subscribing with
# a "+" in that level, never with "#".


def all_downlink_filter() -> str:
    """Every device's downlink: what the control plane may publish on."""
    return f"{ROOT}/{Direction.DOWN.value}/+/+"


def claim_response_filter() -> str:
    """Every claim exchange's response: what the claim service may publish on."""
    return f"{ROOT}/{Direction.CLAIM.value}/+/{Channel.RESPONSE.value}"


def any_share_group(topic_filter: str) -> str:
    """``topic_filter`` shared in any group: the ACL for replicas that split a subscription."""
    return f"$share/+/{topic_filter}"
