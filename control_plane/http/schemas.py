"""The shapes of the REST API's answers, for its OpenAPI document (``openapi.py``).

Each route in ``API_ROUTES`` names the struct of its answer; msgspec turns the structs into JSON
Schema. The views stay plain dicts (``site_views``, ``device_views``, …): these structs describe
them, and the schemathesis test holds the two together by checking every answer the API gives
against its schema. Fields without a default are required, so a view that loses a key fails it.
Enumerations come from the code (``Level``, ``Lifecycle``, ``Role`` …), so a new value reaches
the document by itself.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec

from control_plane.auth import Role
from control_plane.fleet import Availability
from control_plane.jurisdiction import Level
from control_plane.lifecycle import Lifecycle
from control_plane.stats_query import Dimension
from edge.protocol import Heartbeat
from edge.protocol.health import PeripheralKind
from edge.protocol.presence import DeviceKind, PresenceState

Cursor = Annotated[
    str | None,
    msgspec.Meta(description="pass as `cursor` for the next page; null on the last page"),
]


class Schema(msgspec.Struct, kw_only=True):
    """Base of the answers' shapes."""


# --- errors -------------------------------------------------------------------------------------


class ErrorBody(Schema):
    code: Annotated[str, msgspec.Meta(description="stable, for scripts: `invalid_parameter` …")]
    message: Annotated[str, msgspec.Meta(description="for people: what was wrong and what helps")]
    details: Annotated[
        dict[str, Any],
        msgspec.Meta(description="facts for scripts, such as the `field` or `parameter` named"),
    ]


class Error(Schema):
    """Every error of the API, with any status from 400 on."""

    error: ErrorBody


# --- devices ----------------------------------------------------------------------------------


class Device(Schema):
    """A terminal as the device list shows it: the registry's fields and its live state."""

    device_id: str
    kind: DeviceKind
    serial: str | None
    lifecycle: Lifecycle
    labels: dict[str, str]
    presence: PresenceState
    presence_reason: str
    availability: Availability
    site: str | None
    site_name: str | None
    site_path: str | None
    window: str | None
    session: int
    agent_version: str | None
    last_seen: datetime | None
    health: Heartbeat | None


class DevicePage(Schema):
    items: list[Device]
    next_cursor: Cursor


class AgentInventory(Schema):
    agent_version: str | None
    os: str | None
    hardware_model: str | None
    changed_at: datetime | None


class Peripheral(Schema):
    name: str
    kind: PeripheralKind
    status: str
    reason: str
    model: str
    firmware: str
    status_since: datetime | None
    changed_at: datetime | None


class StoredRecord(Schema):
    seq: int
    channel: str
    type: str
    device_time: datetime | None
    received_at: datetime | None
    payload: Annotated[Any, msgspec.Meta(description="the record as the device sent it")]


class DeviceDetail(Device):
    first_seen: datetime | None
    agent: AgentInventory | None
    peripherals: list[Peripheral]
    recent_records: list[StoredRecord]


# --- the tree, sites, windows, departments, staff ---------------------------------------------


class NodeRef(Schema):
    code: str
    name: str
    level: Level


class Node(NodeRef):
    parent: str | None
    path: Annotated[list[str], msgspec.Meta(description="the codes from the root to this node")]


class ListedNode(Node):
    children: int
    sites: int


class NodePage(Schema):
    items: list[ListedNode]
    next_cursor: Cursor


class SubtreeCounts(Schema):
    sites: int
    devices: int


class NodeDetail(Node):
    ancestors: list[NodeRef]
    children: int
    sites: int
    subtree: SubtreeCounts


class Site(Schema):
    code: str
    name: str
    level: Level
    node: str
    address: str | None
    hours: Annotated[str, msgspec.Meta(description="opening hours by weekday (docs/api-sites.md)")]
    holidays: Annotated[
        dict[str, str], msgspec.Meta(description="day or range of days → hours, or `closed`")
    ]


class SitePage(Schema):
    items: list[Site]
    next_cursor: Cursor


class Window(Schema):
    number: str
    name: str | None
    departments: list[str]


class Department(Schema):
    code: str
    name: str


class DepartmentPage(Schema):
    items: list[Department]
    next_cursor: Cursor


class SiteDetail(Site):
    node_name: str
    path: list[str]
    windows: list[Window]
    departments: list[Department]
    devices: int
    staff: int


