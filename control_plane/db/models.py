"""Tables: devices and their records, where devices live, API tokens and the audit log.

Every change to a model needs a migration in ``control_plane/db/migrations/`` (see
docs/development.md); ``tests/test_migrations.py`` fails when the two drift apart.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class JurisdictionNode(Model):
    """One node of the jurisdiction tree (省 → 市 → 区/县 → 镇/街 → 村/居) by its 行政区划 code.

    ``path`` holds the codes from the root down to this node (``/44/4401/440117/``), so a
    subtree is one indexed range of paths (``control_plane.jurisdiction.subtree_range``).
    """

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=12, unique=True)
    name = fields.CharField(max_length=128)
    level = fields.CharField(max_length=16)
    parent: fields.ForeignKeyNullableRelation[JurisdictionNode] = fields.ForeignKeyField(
        "models.JurisdictionNode", null=True, related_name="children", on_delete=fields.RESTRICT
    )
    parent_id: int | None
    path = fields.CharField(max_length=255, unique=True)

    class Meta:
        table = "jurisdiction"
        indexes = (("parent_id",),)


class Department(Model):
    """An approving department (审批部门) that service windows serve for."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)

    class Meta:
        table = "department"


class Site(Model):
    """A hall (政务服务中心) or village service station, hung off a node of the tree.

    ``hours`` is the weekly schedule as ``edge.schedule`` reads it; ``holidays`` maps
    ISO dates to the spans of that day (``"closed"`` or ``"09:00-12:00"``), overriding the week.
    """

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=255)
    level = fields.CharField(max_length=16)
    node: fields.ForeignKeyRelation[JurisdictionNode] = fields.ForeignKeyField(
        "models.JurisdictionNode", related_name="sites", on_delete=fields.RESTRICT
    )
    node_id: int
    address = fields.CharField(max_length=255, default="")
    hours = fields.CharField(max_length=255)
    holidays: fields.Field[dict[str, str]] = fields.JSONField(default=dict)

    class Meta:
        table = "site"
        indexes = (("node_id",),)


class ServiceWindow(Model):
    """A service window (窗口) of a site, by its number there (``"01"``, ``"A12"``)."""

    id = fields.IntField(primary_key=True)
    site: fields.ForeignKeyRelation[Site] = fields.ForeignKeyField(
        "models.Site", related_name="windows", on_delete=fields.CASCADE
    )
    site_id: int
    number = fields.CharField(max_length=16)
    name = fields.CharField(max_length=128, default="")

    class Meta:
        table = "service_window"
        unique_together = (("site", "number"),)


class WindowDepartment(Model):
    """A department a window serves (a window may serve several: 综合窗口)."""

    id = fields.IntField(primary_key=True)
    window: fields.ForeignKeyRelation[ServiceWindow] = fields.ForeignKeyField(
        "models.ServiceWindow", related_name="departments", on_delete=fields.CASCADE
    )
    window_id: int
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="windows", on_delete=fields.RESTRICT
    )
    department_id: int

    class Meta:
        table = "window_department"
        unique_together = (("window", "department"),)


class Device(Model):
    """One terminal and its last known presence and health."""

    device_id = fields.CharField(max_length=64, primary_key=True)
    kind = fields.CharField(max_length=32, default="unknown")
    presence = fields.CharField(max_length=16, default="unknown")
    presence_session = fields.BigIntField(default=0)
    agent_version = fields.CharField(max_length=64, default="")
    first_seen = fields.DatetimeField(auto_now_add=True)
    last_seen = fields.DatetimeField(null=True)
    last_health: fields.Field[dict[str, object] | None] = fields.JSONField(null=True)
    site: fields.ForeignKeyNullableRelation[Site] = fields.ForeignKeyField(
        "models.Site", null=True, related_name="devices", on_delete=fields.SET_NULL
    )
    site_id: int | None
    window: fields.ForeignKeyNullableRelation[ServiceWindow] = fields.ForeignKeyField(
        "models.ServiceWindow", null=True, related_name="devices", on_delete=fields.SET_NULL
    )
    window_id: int | None
    # Columns added to a table that has rows need a default in the database too (db_default).
    serial = fields.CharField(max_length=64, default="", db_default="")
    labels: fields.Field[dict[str, str]] = fields.JSONField(default=dict, db_default={})
    lifecycle = fields.CharField(max_length=16, default="registered", db_default="registered")
    # Provisioning: the generation of its broker password (0: it has none; each re-enrollment
    # adds one, so the old password dies), when it last enrolled, until when an administrator
    # allows it to enroll again, and the results of its commissioning self-test.
    broker_generation = fields.IntField(default=0, db_default=0)
    enrolled_at = fields.DatetimeField(null=True)
    reenroll_until = fields.DatetimeField(null=True)
    self_test: fields.Field[dict[str, object]] = fields.JSONField(default=dict, db_default={})

    class Meta:
        table = "device"
        # Indexes go in Meta: tortoise's AddField ignores a field's db_index.
        indexes = (("site_id",), ("window_id",), ("serial",))


