"""The names, help texts and labels of every metric termfleet exposes.

The control plane exposes them and dashboards and alert rules refer to them; this module is
where they are named. Labels are bounded by design (device kind, presence, channel, reason):
per-device detail belongs in the API, not in Prometheus.

Jurisdiction labels: ``city`` and ``district`` hold the division codes (行政区划代码) of the site's
ancestors at those levels, ``none`` where there is none. Alertmanager routes on them. Only the
``SITE_*`` and ``HALL_*`` gauges carry a ``site`` label, and each lists at most its worst
``TOP_SITES`` sites, so a 100,000-terminal fleet stays under ``SERIES_BUDGET`` series.
"""

from __future__ import annotations

from dataclasses import dataclass

SERIES_BUDGET = 2_000
"""Series one control plane may expose for a 100,000-terminal fleet (a test checks it)."""
TOP_SITES = 50
"""Sites a ``SITE_*`` or ``HALL_*`` gauge lists at most: the worst ones, ties by site code."""
MAX_DEPARTMENTS = 60
"""Department codes ``TRANSACTIONS`` names one by one; the rest count as ``other``."""
NONE = "none"
"""The label value for "no such thing": an unplaced device's level, a site outside any city."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    help: str
    labels: tuple[str, ...] = ()


DEVICES = MetricSpec(
    "termfleet_devices",
    "Terminals known to the control plane, by kind, the level of the hall they stand in "
    "(district, town, village; none when placed nowhere) and presence: online, offline_expected "
    "(its site is closed), offline_unexpected, unknown. Every combination is always present.",
    ("kind", "level", "presence"),
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
CHORE_FAILURES = MetricSpec(
    "termfleet_chore_failures_total",
    "Times one of the server's chores (rollups, twin, reviews, rollouts, placements, "
    "provisioning) raised something other than a database error and was started again. Each is "
    "a defect or data nothing foresaw: the server's log has the traceback.",
    ("chore",),
)
INGEST_ERRORS = MetricSpec(
    "termfleet_ingest_errors_total",
    "Well-formed uplink messages the ingest failed to store (database errors). A record's comes "
    "again from the broker after the ingest reconnects; a state update is retried by the "
    "device's next message. A batch tried again in parts while the database answers counts only "
    "what stays unstored; a record the database refuses is counted as rejected (unstorable).",
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
ROLLOUTS_DRIVING = MetricSpec(
    "termfleet_rollouts_driving",
    "1 on the replica that drives the rollouts (it holds the database's rollout lock), 0 on the "
    "others: summed over the replicas of one database it is 1, and 0 while none does.",
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

# Issue 9: what the alerts and dashboards need beyond the above.
SITE_DEVICES_OFFLINE = MetricSpec(
    "termfleet_site_devices_offline_unexpected",
    "Terminals unexpectedly offline (their site is open, or its hours are unknown) at each of "
    "the TOP_SITES sites with the most such terminals; sites with none are absent.",
    ("site", "city", "district", "level"),
)
PERIPHERAL_FAULTS = MetricSpec(
    "termfleet_peripheral_faults",
    "Peripherals of online terminals that are not ok, by peripheral kind and reason (paper_out, "
    "no_answer, unplugged, ...; reasons outside the known list count as other).",
    ("peripheral_kind", "reason"),
)
SITE_PERIPHERAL_FAULTS = MetricSpec(
    "termfleet_site_peripheral_faults",
    "Faulty peripherals of online terminals at each of the TOP_SITES sites with the most, by "
    "peripheral kind and reason; sites with none are absent.",
    ("site", "city", "district", "level", "peripheral_kind", "reason"),
)
SITE_WINDOWS_WITHOUT_PAD = MetricSpec(
    "termfleet_site_windows_without_pad",
    "Windows of open sites with no online review pad (评价器) bound to them, at each of the "
    "TOP_SITES sites with the most; closed sites and sites with none are absent.",
    ("site", "city", "district", "level"),
)
OUTBOX_BACKLOG = MetricSpec(
    "termfleet_outbox_backlog_records",
    "Distribution over online terminals of the records waiting in their outbox (from their "
    "heartbeats): a gauge histogram, le = upper bound of records.",
)
TRANSACTIONS = MetricSpec(
    "termfleet_transactions_total",
    "Service-item transactions (办件) reported by terminals, by department code (the first "
    "MAX_DEPARTMENTS registered departments by code; others, and codes not registered, count as "
    "other) and hall level.",
    ("department", "level"),
)
TRANSACTION_OUTCOMES = MetricSpec(
    "termfleet_transaction_outcomes_total",
    "Service-item transactions reported by terminals, by outcome and hall level.",
    ("outcome", "level"),
)
DISTRICT_DEVICES = MetricSpec(
    "termfleet_district_devices",
    "Terminals by the city and district their site lies in and presence (as termfleet_devices); "
    "every district of the tree is present, devices placed nowhere count under none.",
    ("city", "district", "presence"),
)
USAGE_EVENTS = MetricSpec(
    "termfleet_usage_events_total",
    "Self-service usage records other than transactions, by event (session_started, "
    "session_ended, print, id_card_read, call_for_help, unknown) and hall level.",
    ("event", "level"),
)
PRINTED_PAGES = MetricSpec(
    "termfleet_printed_pages_total",
    "Pages of print jobs that succeeded on terminals' printers, by hall level.",
    ("level",),
)
PUBLISH_TO_COMMIT_SECONDS = MetricSpec(
    "termfleet_ingest_publish_to_commit_seconds",
    "From a record's publish (the time the device stamped it, so device clock skew shows here) "
    "to the commit of its batch; a record replayed from an outbox after an outage counts its "
    "whole wait. A device clock ahead of the control plane's counts as 0.",
)
HALL_REVIEWS_LAST_HOUR = MetricSpec(
    "termfleet_hall_reviews_last_hour",
    "Reviews stored in the last hour at each of the TOP_SITES halls with the most bad reviews "
    "(差评) in that hour, by rating class: bad, all. Halls with no bad review are absent.",
    ("site", "city", "district", "level", "rating_class"),
)
