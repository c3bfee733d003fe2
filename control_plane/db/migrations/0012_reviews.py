"""好差评: reviews, refused ratings, cases, work orders, policies and the pads' hash chains.

Eight new tables; nothing existing changes.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0011_rollouts")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="ReviewCase",
            fields=[
                (
                    "case_number",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64),
                ),
                ("device_id", fields.CharField(max_length=64)),
                ("site_id", fields.IntField(null=True)),
                ("window_id", fields.IntField(null=True)),
                ("window_number", fields.CharField(default="", max_length=16)),
                ("item_code", fields.CharField(default="", max_length=64)),
                ("item_name", fields.CharField(default="", max_length=255)),
                ("department", fields.CharField(default="", max_length=64)),
                ("staff_id", fields.CharField(default="", max_length=64)),
                ("ended_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "notified_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("rate_by", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "defaulted_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "review_case",
                "app": "models",
                "indexes": [Index(fields=["rate_by"])],
                "pk_attr": "case_number",
                "table_description": (
                    "A case (办件) ended at a window, whose pad was told to ask for a rating."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ReviewChainProblem",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("device_id", fields.CharField(max_length=64)),
                ("seq", fields.BigIntField()),
                ("kind", fields.CharField(max_length=16)),
                ("expected", fields.CharField(max_length=64)),
                ("found", fields.CharField(max_length=64)),
                ("found_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "detail",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
            ],
            options={
                "table": "review_chain_problem",
                "app": "models",
                "unique_together": (("device_id", "seq", "kind"),),
                "indexes": [Index(fields=["found_at"])],
                "pk_attr": "id",
                "table_description": (
                    "A break in a pad's hash chain (the alarm): the review, the kind, "
                    "expected and found."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ReviewChainTip",
            fields=[
                (
                    "device_id",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64),
                ),
                ("seq", fields.BigIntField()),
                ("hash", fields.CharField(max_length=64)),
                ("checked_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "review_chain_tip",
                "app": "models",
                "pk_attr": "device_id",
                "table_description": (
                    "Where a pad's hash chain was checked up to: the last checked review's "
                    "seq and hash."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ReviewPolicy",
            fields=[
                (
                    "node_code",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=12),
                ),
                ("deadline_working_days", fields.IntField()),
                ("rate_within_days", fields.IntField()),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_by", fields.CharField(max_length=128)),
            ],
            options={
                "table": "review_policy",
                "app": "models",
                "pk_attr": "node_code",
                "table_description": (
                    "A jurisdiction's 好差评 rules, for its subtree unless a deeper node has "
                    "its own."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ReviewRefusal",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("device_id", fields.CharField(max_length=64)),
                ("seq", fields.BigIntField()),
                ("case_number", fields.CharField(max_length=64)),
                ("reason", fields.CharField(max_length=16)),
                ("rating", fields.CharField(max_length=24)),
                ("received_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("payload", fields.TextField(unique=False)),
                ("chain_checked", fields.BooleanField(default=False)),
            ],
            options={
                "table": "review_refusal",
                "app": "models",
                "unique_together": (("device_id", "seq"),),
                "indexes": [
                    Index(fields=["received_at"]),
                    Index(fields=["chain_checked", "device_id"]),
                ],
                "pk_attr": "id",
                "table_description": (
                    "A refused rating: a second one for a rated case, or one after the "
                    "case's default."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ReviewRow",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("case_number", fields.CharField(unique=True, max_length=64)),
                ("source", fields.CharField(max_length=16)),
                ("device_id", fields.CharField(default="", max_length=64)),
                ("seq", fields.BigIntField(null=True)),
                ("rating", fields.CharField(max_length=24)),
                ("channel", fields.CharField(max_length=16)),
                (
                    "indicators",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("comment", fields.TextField(default="", unique=False)),
                ("item_code", fields.CharField(default="", max_length=64)),
                ("department", fields.CharField(default="", max_length=64)),
                ("window_number", fields.CharField(default="", max_length=16)),
                ("staff_id", fields.CharField(default="", max_length=64)),
                ("citizen_ref", fields.CharField(default="", max_length=128)),
                ("site_id", fields.IntField(null=True)),
                ("window_id", fields.IntField(null=True)),
                ("rated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("received_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("payload", fields.TextField(default="", unique=False)),
                ("chain_checked", fields.BooleanField(default=False)),
                ("voided_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "review",
                "app": "models",
                "unique_together": (("device_id", "seq"),),
                "indexes": [
                    Index(fields=["rated_at"]),
                    Index(fields=["site_id", "rated_at"]),
                    Index(fields=["chain_checked", "device_id"]),
                ],
                "pk_attr": "id",
                "table_description": (
                    "One rating of one handled case (办件): at most one per case number."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="WorkOrderRow",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "review",
                    fields.OneToOneField(
                        "models.ReviewRow",
                        source_field="review_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="work_order",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("case_number", fields.CharField(max_length=64)),
                ("site_id", fields.IntField(null=True)),
                ("department", fields.CharField(default="", max_length=64)),
                ("window_number", fields.CharField(default="", max_length=16)),
                ("staff_id", fields.CharField(default="", max_length=64)),
                ("rating", fields.CharField(max_length=24)),
                ("opened_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("due", fields.DateField()),
                ("deadline_working_days", fields.IntField()),
                ("due_provisional", fields.BooleanField(default=False)),
                ("state", fields.CharField(max_length=16)),
                ("fix_by", fields.DateField(null=True)),
                ("appealed_from", fields.CharField(null=True, max_length=16)),
                ("voided", fields.BooleanField(default=False)),
                ("closed_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "work_order",
                "app": "models",
                "indexes": [
                    Index(fields=["site_id", "state"]),
                    Index(fields=["state", "due"]),
                    Index(fields=["opened_at"]),
                ],
                "pk_attr": "id",
                "table_description": (
                    "The work order a bad review (差评) opened, as the pure workorders module"
                    " models it."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="WorkOrderEvent",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "work_order",
                    fields.ForeignKeyField(
                        "models.WorkOrderRow",
                        source_field="work_order_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="events",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("actor", fields.CharField(max_length=128)),
                ("role", fields.CharField(max_length=16)),
                ("action", fields.CharField(max_length=16)),
                ("from_state", fields.CharField(max_length=16)),
                ("to_state", fields.CharField(max_length=16)),
                ("note", fields.TextField(default="", unique=False)),
                ("outcome", fields.CharField(null=True, max_length=16)),
                ("fix_by", fields.DateField(null=True)),
            ],
            options={
                "table": "work_order_event",
                "app": "models",
                "indexes": [Index(fields=["work_order_id", "at"])],
                "pk_attr": "id",
                "table_description": (
                    "One transition of a work order: who, in what role, when, what and the note."
                ),
            },
            bases=["Model"],
        ),
    ]
