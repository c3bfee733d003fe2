"""The 好差评 tables: reviews, cases, work orders, review policies and the pads' hash chains.

One review per case, the cases the pads were told of, bad-review work orders with their
history, review policies per jurisdiction, and where each pad's hash chain was checked.

Re-exported by ``models.py``, where tortoise finds every model. Migration ``0012_reviews``
creates the tables. The pure rules live in ``control_plane.reviews``; ``review_store`` and the
modules beside it read and write these rows.

Sites, windows and devices are plain columns, not foreign keys: a review outlives the placement
of the pad that took it, as the roll-ups outlive the sites they name.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class ReviewRow(Model):
    """One rating of one handled case (办件): at most one per case number.

    ``source`` is ``terminal`` (a pad's or kiosk's record; ``device_id``/``seq`` name it and
    ``payload`` keeps it as sent, for the hash chain) or ``default`` (基本满意 recorded because
    the case was not rated in time; no device). ``site_id``/``window_id`` are where the device
    stood when the review arrived (or the case's, for a default). ``voided_at`` is set when an
    appeal against the rating is upheld (申诉成立): it no longer counts for scores.
    ``chain_checked`` is False until the pad's hash chain has been checked up to it.
    """

    id = fields.BigIntField(primary_key=True)
    case_number = fields.CharField(max_length=64, unique=True)
    source = fields.CharField(max_length=16)
    device_id = fields.CharField(max_length=64, default="")
    seq = fields.BigIntField(null=True)
    rating = fields.CharField(max_length=24)
    channel = fields.CharField(max_length=16)
    indicators: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    comment = fields.TextField(default="")
    item_code = fields.CharField(max_length=64, default="")
    department = fields.CharField(max_length=64, default="")
    window_number = fields.CharField(max_length=16, default="")
    staff_id = fields.CharField(max_length=64, default="")
    citizen_ref = fields.CharField(max_length=128, default="")
    site_id = fields.IntField(null=True)
    window_id = fields.IntField(null=True)
    rated_at = fields.DatetimeField()
    received_at = fields.DatetimeField()
    payload = fields.TextField(default="")
    chain_checked = fields.BooleanField(default=False)
    voided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "review"
        unique_together = (("device_id", "seq"),)
        indexes = (("rated_at",), ("site_id", "rated_at"), ("chain_checked", "device_id"))


class ReviewRefusal(Model):
    """A refused rating: a second one for a rated case, or one after the case's default.

    Kept, not dropped, so the count survives restarts and an operator can see what the pad sent;
    one row per device record, so a record delivered twice is refused once. A refused rating is
    still a link of the pad's hash chain, so it is checked with the pad's reviews.
    """

    id = fields.BigIntField(primary_key=True)
    device_id = fields.CharField(max_length=64)
    seq = fields.BigIntField()
    case_number = fields.CharField(max_length=64)
    reason = fields.CharField(max_length=16)
    rating = fields.CharField(max_length=24)
    received_at = fields.DatetimeField()
    payload = fields.TextField()
    chain_checked = fields.BooleanField(default=False)

    class Meta:
        table = "review_refusal"
        unique_together = (("device_id", "seq"),)
        indexes = (("received_at",), ("chain_checked", "device_id"))


class ReviewCase(Model):
    """A case (办件) ended at a window, whose pad was told to ask for a rating.

    ``notified_at`` is when the notice was handed to the broker (None: not yet; it goes out once
    the control plane is connected). ``rate_by`` is when the rating period (Guangdong: 7 natural
    days) ends; a case still unrated then gets a 基本满意 default review (``defaulted_at``).
    """

    case_number = fields.CharField(max_length=64, primary_key=True)
    device_id = fields.CharField(max_length=64)
    site_id = fields.IntField(null=True)
    window_id = fields.IntField(null=True)
    window_number = fields.CharField(max_length=16, default="")
    item_code = fields.CharField(max_length=64, default="")
    item_name = fields.CharField(max_length=255, default="")
    department = fields.CharField(max_length=64, default="")
    staff_id = fields.CharField(max_length=64, default="")
    ended_at = fields.DatetimeField()
    notified_at = fields.DatetimeField(null=True)
    rate_by = fields.DatetimeField()
    defaulted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "review_case"
        indexes = (("rate_by",),)


class WorkOrderRow(Model):
    """The work order a bad review (差评) opened, as the pure workorders module models it.

    ``control_plane.reviews.workorders`` holds the rules. ``due`` is the local date it must be
    closed by, in working days from the day it opened on the calendar (``due_provisional``: a
    year without calendar data was counted by weekends). ``state`` and the columns after it
    mirror ``WorkOrder``; ``WorkOrderEvent`` rows hold every transition.
    """

    id = fields.BigIntField(primary_key=True)
    review: fields.OneToOneRelation[ReviewRow] = fields.OneToOneField(
        "models.ReviewRow", related_name="work_order", on_delete=fields.RESTRICT
    )
    review_id: int
    case_number = fields.CharField(max_length=64)
    site_id = fields.IntField(null=True)
    department = fields.CharField(max_length=64, default="")
    window_number = fields.CharField(max_length=16, default="")
    staff_id = fields.CharField(max_length=64, default="")
    rating = fields.CharField(max_length=24)
    opened_at = fields.DatetimeField()
    due = fields.DateField()
    deadline_working_days = fields.IntField()
    due_provisional = fields.BooleanField(default=False)
    state = fields.CharField(max_length=16)
    fix_by = fields.DateField(null=True)
    appealed_from = fields.CharField(max_length=16, null=True)
    voided = fields.BooleanField(default=False)
    closed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "work_order"
        indexes = (("site_id", "state"), ("state", "due"), ("opened_at",))


class WorkOrderEvent(Model):
    """One transition of a work order: who, in what role, when, what and the note."""

    id = fields.BigIntField(primary_key=True)
    work_order: fields.ForeignKeyRelation[WorkOrderRow] = fields.ForeignKeyField(
        "models.WorkOrderRow", related_name="events", on_delete=fields.CASCADE
    )
    work_order_id: int
    at = fields.DatetimeField()
    actor = fields.CharField(max_length=128)
    role = fields.CharField(max_length=16)
    action = fields.CharField(max_length=16)
    from_state = fields.CharField(max_length=16)
    to_state = fields.CharField(max_length=16)
    note = fields.TextField(default="")
    outcome = fields.CharField(max_length=16, null=True)
    fix_by = fields.DateField(null=True)

    class Meta:
        table = "work_order_event"
        indexes = (("work_order_id", "at"),)


class ReviewPolicy(Model):
    """A jurisdiction's 好差评 rules, for its subtree unless a deeper node has its own.

    ``deadline_working_days``: a bad review's work order is due this many working days after
    it opened (5 by default; 15 is seen too). ``rate_within_days``: natural days a citizen has
    to rate a case before it counts as 基本满意 (Guangdong: 7).
    """

    node_code = fields.CharField(max_length=12, primary_key=True)
    deadline_working_days = fields.IntField()
    rate_within_days = fields.IntField()
    updated_at = fields.DatetimeField()
    updated_by = fields.CharField(max_length=128)

    class Meta:
        table = "review_policy"


class ReviewChainTip(Model):
    """Where a pad's hash chain was checked up to: the last checked review's seq and hash."""

    device_id = fields.CharField(max_length=64, primary_key=True)
    seq = fields.BigIntField()
    hash = fields.CharField(max_length=64)
    checked_at = fields.DatetimeField()

    class Meta:
        table = "review_chain_tip"


class ReviewChainProblem(Model):
    """A break in a pad's hash chain (the alarm): the review, the kind, expected and found."""

    id = fields.BigIntField(primary_key=True)
    device_id = fields.CharField(max_length=64)
    seq = fields.BigIntField()
    kind = fields.CharField(max_length=16)
    expected = fields.CharField(max_length=64)
    found = fields.CharField(max_length=64)
    found_at = fields.DatetimeField()
    detail: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "review_chain_problem"
        unique_together = (("device_id", "seq", "kind"),)
        indexes = (("found_at",),)