class StoredRecord(Model):
    """One usage, review or event record, stored exactly once per (device_id, seq).

    ``payload`` keeps the record as the device sent it (JSON text): typed tables for reviews and
    usage statistics are built from it by the issues that need them, and nothing is lost meanwhile.
    """

    id = fields.BigIntField(primary_key=True)
    device_id = fields.CharField(max_length=64)
    seq = fields.BigIntField()
    channel = fields.CharField(max_length=16)
    type = fields.CharField(max_length=32)
    device_time = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField()
    payload = fields.TextField()

    class Meta:
        table = "record"
        unique_together = (("device_id", "seq"),)


class RejectedMessage(Model):
    """Uplink bytes that could not be stored as sent, kept for an operator (dead letters)."""

    id = fields.BigIntField(primary_key=True)
    topic = fields.CharField(max_length=255)
    device_id = fields.CharField(max_length=64, null=True)
    seq = fields.BigIntField(null=True)
    reason = fields.CharField(max_length=32)
    detail = fields.TextField()
    payload = fields.TextField()
    received_at = fields.DatetimeField()

    class Meta:
        table = "rejected_message"


class ApiToken(Model):
    """A bearer token of the REST API: a role, scoped to a subtree of the jurisdiction tree.

    Only the token's SHA-256 is kept (``control_plane.auth.secret_hash`` says why that is
    enough); ``prefix`` is its first characters, to tell tokens apart in listings. A token is
    never deleted, only revoked, so the audit log's actors stay resolvable.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    role = fields.CharField(max_length=16)
    # RESTRICT: deleting a node must not widen its tokens to the whole tree (SET_NULL would).
    scope: fields.ForeignKeyNullableRelation[JurisdictionNode] = fields.ForeignKeyField(
        "models.JurisdictionNode", null=True, related_name="tokens", on_delete=fields.RESTRICT
    )
    scope_id: int | None
    secret_hash = fields.CharField(max_length=64, unique=True)
    prefix = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"
        indexes = (("scope_id",), ("name",), ("prefix",))


class AuditEntry(Model):
    """One change to termfleet's data: who, what, when, the target before and after.

    ``actor_token_id`` is a plain column, not a foreign key: the log is append-only and must
    outlive what it names. ``scope_path`` is the jurisdiction path the target lay in (None:
    global), so a scoped auditor reads the entries of its subtree.
    """

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField()
    actor_token_id = fields.IntField(null=True)
    actor_name = fields.CharField(max_length=128)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=32)
    target_id = fields.CharField(max_length=128)
    scope_path = fields.CharField(max_length=255, null=True)
    before: fields.Field[dict[str, object] | None] = fields.JSONField(null=True)
    after: fields.Field[dict[str, object] | None] = fields.JSONField(null=True)
    note = fields.TextField(default="")

    class Meta:
        table = "audit_log"
        indexes = (("target_type", "target_id"), ("scope_path",))


from .catalog_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    CatalogEdition,
    CatalogItem,
)
from .content_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    ContentPackage,
)
from .inventory_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    AgentInventory,
    DeviceLabel,
    PeripheralInventory,
)
from .provisioning_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    ClaimToken,
)
from .review_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    ReviewCase,
    ReviewChainProblem,
    ReviewChainTip,
    ReviewPolicy,
    ReviewRefusal,
    ReviewRow,
    WorkOrderEvent,
    WorkOrderRow,
)
from .rollout_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    DevicePackage,
    Rollout,
    RolloutDevice,
)
from .rollup_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    DailyRollup,
    HourlyRollup,
    MonthlyRollup,
    RollupState,
)
from .staff_models import Staff  # noqa: E402, F401 - re-exported: tortoise finds models here
from .twin_models import (  # noqa: E402, F401 - re-exported: tortoise finds models here
    ConfigLayer,
    ConfigRevision,
    DeviceTwin,
)
