"""Rollouts (content, config, catalogs to terminals) and the control plane's own health."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, prometheus

from . import variables as var
from .panels import (
    OK_ABOVE_ZERO_IS_BAD,
    Grid,
    bar_gauge,
    note,
    query,
    single_stat,
    thresholds,
    time_series,
    top_table,
)

ROLLOUT = 'rollout=~"$rollout"'
INSTANCE = 'instance=~"$instance"'


def rollouts() -> dashboard.Dashboard:
    grid = Grid()
    grid.add(
        bar_gauge(
            "Rollouts by phase",
            "Rollouts the executor holds: running, paused (a failure threshold was crossed: "
            "look, then resume or roll back), completed, cancelled, rolling_back, rolled_back.",
            "max by (phase) (termfleet_rollouts)",
            "{{phase}}",
        ),
        width=8,
    )
    grid.add(
        single_stat(
            "Paused rollouts",
            "A paused rollout waits for an operator: `termfleet rollout show ID`.",
            'max(termfleet_rollouts{phase="paused"})',
            steps=thresholds((None, "green"), (1, "orange")),
        ),
        width=4,
    )
    grid.add(
        single_stat(
            "Replicas driving the rollouts",
            "The replica holding the database's rollout lock drives the rollouts; the others "
            "forward to it and take over within seconds when it is gone. 1 is right; 0 means "
            "rollouts wait (alert RolloutsNotDriven), 2 or more that replicas do not share a lock.",
            "sum(termfleet_rollouts_driving)",
            steps=thresholds((None, "red"), (1, "green"), (2, "red")),
        ),
        width=4,
    )
    grid.add(
        top_table(
            "Current wave of unfinished rollouts",
            "The wave each unfinished rollout is in, counted from 1 (canary first).",
            f"max by (rollout) (termfleet_rollout_wave{{{ROLLOUT}}})",
        ),
        width=8,
    )
    grid.add(
        time_series(
            "Devices by step",
            "Devices of each unfinished rollout by step (queued, notified, downloading, "
            "staged, installing, succeeded, failed, ...).",
            [
                query(
                    f"max by (rollout, step) (termfleet_rollout_devices{{{ROLLOUT}}})",
                    "{{rollout}} {{step}}",
                )
            ],
        ),
        width=24,
    )
    grid.add(
        time_series(
            "Config layers: devices by state",
            "Per layer of the device twin's config: devices targeted, applied, failed, pending.",
            [
                query(
                    "max by (layer, state) (termfleet_config_layer_devices)",
                    "{{layer}} {{state}}",
                )
            ],
        )
    )
    grid.add(
        time_series(
            "Content downloads per minute by result",
            "complete (200), partial (206, a resumed download), refused (403: expired or "
            "forged URL), not_found, unsatisfiable (416), cut.",
            [
                query(
                    "sum by (result) (rate(termfleet_content_downloads_total[$__rate_interval]))"
                    " * 60",
                    "{{result}}",
                )
            ],
        )
    )
    grid.add(
        time_series(
            "Content bytes sent",
            "Package bytes sent to terminals (明白卡 guide cards, videos, catalogs, firmware).",
            [
                query(
                    "sum(rate(termfleet_content_bytes_sent_total[$__rate_interval]))",
                    "sent",
                )
            ],
            unit="Bps",
        )
    )
    grid.add(
        note(
            "Per device",
            "Which terminals failed and why: `termfleet rollout show ID` "
            "(`GET /api/v1/rollouts/ID`), `termfleet config device ID` for a device's desired, "
            "reported and effective config (docs/rollouts.md, docs/config.md).",
        )
    )
    return var.board(
        "termfleet-rollouts",
        "termfleet / Rollouts",
        "Rollouts by phase, their waves and devices by step, config layers, content downloads.",
        [
            var.datasource(),
            var.label_values(
                "rollout",
                "Rollout",
                "termfleet_rollout_devices",
                "Unfinished rollouts (finished ones drop out of the series).",
            ),
        ],
        grid,
    )


def histogram_quantiles(metric: str) -> list[prometheus.Dataquery]:
    """p50 and p99 of a histogram over the chosen replicas."""
    return [
        query(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{INSTANCE}}}"
            "[$__rate_interval])))",
            f"p{round(q * 100)}",
            ref=ref,
        )
        for q, ref in ((0.5, "A"), (0.99, "B"))
    ]


def control_plane_health() -> dashboard.Dashboard:
    grid = Grid()
    grid.add(
        single_stat(
            "Connected to the broker",
            "Control-plane replicas whose ingest is connected to the MQTT broker now.",
            f"sum(termfleet_mqtt_connected{{{INSTANCE}}})",
            steps=thresholds((None, "red"), (1, "green")),
        ),
        width=6,
        height=5,
    )
    grid.add(
        single_stat(
            "Broker login file in step",
            "1 when the broker's dynamic-security file holds its logins; 0: a broker restart "
            "would lose or lock out logins.",
            f"min(termfleet_broker_login_file_in_step{{{INSTANCE}}})",
            steps=thresholds((None, "red"), (1, "green")),
        ),
        width=6,
        height=5,
    )
    grid.add(
        single_stat(
            "Ingest errors (time range)",
            "Well-formed messages the ingest failed to store (database errors).",
            f"sum(increase(termfleet_ingest_errors_total{{{INSTANCE}}}[$__range]))",
            steps=OK_ABOVE_ZERO_IS_BAD,
        ),
        width=6,
        height=5,
    )
    grid.add(
        single_stat(
            "Broker drift",
            "Differences between the broker's logins and the database the last reconcile "
            "found (and repaired).",
            f"sum(termfleet_broker_drift{{{INSTANCE}}})",
            steps=thresholds((None, "green"), (1, "orange")),
        ),
        width=6,
        height=5,
    )
    grid.add(
        time_series(
            "Ingest messages per second by channel",
            "Uplink messages decoded and handled: presence, heartbeat, records, ...",
            [
                query(
                    "sum by (channel) (rate(termfleet_ingest_messages_total"
                    f"{{{INSTANCE}}}[$__rate_interval]))",
                    "{{channel}}",
                ),
            ],
            unit="reqps",
        )
    )
    grid.add(
        time_series(
            "Records committed and rejects per second",
            "Records committed (usage, reviews, events) and messages refused by reason.",
            [
                query(
                    f"sum(rate(termfleet_ingest_records_total{{{INSTANCE}}}[$__rate_interval]))",
                    "records",
                ),
                query(
                    "sum by (reason) (rate(termfleet_ingest_rejected_total"
                    f"{{{INSTANCE}}}[$__rate_interval]))",
                    "rejected {{reason}}",
                    ref="B",
                ),
            ],
            unit="reqps",
        )
    )
    grid.add(
        time_series(
            "Batch commit time",
            "Time to commit one batch of records to the database: p50 and p99.",
            histogram_quantiles("termfleet_ingest_commit_seconds"),
            unit="s",
        )
    )
    grid.add(
        time_series(
            "Publish → commit latency",
            "From a record's publish (device clock) to its batch's commit: p50 and p99. A "
            "replayed outbox counts its whole wait.",
            histogram_quantiles("termfleet_ingest_publish_to_commit_seconds"),
            unit="s",
        )
    )
    grid.add(
        time_series(
            "Enrollments and broker reconciles (per hour)",
            "Claim requests by outcome (accepted or why refused) and reconciles by result.",
            [
                query(
                    f"sum by (outcome) (increase(termfleet_enrollments_total{{{INSTANCE}}}[1h]))",
                    "enroll {{outcome}}",
                ),
                query(
                    "sum by (result) (increase(termfleet_broker_reconciles_total"
                    f"{{{INSTANCE}}}[1h]))",
                    "reconcile {{result}}",
                    ref="B",
                ),
            ],
        )
    )
    grid.add(
        time_series(
            "Broker drift by kind",
            "What the last reconcile found different (missing_client, acl, disabled, ...).",
            [query(f"sum by (kind) (termfleet_broker_drift{{{INSTANCE}}})", "{{kind}}")],
        )
    )
    grid.add(
        time_series(
            "Resident memory",
            "Resident memory of each control-plane process.",
            [query(f"process_resident_memory_bytes{{{INSTANCE}}}", "{{instance}}")],
            unit="bytes",
        )
    )
    grid.add(
        time_series(
            "CPU",
            "CPU time per second of each control-plane process (1 = one core).",
            [
                query(
                    f"rate(process_cpu_seconds_total{{{INSTANCE}}}[$__rate_interval])",
                    "{{instance}}",
                )
            ],
            unit="percentunit",
        )
    )
    return var.board(
        "termfleet-control-plane",
        "termfleet / Control plane",
        "Ingest rates, rejects, commit and publish-to-commit latency, broker, process health.",
        [
            var.datasource(),
            var.label_values(
                "instance",
                "Replica",
                "termfleet_mqtt_connected",
                "Control-plane replicas (host:port as Prometheus scrapes them).",
            ),
        ],
        grid,
    )
