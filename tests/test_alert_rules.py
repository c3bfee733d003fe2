"""The alert rules: real promtool checks and unit tests, and the rules held to the code and docs.

promtool checks the syntax and runs ``monitoring/prometheus/tests/*.yml``; reading the YAML then
checks what promtool cannot: that every alert has a case where it fires and one where it must
not, that rules read only metrics and labels ``monitoring/metrics.py`` names, and that every
alert is labelled and documented in docs/alerts.md. Both Prometheus configs (compose's and the
demo's) load the rules; the demo's in a real Prometheus, which evaluates every rule.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from pathlib import Path

import pytest

from control_plane import fault_reasons
from control_plane.fleet import Availability
from control_plane.hall_review_metrics import RATING_CLASSES
from control_plane.reviews.chain_check import ProblemKind
from control_plane.rollouts import RolloutPhase
from control_plane.services.processes import free_port
from control_plane.services.prometheus import (
    PrometheusSettings,
    alert_rules_dir,
    start_prometheus,
    write_config,
)
from edge.protocol import PeripheralKind
from firmware_bridge.codecs.escpos import HEALTH_RULES
from monitoring import metrics
from tests.support import alert_rules as ar

TOOL_TIMEOUT_S = 60
RULES_EVALUATED_WITHIN_S = 30.0
SEVERITIES = {"critical", "warning"}
TEAMS = {"ops", "reviews", "platform"}
RUNBOOK_BASE = "https://termfleet.example.org/docs/alerts.md#"

_KINDS = {k.value for k in PeripheralKind}
_REASONS = {reason for reasons in fault_reasons.REASONS.values() for reason in reasons}
LABEL_VALUES: dict[tuple[str, str], set[str]] = {
    (metrics.SITE_PERIPHERAL_FAULTS.name, "peripheral_kind"): _KINDS,
    (metrics.PERIPHERAL_FAULTS.name, "peripheral_kind"): _KINDS,
    (metrics.SITE_PERIPHERAL_FAULTS.name, "reason"): _REASONS,
    (metrics.PERIPHERAL_FAULTS.name, "reason"): _REASONS,
    (metrics.ROLLOUTS.name, "phase"): {p.value for p in RolloutPhase},
    (metrics.DISTRICT_DEVICES.name, "presence"): {a.value for a in Availability},
    (metrics.DISTRICT_DEVICES.name, "district"): {metrics.NONE},
    (metrics.REVIEW_CHAIN_PROBLEMS.name, "kind"): {k.value for k in ProblemKind},
    # provisioning/runner.py counts these two results.
    (metrics.BROKER_RECONCILES.name, "result"): {"ok", "failed"},
    (metrics.HALL_REVIEWS_LAST_HOUR.name, "rating_class"): set(RATING_CLASSES),
}
"""What a label of a metric may be, from the code that makes the values."""


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run ./dev test, or apt-get install prometheus")
    return found


def run(*argv: str | Path, cwd: Path = ar.ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=TOOL_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def alerts() -> list[ar.Alert]:
    found = ar.all_alerts()
    assert len(found) >= 12, "the issue names a dozen alerts"
    return found


def test_rules_pass_promtool_check(alerts: list[ar.Alert]) -> None:
    files = ar.rule_files()
    assert {f.name for f in files} >= {
        "fleet.yml",
        "peripherals.yml",
        "reviews.yml",
        "rollouts.yml",
        "control-plane.yml",
    }
    result = run(promtool(), "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in files:
        count = sum(1 for a in alerts if a.file == path)
        assert f"Checking {path}\n  SUCCESS: {count} rules found" in result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n"
        "      - alert: X\n        expr: max by (site (termfleet_devices)\n"
    )
    result = run(promtool(), "check", "rules", broken)
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    tests = sorted(ar.RULE_TESTS_DIR.glob("*.yml"))
    assert tests
    result = run(promtool(), "test", "rules", *(t.name for t in tests), cwd=ar.RULE_TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests), result.stdout


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: one expected label changed, promtool says which alert."""
    source = ar.RULE_TESTS_DIR / "fleet.yml"
    text = source.read_text().replace("../rules/", f"{ar.RULES_DIR}/")
    changed = text.replace("severity: critical", "severity: warning", 1)
    assert changed != text
    (tmp_path / "fleet.yml").write_text(changed)
    result = run(promtool(), "test", "rules", "fleet.yml", cwd=tmp_path)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "FAILED" in said
    assert "alertname: SiteTerminalsDown" in said


