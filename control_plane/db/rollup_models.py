"""Tables of the statistics: hourly, daily and monthly roll-ups, and where the job stands.

The roll-up job (``control_plane.rollups``) counts each usage and review record once into the
row of its hour, site, department and service item, and into the same key's rows of its day
and month; statistics read whole months from the monthly rows and the days around them from
the daily rows. The counters are the fields of ``control_plane.rollup_counts
.Counts``; ``tests/test_rollups.py`` checks that the two name the same columns.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class RollupCounters(Model):
    """The counters every roll-up row holds (an abstract model: no table of its own)."""

    window_cases = fields.IntField(default=0)
    transactions_completed = fields.IntField(default=0)
    transactions_failed = fields.IntField(default=0)
    transactions_abandoned = fields.IntField(default=0)
    transactions_unknown = fields.IntField(default=0)
    pages_printed = fields.IntField(default=0)
    print_failures = fields.IntField(default=0)
    id_card_reads = fields.IntField(default=0)
    id_card_failures = fields.IntField(default=0)
    help_calls = fields.IntField(default=0)
    reviews_very_satisfied = fields.IntField(default=0)
    reviews_satisfied = fields.IntField(default=0)
    reviews_basic = fields.IntField(default=0)
    reviews_dissatisfied = fields.IntField(default=0)
    reviews_very_dissatisfied = fields.IntField(default=0)
    reviews_unknown = fields.IntField(default=0)

    class Meta:
        abstract = True


class HourlyRollup(RollupCounters):
    """Counts of one UTC hour at one site for one department and service item.

    ``site_id`` is a plain column, not a foreign key: roll-ups outlive the sites they name, as
    the audit log outlives its actors; 0 stands for devices placed at no site. ``department``
    and ``item_code`` are empty for what no item is named on (prints, ID-card reads, help calls).
    """

    id = fields.BigIntField(primary_key=True)
    hour = fields.DatetimeField()
    site_id = fields.IntField()
    department = fields.CharField(max_length=64, default="")
    item_code = fields.CharField(max_length=64, default="")

    class Meta:
        table = "rollup_hour"
        # Its leading column serves retention and re-rolls, which go by hour.
        unique_together = (("hour", "site_id", "department", "item_code"),)


class DailyRollup(RollupCounters):
    """Counts of one local calendar day at one site for one department and service item.

    The sum of the day's hourly rows (the day in the statistics' time zone); what the
    statistics API reads, so that a year is 365 rows per key instead of 8,760.
    """

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()
    site_id = fields.IntField()
    department = fields.CharField(max_length=64, default="")
    item_code = fields.CharField(max_length=64, default="")

    class Meta:
        table = "rollup_day"
        unique_together = (("day", "site_id", "department", "item_code"),)
        # A subtree's figures: the days of each of its sites.
        indexes = (("site_id", "day"),)


class MonthlyRollup(RollupCounters):
    """Counts of one local calendar month at one site for one department and service item.

    ``month`` is the month's first day. The sum of the month's daily rows: a year of a site is
    12 rows per key instead of 365, so that a district's year reads a few tens of thousands of
    rows, not a few hundred thousand (bench/api_stats.py measured both).
    """

    id = fields.BigIntField(primary_key=True)
    month = fields.DateField()
    site_id = fields.IntField()
    department = fields.CharField(max_length=64, default="")
    item_code = fields.CharField(max_length=64, default="")

    class Meta:
        table = "rollup_month"
        unique_together = (("month", "site_id", "department", "item_code"),)
        indexes = (("site_id", "month"),)


class RollupState(Model):
    """Where the roll-up job stands: the records counted, pruned and being re-rolled.

    Records with ``id <= last_record_id`` are counted. Records received before
    ``raw_kept_since`` may have been deleted, so no hour before it can be re-rolled. While a
    re-roll runs, the records in ``(replay_next_id, replay_until_id]`` whose hour is at or after
    ``replay_from`` are still to be counted again; ``replay_round`` tells re-rolls apart, so
    that a step of one that was superseded cannot land.
    """

    name = fields.CharField(max_length=32, primary_key=True)
    last_record_id = fields.BigIntField(default=0)
    raw_kept_since = fields.DatetimeField(null=True)
    replay_from = fields.DatetimeField(null=True)
    replay_next_id = fields.BigIntField(default=0)
    replay_until_id = fields.BigIntField(default=0)
    replay_round = fields.BigIntField(default=0)
    rolled_up_at = fields.DatetimeField(null=True)

    class Meta:
        table = "rollup_state"
