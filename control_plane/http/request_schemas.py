"""What the REST API's routes take: query parameters and JSON bodies, for the OpenAPI document.

A query struct's fields are the route's parameters: ``openapi.py`` lists one parameter per field,
and ``declared_parameters`` is what the API refuses anything else against. Body structs forbid
unknown fields as the handlers do. The limits and patterns are the checking code's own constants,
so that the document cannot promise what the code refuses. The handlers check every value
themselves (``admin_bodies``, ``device_filters``, ``stats_query``) and name the field or
parameter in their 400s; these structs only describe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Annotated

import msgspec

from control_plane import (
    admin_bodies,
    device_admin,
    device_filters,
    inventory,
    jurisdiction,
    site_admin,
    stats_query,
    tokens,
)
from control_plane.auth import Role
from control_plane.device_labels import MAX_LABELS
from control_plane.jurisdiction import Level
from control_plane.lifecycle import Lifecycle
from control_plane.stats_query import MAX_PERIOD_DAYS, Dimension
from edge.protocol.common import ID_PATTERN
from edge.protocol.presence import DeviceKind
from provisioning import claim_store

from . import params


def exactly(pattern: re.Pattern[str] | str) -> str:
    """A JSON Schema pattern (which searches) for a Python pattern the code fullmatches."""
    text = pattern if isinstance(pattern, str) else pattern.pattern
    return rf"^(?:{text})$"


def one_of(values: Iterable[str]) -> str:
    return exactly("|".join(re.escape(value) for value in sorted(values)))


def text(max_length: int, description: str = "") -> msgspec.Meta:
    return msgspec.Meta(min_length=1, max_length=max_length, description=description or None)


NodeCode = Annotated[
    str, msgspec.Meta(pattern=exactly(jurisdiction.CODE), description="a 行政区划 code")
]
SiteCode = Annotated[str, msgspec.Meta(pattern=exactly(inventory.NAME), description="a site code")]
DepartmentCode = Annotated[
    str, msgspec.Meta(pattern=exactly(inventory.NAME), description="a department code")
]
DeviceId = Annotated[str, msgspec.Meta(pattern=exactly(ID_PATTERN), description="a device id")]
TokenId = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="a token's id")]
ClaimId = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1, description="a claim code's id")]
WindowNumber = Annotated[str, msgspec.Meta(pattern=exactly(inventory.NUMBER))]
StaffNumber = Annotated[str, msgspec.Meta(pattern=exactly(admin_bodies.STAFF_NUMBER))]
Name = Annotated[str, text(inventory.MAX_NAME)]
Limit = Annotated[
    int,
    msgspec.Meta(ge=1, le=params.MAX_LIMIT, description=f"page size [{params.DEFAULT_LIMIT}]"),
]
PageCursor = Annotated[
    str, msgspec.Meta(description="the `next_cursor` of the previous page, as it was given")
]


class Parameters(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of the routes' query parameters: every one optional unless it has no default."""


class Paged(Parameters):
    limit: Limit = params.DEFAULT_LIMIT
    cursor: PageCursor | None = None


# --- devices ----------------------------------------------------------------------------------


class DeviceListParameters(Paged):
    limit: Annotated[int, msgspec.Meta(ge=1, le=device_filters.MAX_LIMIT)] = (
        device_filters.DEFAULT_LIMIT
    )
    node: Annotated[NodeCode | None, msgspec.Meta(description="the node's subtree")] = None
    site: SiteCode | None = None
    kind: DeviceKind | None = None
    presence: Annotated[
        Annotated[str, msgspec.Meta(pattern=one_of(device_filters.PRESENCE_FILTERS))] | None,
        msgspec.Meta(description="a presence (online, offline, unknown) or an availability"),
    ] = None
    fault: Annotated[
        Annotated[str, msgspec.Meta(pattern=one_of(device_filters.FAULTS))] | None,
        msgspec.Meta(description="a peripheral kind with a fault, or `any`"),
    ] = None
    label: Annotated[
        list[str], msgspec.Meta(max_length=MAX_LABELS, description="`key=value`; repeatable")
    ] = msgspec.field(default_factory=list)
    q: Annotated[str, text(device_filters.MAX_TEXT, "text in the id, serial or site")] | None = None
    lifecycle: Lifecycle | None = None


class DeviceParameters(Parameters):
    records: Annotated[int, msgspec.Meta(ge=0, le=100, description="recent records [20]")] = 20


LabelsPatch = Annotated[
    dict[
        Annotated[str, msgspec.Meta(pattern=exactly(inventory.LABEL_KEY))],
        Annotated[str, msgspec.Meta(max_length=inventory.MAX_LABEL_VALUE)] | None,
    ],
    msgspec.Meta(description="a JSON merge patch (RFC 7396) of labels: a value sets, null removes"),
]


class Move(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    site: SiteCode
    window: WindowNumber | None = None


class Retire(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=inventory.MAX_TEXT)] | None = None


# --- the tree, sites, windows, departments, staff ---------------------------------------------