def test_every_alert_fires_in_one_case_and_stays_quiet_in_another(
    alerts: list[ar.Alert],
) -> None:
    test_files = ar.rule_test_files()
    firing = set().union(*(t.firing for t in test_files))
    quiet = set().union(*(t.quiet for t in test_files))
    names = {a.name for a in alerts}
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - quiet == set(), "alerts without a case where they must not fire"
    assert (firing | quiet) - names == set(), "cases of alerts no rule defines"
    for test_file in test_files:
        assert test_file.unchecked == [], f"{test_file.path.name}: check labels and annotations"


def test_each_test_file_loads_the_rules_of_the_alerts_it_tests(alerts: list[ar.Alert]) -> None:
    """An alert promtool never loaded passes every "must not fire" case: make that impossible."""
    defined_in = {a.name: a.file for a in alerts}
    for test_file in ar.rule_test_files():
        for name in test_file.firing | test_file.quiet:
            assert defined_in[name] in test_file.rule_files, f"{test_file.path.name}: {name}"


def test_rules_read_only_the_metrics_and_labels_monitoring_names(
    alerts: list[ar.Alert],
) -> None:
    read = set()
    for alert in alerts:
        assert ar.unknown_metrics(alert.expr) == [], alert.name
        assert ar.unknown_labels(alert.expr) == [], alert.name
        read |= ar.metric_names(alert.expr)
    # The names the alerts are built on, each read by some rule.
    assert {
        metrics.SITE_DEVICES_OFFLINE.name,
        metrics.SITE_PERIPHERAL_FAULTS.name,
        metrics.SITE_WINDOWS_WITHOUT_PAD.name,
        metrics.HALL_REVIEWS_LAST_HOUR.name,
        metrics.WORK_ORDERS_OVERDUE.name,
        metrics.ROLLOUTS.name,
        metrics.PUBLISH_TO_COMMIT_SECONDS.name + "_bucket",
        metrics.MQTT_CONNECTED.name,
        metrics.INGEST_REJECTED.name,
        metrics.OUTBOX_BACKLOG.name + "_gsum",
        metrics.BROKER_DRIFT.name,
        metrics.BROKER_RECONCILES.name,
        metrics.BROKER_FILE_IN_STEP.name,
        metrics.REVIEW_CHAIN_PROBLEMS.name,
    } <= read


def test_the_metric_check_names_what_is_wrong() -> None:
    expr = (
        'termfleet_devices{presence="online"} + termfleet_devices_total'
        " + termfleet_ingest_commit_seconds_gsum + termfleet_outbox_backlog_records_gsum"
        ' + termfleet_site_windows_without_pad{peripheral_kind="printer"}'
        ' + termfleet_rollouts{instance="a", phase="termfleet_in_a_label_value"}'
    )
    assert ar.unknown_metrics(expr) == [
        "termfleet_devices_total",
        "termfleet_ingest_commit_seconds_gsum",
    ]
    assert ar.unknown_labels(expr) == ["termfleet_site_windows_without_pad{peripheral_kind}"]


def test_label_values_in_rules_are_values_the_code_makes(alerts: list[ar.Alert]) -> None:
    checked = 0
    for alert in alerts:
        for m in ar.matchers(alert.expr):
            allowed = LABEL_VALUES.get((m.metric, m.label))
            if allowed is None:
                continue
            checked += 1
            assert set(m.values()) <= allowed, f"{alert.name}: {m}"
    assert checked >= 8
    # Out of paper as the printer driver says it, and counted so for both kinds of printer.
    assert "paper_out" in {rule.reason for rule in HEALTH_RULES}
    for kind in (PeripheralKind.RECEIPT_PRINTER, PeripheralKind.A4_PRINTER):
        assert "paper_out" in fault_reasons.REASONS[kind]


