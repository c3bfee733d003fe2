"""Staff (工作人员): the people at service windows whom review pads and reviews are bound to.

Re-exported by ``models.py``, where tortoise finds every model. Migration ``0005_staff`` creates
the table. No column holds a national ID number (``edge.national_id`` says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:  # models.py imports this module at its end: no import cycle at run time
    from .models import Department, ServiceWindow, Site


class Staff(Model):
    """A member of staff of a department, working at a site, maybe at one of its windows.

    Known by a staff number (工号), unique across the tree. Staff are deactivated, never deleted,
    so that reviews bound to them stay attributable. RESTRICT everywhere: a site, window or
    department with staff on it cannot be deleted from under them.
    """

    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=64)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="staff", on_delete=fields.RESTRICT
    )
    department_id: int
    site: fields.ForeignKeyRelation[Site] = fields.ForeignKeyField(
        "models.Site", related_name="staff", on_delete=fields.RESTRICT
    )
    site_id: int
    window: fields.ForeignKeyNullableRelation[ServiceWindow] = fields.ForeignKeyField(
        "models.ServiceWindow", null=True, related_name="staff", on_delete=fields.RESTRICT
    )
    window_id: int | None
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "staff"
        # In Meta, by column name, as docs/development.md asks of every index.
        indexes = (("site_id",), ("department_id",), ("window_id",))
