"""Hourly, daily and monthly roll-ups of the records, for statistics kept longer than they.

Four new tables, the fourth the roll-up job's state; nothing existing changes. The job counts
the records already stored on its first run (its state starts at record 0).
"""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

COUNTERS = (
    "window_cases",
    "transactions_completed",
    "transactions_failed",
    "transactions_abandoned",
    "transactions_unknown",
    "pages_printed",
    "print_failures",
    "id_card_reads",
    "id_card_failures",
    "help_calls",
    "reviews_very_satisfied",
    "reviews_satisfied",
    "reviews_basic",
    "reviews_dissatisfied",
    "reviews_very_dissatisfied",
    "reviews_unknown",
)
"""The counter columns of both roll-up tables, as of this migration."""


def _counter_fields() -> list[tuple[str, fields.Field[int]]]:
    return [(name, fields.IntField(default=0)) for name in COUNTERS]


class Migration(migrations.Migration):
    dependencies = [("models", "0005_staff")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="HourlyRollup",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("hour", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("site_id", fields.IntField()),
                ("department", fields.CharField(default="", max_length=64)),
                ("item_code", fields.CharField(default="", max_length=64)),
                *_counter_fields(),
            ],
            options={
                "table": "rollup_hour",
                "app": "models",
                "unique_together": (("hour", "site_id", "department", "item_code"),),
                "pk_attr": "id",
                "table_description": (
                    "Counts of one UTC hour at one site for one department and service item."
                ),
            },
            bases=["RollupCounters"],
        ),
        ops.CreateModel(
            name="DailyRollup",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("day", fields.DateField()),
                ("site_id", fields.IntField()),
                ("department", fields.CharField(default="", max_length=64)),
                ("item_code", fields.CharField(default="", max_length=64)),
                *_counter_fields(),
            ],
            options={
                "table": "rollup_day",
                "app": "models",
                "unique_together": (("day", "site_id", "department", "item_code"),),
                "indexes": [Index(fields=["site_id", "day"])],
                "pk_attr": "id",
                "table_description": (
                    "Counts of one local calendar day at one site for one department and service"
                    " item."
                ),
            },
            bases=["RollupCounters"],
        ),
        ops.CreateModel(
            name="MonthlyRollup",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("month", fields.DateField()),
                ("site_id", fields.IntField()),
                ("department", fields.CharField(default="", max_length=64)),
                ("item_code", fields.CharField(default="", max_length=64)),
                *_counter_fields(),
            ],
            options={
                "table": "rollup_month",
                "app": "models",
                "unique_together": (("month", "site_id", "department", "item_code"),),
                "indexes": [Index(fields=["site_id", "month"])],
                "pk_attr": "id",
                "table_description": (
                    "Counts of one local calendar month at one site for one department and"
                    " service item."
                ),
            },
            bases=["RollupCounters"],
        ),
        ops.CreateModel(
            name="RollupState",
            fields=[
                (
                    "name",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32),
                ),
                ("last_record_id", fields.BigIntField(default=0)),
                (
                    "raw_kept_since",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "replay_from",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("replay_next_id", fields.BigIntField(default=0)),
                ("replay_until_id", fields.BigIntField(default=0)),
                ("replay_round", fields.BigIntField(default=0)),
                (
                    "rolled_up_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "rollup_state",
                "app": "models",
                "pk_attr": "name",
                "table_description": (
                    "Where the roll-up job stands: the records counted, pruned and being re-rolled."
                ),
            },
            bases=["Model"],
        ),
    ]
