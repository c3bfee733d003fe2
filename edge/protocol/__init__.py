"""The termfleet wire contract: MQTT topics and payloads. Pure Python; no IO library imports.

Everything that speaks to a terminal or to the control plane over MQTT goes through here, so an
old kiosk and a new control plane keep understanding each other during a rollout.
"""

from .channels import SPECS, ChannelSpec, spec_for
from .codec import (
    MAX_PAYLOAD_BYTES,
    MAX_RECORDS_PER_MESSAGE,
    Message,
    RecordItem,
    decode,
    decode_message,
    decode_records,
    encode,
    encode_records,
    probe_seq,
)
from .commands import Command, CommandName, CommandResult, CommandStatus
from .common import SCHEMA_VERSION, SUPPORTED_VERSIONS, OpenEnum, Payload, Record
from .config import ApplyStatus, DesiredConfig, ReportedConfig
from .delivery import Ack
from .enrollment import (
    CLAIM_TIMEOUT_S,
    CLAIM_USERNAME,
    BrokerEndpoint,
    ClaimRequest,
    ClaimResponse,
    ClaimStatus,
)
from .errors import PayloadError, ProtocolError, RejectReason, TopicError, UnsupportedVersionError
from .events import DeviceEvent, EventType, Severity
from .health import (
    Heartbeat,
    Network,
    NetworkType,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
)
from .packages import (
    Artifact,
    ContentNotice,
    InstallWhen,
    PackageKind,
    PackagePhase,
    PackageReport,
    PackageState,
    PackageTarget,
)
from .presence import DeviceKind, OfflineReason, Presence, PresenceState
from .reviews import CaseNotice, Indicators, Rating, Review, ReviewChannel
from .topics import Channel, Direction, Topic
from .usage import (
    CallForHelp,
    IdCardRead,
    IdCardResult,
    PrintJob,
    SessionEnded,
    SessionEndReason,
    SessionStarted,
    Transaction,
    TransactionOutcome,
    UnknownUsage,
    UsageEvent,
    UsageRecord,
)

__all__ = [
    "CLAIM_TIMEOUT_S",
    "CLAIM_USERNAME",
    "MAX_PAYLOAD_BYTES",
    "MAX_RECORDS_PER_MESSAGE",
    "SCHEMA_VERSION",
    "SPECS",
    "SUPPORTED_VERSIONS",
    "Ack",
    "ApplyStatus",
    "Artifact",
    "BrokerEndpoint",
    "CallForHelp",
    "CaseNotice",
    "Channel",
    "ChannelSpec",
    "ClaimRequest",
    "ClaimResponse",
    "ClaimStatus",
    "Command",
    "CommandName",
    "CommandResult",
    "CommandStatus",
    "ContentNotice",
    "DesiredConfig",
    "DeviceEvent",
    "DeviceKind",
    "Direction",
    "EventType",
    "Heartbeat",
    "IdCardRead",
    "IdCardResult",
    "Indicators",
    "InstallWhen",
    "Message",
    "Network",
    "NetworkType",
    "OfflineReason",
    "OpenEnum",
    "PackageKind",
    "PackagePhase",
    "PackageReport",
    "PackageState",
    "PackageTarget",
    "Payload",
    "PayloadError",
    "PeripheralKind",
    "PeripheralState",
    "PeripheralStatus",
    "Presence",
    "PresenceState",
    "PrintJob",
    "ProtocolError",
    "Rating",
    "Record",
    "RecordItem",
    "RejectReason",
    "ReportedConfig",
    "Review",
    "ReviewChannel",
    "SessionEndReason",
    "SessionEnded",
    "SessionStarted",
    "Severity",
    "Topic",
    "TopicError",
    "Transaction",
    "TransactionOutcome",
    "UnknownUsage",
    "UnsupportedVersionError",
    "UsageEvent",
    "UsageRecord",
    "decode",
    "decode_message",
    "decode_records",
    "encode",
    "encode_records",
    "probe_seq",
    "spec_for",
]