def test_every_alert_is_labelled_and_documented(alerts: list[ar.Alert]) -> None:
    anchors = ar.doc_anchors(ar.ALERTS_DOC.read_text())
    for alert in alerts:
        assert alert.for_, f"{alert.name}: no for:"
        assert alert.labels.get("severity") in SEVERITIES, alert.name
        assert alert.labels.get("team") in TEAMS, alert.name
        assert alert.annotations.get("summary"), alert.name
        assert alert.annotations.get("description"), alert.name
        url = alert.annotations.get("runbook_url", "")
        assert url.startswith(RUNBOOK_BASE), alert.name
        assert url.removeprefix(RUNBOOK_BASE) == alert.name.lower(), alert.name
        assert alert.name.lower() in anchors, f"docs/alerts.md has no heading {alert.name}"


def test_site_alerts_name_the_site_and_district(alerts: list[ar.Alert]) -> None:
    for alert in alerts:
        if "site" in alert.expr and alert.labels["team"] != "platform":
            for text in (alert.annotations["summary"], alert.annotations["description"]):
                assert "{{ $labels.site }}" in text, alert.name
                assert "{{ $labels.district }}" in text, alert.name


def test_the_docs_table_matches_the_rules(alerts: list[ar.Alert]) -> None:
    rows = ar.doc_table(
        ar.ALERTS_DOC.read_text(), ["alert", "severity", "team", "fires when", "for"]
    )
    documented = {row[0].split("]")[0].lstrip("["): (row[1], row[2], row[4]) for row in rows}
    assert documented == {a.name: (a.labels["severity"], a.labels["team"], a.for_) for a in alerts}


def test_anchors_and_tables_are_read_as_github_does() -> None:
    text = "# Alerts\n## Where alerts go\n### 好差评 (reviews)\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert ar.doc_anchors(text) == {"alerts", "where-alerts-go", "好差评-reviews"}
    assert ar.doc_table(text, ["a", "b"]) == [["1", "2"]]
    with pytest.raises(LookupError, match="no table with the header"):
        ar.doc_table(text, ["a", "c"])


def test_compose_prometheus_loads_the_rules_and_alertmanager() -> None:
    config = ar.PROMETHEUS_DIR / "prometheus.yml"
    result = run(promtool(), "check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ar.rule_files())} rule files found" in result.stdout
    data = ar.load_yaml(config)
    (manager,) = data["alerting"]["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["alertmanager:9093"]}]


def _get_json(url: str, deadline: float) -> dict:  # type: ignore[type-arg]
    """The JSON at ``url``, asked again while the server answers 503 (not ready yet)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - localhost
                return json.load(resp)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code != HTTPStatus.SERVICE_UNAVAILABLE or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_the_demo_prometheus_evaluates_every_rule(tmp_path: Path, alerts: list[ar.Alert]) -> None:
    assert alert_rules_dir() == ar.RULES_DIR
    settings = PrometheusSettings(tmp_path, free_port(), (f"127.0.0.1:{free_port()}",))
    checked = run(promtool(), "check", "config", write_config(settings))
    assert f"SUCCESS: {len(ar.rule_files())} rule files found" in checked.stdout, checked.stdout
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: run ./dev test, or apt-get install prometheus")
    process = start_prometheus(settings, binary)
    try:
        deadline = time.monotonic() + RULES_EVALUATED_WITHIN_S
        while True:
            # The port opens before the rules are loaded: 503 until Prometheus is ready.
            groups = _get_json(f"{settings.url}/api/v1/rules", deadline)["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            if rules and all(rule["health"] != "unknown" for rule in rules):
                break
            assert time.monotonic() < deadline, [r["name"] for r in rules]
            time.sleep(0.5)
    finally:
        process.stop()
    assert {r["name"] for r in rules} == {a.name for a in alerts}
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