class NodeListParameters(Paged):
    parent: NodeCode | None = None


class NewNode(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: NodeCode
    name: Name
    level: Level
    parent: Annotated[NodeCode | None, msgspec.Meta(description="null for a root")]


class NodeRename(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name


class SiteListParameters(Paged):
    node: NodeCode | None = None
    level: Level | None = None
    q: Annotated[str, text(site_admin.MAX_QUERY_LENGTH)] | None = None


Hours = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=inventory.MAX_TEXT,
        description="opening hours by weekday: `Mon-Fri 09:00-12:00,13:30-17:30; Sat 09:00-12:00`",
    ),
]
Holidays = Annotated[
    dict[str, str] | str,
    msgspec.Meta(description="day or `FROM..TO` → hours or `closed`; or the same as text"),
]


class NewSite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: SiteCode
    name: Annotated[str, text(inventory.MAX_TEXT)]
    level: Level
    node: NodeCode
    hours: Hours
    address: Annotated[str, msgspec.Meta(max_length=inventory.MAX_TEXT)] | None = None
    holidays: Holidays | None = None


class SiteChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields to change; at least one."""

    name: Annotated[str, text(inventory.MAX_TEXT)] | None = None
    level: Level | None = None
    node: NodeCode | None = None
    hours: Hours | None = None
    address: Annotated[str, msgspec.Meta(max_length=inventory.MAX_TEXT)] | None = None
    holidays: Holidays | None = None


class WindowFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    departments: list[DepartmentCode] | None = None


class NewDepartment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: DepartmentCode
    name: Name


class StaffListParameters(Paged):
    site: SiteCode | None = None
    node: NodeCode | None = None
    department: DepartmentCode | None = None
    active: bool | None = None


StaffName = Annotated[str, text(admin_bodies.MAX_STAFF_NAME)]


class NewStaff(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    number: StaffNumber
    name: StaffName
    department: DepartmentCode
    site: SiteCode
    window: WindowNumber | None = None
    active: bool = True


class StaffChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The fields to change; at least one. ``window`` null unbinds."""

    name: StaffName | None = None
    department: DepartmentCode | None = None
    site: SiteCode | None = None
    window: WindowNumber | None = None
    active: bool | None = None


# --- provisioning --------------------------------------------------------------------------------


class NewClaim(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    site: Annotated[SiteCode, msgspec.Meta(description="terminals enrolled with it go there")]
    kind: Annotated[
        Annotated[str, msgspec.Meta(pattern=one_of(claim_store.KINDS))] | None,
        msgspec.Meta(description="only terminals of this kind [any]"),
    ] = None
    uses: Annotated[
        int, msgspec.Meta(ge=1, le=claim_store.MAX_USES, description="terminals it enrolls")
    ] = 1
    expires_in_hours: Annotated[int, msgspec.Meta(ge=1, le=claim_store.MAX_API_EXPIRY_HOURS)] = (
        claim_store.DEFAULT_EXPIRY_HOURS
    )
    note: (
        Annotated[str, msgspec.Meta(max_length=inventory.MAX_TEXT, description="why, for whom")]
        | None
    ) = None


class Acceptance(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    note: (
        Annotated[
            str, msgspec.Meta(max_length=device_admin.MAX_NOTE, description="kept in the audit log")
        ]
        | None
    ) = None
    force: Annotated[
        bool, msgspec.Meta(description="accept although checks failed (needs a note)")
    ] = False


# --- tokens, audit, statistics -----------------------------------------------------------------


class NewToken(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, text(tokens.MAX_NAME_LENGTH)]
    role: Role
    scope: Annotated[
        NodeCode | None,
        msgspec.Meta(description="a node's code; null: the whole tree; absent: the issuer's scope"),
    ] = None
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=admin_bodies.MAX_TOKEN_DAYS)] | None = (
        None
    )
    replace: Annotated[bool, msgspec.Meta(description="revoke a token of the same name")] = False


class AuditParameters(Parameters):
    limit: Limit = params.DEFAULT_LIMIT
    cursor: Annotated[
        Annotated[int, msgspec.Meta(ge=1)] | None,
        msgspec.Meta(description="the previous page's next_cursor"),
    ] = None


class StatsParameters(Parameters):
    by: Annotated[
        list[Dimension], msgspec.Meta(description="group by these, in order; repeat or join by ,")
    ] = msgspec.field(default_factory=list)
    from_: Annotated[
        date | None,
        msgspec.Meta(description=f"the first day [to - 29]; at most {MAX_PERIOD_DAYS} days in all"),
    ] = msgspec.field(default=None, name="from")
    to: Annotated[date | None, msgspec.Meta(description="the last day [today]")] = None
    node: Annotated[NodeCode | None, msgspec.Meta(description="the node's subtree")] = None
    department: Annotated[str, text(stats_query.MAX_CODE_LENGTH)] | None = None
    item: Annotated[str, text(stats_query.MAX_CODE_LENGTH)] | None = None
    level: Level | None = None