class Staff(Schema):
    """A member of staff (工作人员); never a national ID number."""

    number: str
    name: str
    department: str
    site: str
    window: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class StaffPage(Schema):
    items: list[Staff]
    next_cursor: Cursor


# --- tokens and the audit log ------------------------------------------------------------------


class Token(Schema):
    id: int
    name: str
    prefix: str
    role: Role
    scope: Annotated[str | None, msgspec.Meta(description="the node code; null: the whole tree")]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: Annotated[str, msgspec.Meta(description="active, expired or revoked")]


class TokenPage(Schema):
    items: list[Token]
    next_cursor: Cursor


class IssuedToken(Token):
    token: Annotated[str, msgspec.Meta(description="the secret: shown here once, stored nowhere")]


class AuditEntry(Schema):
    id: int
    at: datetime
    actor: str
    actor_token_id: int | None
    action: str
    target_type: str
    target_id: str
    scope_path: str | None
    before: Any
    after: Any
    note: str | None


class AuditPage(Schema):
    items: list[AuditEntry]
    next_cursor: Cursor


# --- provisioning --------------------------------------------------------------------------------


class Claim(Schema):
    """A claim code's token: enrolls terminals at a site; never the code itself."""

    id: int
    prefix: Annotated[str, msgspec.Meta(description="the code's first symbols, to tell it apart")]
    site: str | None
    kind: Annotated[str, msgspec.Meta(description="the only kind it enrolls; empty: any")]
    uses: int
    max_uses: int
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    note: str
    device_id: Annotated[
        str | None, msgspec.Meta(description="the pre-registered terminal it enrolls, if any")
    ]
    state: Annotated[str, msgspec.Meta(description="active, used, expired or revoked")]


class ClaimPage(Schema):
    items: list[Claim]
    next_cursor: Cursor


class NewClaimCode(Schema):
    code: Annotated[str, msgspec.Meta(description="the claim code: shown here once, kept hashed")]
    link: Annotated[
        str | None,
        msgspec.Meta(
            description="the enrollment link (what a QR code holds), with the claim login's"
            " password; null when the server runs without the provisioning secret"
        ),
    ]
    claim: Claim


class SelfTest(Schema):
    command_id: str
    status: str
    detail: str
    checks: Annotated[dict[str, str], msgspec.Meta(description="check → `pass` or `fail: why`")]
    at: Annotated[datetime | None, msgspec.Meta(description="when the terminal ran it")]
    received_at: datetime


class Commissioning(Schema):
    """A terminal's enrollment and its last self-test (``termfleet provision status``)."""

    device_id: str
    kind: str
    serial: str
    lifecycle: Lifecycle
    site: str | None
    window: str | None
    enrolled_at: datetime | None
    credential_generation: Annotated[
        int, msgspec.Meta(description="of its broker password; each enrollment adds one")
    ]
    presence: str
    self_test: SelfTest | None
    failed_checks: list[str]


# --- statistics --------------------------------------------------------------------------------


class Line(Schema):
    """A line of figures and the group it counts; the total is a line without a group.

    The group has one key per dimension of ``by``, with its name (``stats_groups.group_of``).
    """

    level: Level | None = None
    site: str | None = None
    site_name: str | None = None
    node: str | None = None
    node_name: str | None = None
    department: str | None = None
    department_name: str | None = None
    item: str | None = None
    day: date | None = None
    month: str | None = None


class CaseLine(Line, kw_only=True):
    cases: int
    window_cases: int
    self_service_cases: int
    transactions_completed: int
    transactions_failed: int
    transactions_abandoned: int
    transactions_unknown: int
    pages_printed: int
    print_failures: int
    id_card_reads: int
    id_card_failures: int
    help_calls: int


class ReviewLine(Line, kw_only=True):
    reviews: int
    very_satisfied: int
    satisfied: int
    basic: int
    dissatisfied: int
    very_dissatisfied: int
    unknown: int
    bad_reviews: int
    satisfaction_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] | None


class StatsFilters(Schema):
    department: str | None
    item: str | None
    level: Level | None


class Stats(Schema):
    from_: Annotated[date, msgspec.Meta(description="the first day counted")] = msgspec.field(
        name="from"
    )
    to: date
    by: list[Dimension]
    node: str | None
    filters: StatsFilters
    rolled_up_at: Annotated[
        datetime | None, msgspec.Meta(description="when the roll-ups last counted new records")
    ]


class CaseStats(Stats):
    items: list[CaseLine]
    total: CaseLine


class ReviewStats(Stats):
    items: list[ReviewLine]
    total: ReviewLine
