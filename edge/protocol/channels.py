"""One table: for every channel, the payload it carries and how it is published."""

from __future__ import annotations

from dataclasses import dataclass

from .commands import Command, CommandResult
from .common import Payload
from .config import DesiredConfig, ReportedConfig
from .delivery import Ack
from .enrollment import ClaimRequest, ClaimResponse
from .events import DeviceEvent
from .health import Heartbeat
from .packages import ContentNotice, PackageReport
from .presence import Presence
from .reviews import CaseNotice, Review
from .topics import Channel
from .usage import UsageRecord

QOS_AT_MOST_ONCE = 0
QOS_AT_LEAST_ONCE = 1


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """How a channel's messages travel.

    ``record`` channels carry outbox records with a per-device ``seq`` that the control plane
    acknowledges after its commit; the rest are latest-wins state or one-off messages.
    """

    payload: type[Payload]
    qos: int
    retain: bool
    record: bool = False


SPECS: dict[Channel, ChannelSpec] = {
    Channel.PRESENCE: ChannelSpec(Presence, QOS_AT_LEAST_ONCE, retain=True),
    Channel.HEALTH: ChannelSpec(Heartbeat, QOS_AT_MOST_ONCE, retain=False),
    Channel.USAGE: ChannelSpec(UsageRecord, QOS_AT_LEAST_ONCE, retain=False, record=True),
    Channel.REVIEW: ChannelSpec(Review, QOS_AT_LEAST_ONCE, retain=False, record=True),
    Channel.EVENT: ChannelSpec(DeviceEvent, QOS_AT_LEAST_ONCE, retain=False, record=True),
    Channel.REPORTED: ChannelSpec(ReportedConfig, QOS_AT_LEAST_ONCE, retain=True),
    Channel.RESULT: ChannelSpec(CommandResult, QOS_AT_LEAST_ONCE, retain=False),
    Channel.PACKAGES: ChannelSpec(PackageReport, QOS_AT_LEAST_ONCE, retain=True),
    Channel.ACK: ChannelSpec(Ack, QOS_AT_MOST_ONCE, retain=False),
    Channel.DESIRED: ChannelSpec(DesiredConfig, QOS_AT_LEAST_ONCE, retain=True),
    Channel.CONTENT: ChannelSpec(ContentNotice, QOS_AT_LEAST_ONCE, retain=True),
    Channel.COMMAND: ChannelSpec(Command, QOS_AT_LEAST_ONCE, retain=False),
    Channel.CASE: ChannelSpec(CaseNotice, QOS_AT_LEAST_ONCE, retain=False),
    Channel.REQUEST: ChannelSpec(ClaimRequest, QOS_AT_LEAST_ONCE, retain=False),
    Channel.RESPONSE: ChannelSpec(ClaimResponse, QOS_AT_LEAST_ONCE, retain=False),
}


def spec_for(payload: Payload) -> tuple[Channel, ChannelSpec]:
    """The channel a payload travels on, found by its type (a usage subtype maps to usage)."""
    for channel, spec in SPECS.items():
        if isinstance(payload, spec.payload):
            return channel, spec
    msg = f"{type(payload).__name__} is not a payload of any channel"
    raise TypeError(msg)
