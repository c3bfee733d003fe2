"""The names, help texts and labels of every metric termfleet exposes.

The control plane exposes them and dashboards and alert rules refer to them; this module is
where they are named. Labels are bounded by design (device kind, presence, channel, reason):
per-device detail belongs in the API, not in Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    help: str
    labels: tuple[str, ...] = ()


DEVICES = MetricSpec(
    "termfleet_devices",
    "Terminals known to the control plane, by kind and presence: online, offline_expected (its "
    "site is closed), offline_unexpected, unknown.",
    ("kind", "presence"),
)
INGEST_MESSAGES = MetricSpec(
    "termfleet_ingest_messages_total",
    "Uplink messages decoded and handled by the ingest, by channel.",
    ("channel",),
)
INGEST_REJECTED = MetricSpec(
    "termfleet_ingest_rejected_total",
    "Uplink messages refused by the ingest, by reason (topic, json, schema, version, ...).",
    ("reason",),
)
INGEST_ERRORS = MetricSpec(
    "termfleet_ingest_errors_total",
    "Well-formed uplink messages the ingest failed to store (database errors). A record's comes "
    "again from the broker after the ingest reconnects; a state update is retried by the "
    "device's next message.",
)
INGEST_RECORDS = MetricSpec(
    "termfleet_ingest_records_total",
    "Usage, review and event records committed by the ingest (duplicates included).",
)
INGEST_COMMIT_SECONDS = MetricSpec(
    "termfleet_ingest_commit_seconds",
    "Time to commit one batch of records to the database.",
)
MQTT_CONNECTED = MetricSpec(
    "termfleet_mqtt_connected",
    "1 while the control plane's ingest is connected to the broker.",
)
ENROLLMENTS = MetricSpec(
    "termfleet_enrollments_total",
    "Claim requests answered by the claim service, by outcome: accepted, or the refusal reason "
    "(unknown, expired, used, rate_limited, already_enrolled, retired, wrong_kind, wrong_serial, "
    "invalid, unavailable).",
    ("outcome",),
)
BROKER_DRIFT = MetricSpec(
    "termfleet_broker_drift",
    "Differences between the broker's logins and roles and the database found by the last "
    "reconcile (then repaired), by kind: missing_client, missing_role, acl, client_role, "
    "clientid, disabled, retired_present, unknown.",
    ("kind",),
)
BROKER_FILE_IN_STEP = MetricSpec(
    "termfleet_broker_login_file_in_step",
    "1 when the broker's dynamic-security file holds the logins the broker has in memory, 0 when "
    "it does not (the broker could not save it: a restart would lose or lock out logins); "
    "absent when the control plane cannot read the file.",
)
BROKER_SAVE_FAILURES = MetricSpec(
    "termfleet_broker_save_failures_total",
    "Failed saves of its login file that the broker's error log reported.",
)
BROKER_RECONCILES = MetricSpec(
    "termfleet_broker_reconciles_total",
    "Reconciles of the broker's logins with the database, by result: ok, or failed.",
    ("result",),
)
CATALOG_ITEMS = MetricSpec(
    "termfleet_catalog_items",
    "Items of their installed service-item catalog that online terminals can serve now, summed "
    "over the terminals (an item on 10 terminals counts 10), by level: full, query_only (can "
    "query, cannot complete), unavailable (cannot even query), not_effective, not_offered.",
    ("level",),
)
CATALOG_ITEMS_UNAVAILABLE = MetricSpec(
    "termfleet_catalog_items_unavailable",
    "Items online terminals cannot complete now, summed over the terminals, by level "
    "(query_only, unavailable) and the peripheral kind no working peripheral provides; an item "
    "that misses two kinds counts under each.",
    ("level", "peripheral_kind"),
)
CONTENT_DOWNLOADS = MetricSpec(
    "termfleet_content_downloads_total",
    "Package download requests answered, by result: complete (200), partial (206), refused "
    "(403: an expired, forged or another device's URL), not_found, unsatisfiable (416), cut (the "
    "connection closed mid-way).",
    ("result",),
)
CONTENT_BYTES_SENT = MetricSpec(
    "termfleet_content_bytes_sent_total",
    "Bytes of package files sent in answers that were not cut off.",
)
CONFIG_LAYER_DEVICES = MetricSpec(
    "termfleet_config_layer_devices",
    "Devices per config layer of the device twin, by state: targeted (its desired config takes a "
    "value from the layer), applied, failed (a version carrying the layer's values), pending. "
    "One series per layer and state; layers are few, made by administrators.",
    ("layer", "state"),
)
ROLLOUTS = MetricSpec(
    "termfleet_rollouts",
    "Rollouts this control plane's executor holds, by phase: running, paused, completed, "
    "cancelled, rolling_back, rolled_back. Every phase is always present.",
    ("phase",),
)
ROLLOUT_DEVICES = MetricSpec(
    "termfleet_rollout_devices",
    "Devices of each unfinished rollout, by step (queued, notified, downloading, …, failed, "
    "incompatible). Finished rollouts (completed, rolled back, cancelled with no install under "
    "way) drop out, so the series are bounded by the rollouts under way: a dozen steps each.",
    ("rollout", "step"),
)
ROLLOUT_WAVE = MetricSpec(
    "termfleet_rollout_wave",
    "The current wave of each unfinished rollout, counted from 1.",
    ("rollout",),
)
REVIEWS = MetricSpec(
    "termfleet_reviews_total",
    "好差评 ratings stored as their case's review, by rating (very_satisfied ... "
    "very_dissatisfied, unknown) and the level of the hall the pad stands in (district, town, "
    "village; none for a pad at no site).",
    ("rating", "level"),
)
REVIEW_REFUSALS = MetricSpec(
    "termfleet_review_refusals_total",
    "Ratings refused, by reason: duplicate (the case already has a rating), late (rated after "
    "the case's rating period).",
    ("reason",),
)
WORK_ORDERS_OPENED = MetricSpec(
    "termfleet_work_orders_opened_total",
    "Work orders opened for bad reviews (差评), by hall level.",
    ("level",),
)
REVIEW_CHAIN_PROBLEMS = MetricSpec(
    "termfleet_review_chain_problems_total",
    "Breaks found in review pads' hash chains (tamper evidence), by kind: hash_mismatch, "
    "broken_link, restarted, unchained, missing_hash.",
    ("kind",),
)
WORK_ORDERS_OPEN = MetricSpec(
    "termfleet_work_orders_open",
    "Bad-review work orders not closed yet (neither 办结 nor appeal upheld), by hall level; "
    "counted from the database about once a minute.",
    ("level",),
)
WORK_ORDERS_OVERDUE = MetricSpec(
    "termfleet_work_orders_overdue",
    "Open work orders past their due date (or still 限期整改 past their fix-by date), by hall "
    "level, on the local calendar day; counted from the database about once a minute.",
    ("level",),
)
