"""Alertmanager's routing by jurisdiction, with the real amtool and a real Alertmanager.

amtool checks the config and routes every row of docs/alerts.md's routing table, and an
example of every alert of the rules; a real Alertmanager, sent alerts over its API, shows the
inhibitions at work.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.services.processes import ManagedProcess, free_port
from tests.support import alert_rules as ar

TOOL_TIMEOUT_S = 60
INHIBITED_WITHIN_S = 10.0
CONGHUA = {"city": "4401", "district": "440117", "site": "440117000"}
"""A site of the Conghua district hall: its alerts go to conghua-ops."""
RECEIVER_BY_TEAM = {"platform": "platform-team", "reviews": "reviews-office"}
"""Where alerts with no jurisdiction go."""
_BY_CLAUSE = re.compile(r"\bby\s*\(([^)]*)\)")


def amtool() -> str:
    found = shutil.which("amtool")
    if found is None:
        pytest.fail("amtool not found: run ./dev test, or apt-get install prometheus-alertmanager")
    return found


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT_S
    )


def route(labels: dict[str, str], config: Path = ar.ALERTMANAGER_CONFIG) -> str:
    """The receivers amtool routes an alert with ``labels`` to, comma-separated."""
    pairs = [f"{k}={v}" for k, v in labels.items()]
    result = run(amtool(), "config", "routes", "test", f"--config.file={config}", *pairs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_the_config_passes_amtool() -> None:
    result = run(amtool(), "check-config", ar.ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "3 inhibit rules" in result.stdout


def test_amtool_refuses_a_route_to_a_missing_receiver(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    text = ar.ALERTMANAGER_CONFIG.read_text().replace(
        "  - name: conghua-ops\n", "  - name: conghua-ops-renamed\n"
    )
    broken.write_text(text)
    result = run(amtool(), "check-config", broken)
    assert result.returncode != 0
    assert 'undefined receiver "conghua-ops"' in result.stdout + result.stderr


def test_labels_route_where_the_docs_say() -> None:
    rows = ar.doc_table(ar.ALERTS_DOC.read_text(), ["alert labels", "receiver"])
    assert len(rows) >= 10
    receivers = {receiver["name"] for receiver in ar.load_yaml(ar.ALERTMANAGER_CONFIG)["receivers"]}
    assert {row[1] for row in rows} == receivers, "every receiver has a row"
    for labels_cell, receiver in rows:
        labels = dict(pair.split("=", 1) for pair in labels_cell.strip("`").split())
        assert route(labels) == receiver, labels_cell


def test_a_route_test_can_fail() -> None:
    """The answer of amtool is compared, not trusted: Conghua's alerts are not Jieyang's."""
    assert route({"alertname": "TerminalOffline", **CONGHUA}) != "jieyang-ops"
    assert route({"alertname": "TerminalOffline", **CONGHUA, "district": "440114"}) == (
        "guangzhou-ops"
    )


def keeps_jurisdiction(alert: ar.Alert) -> bool:
    """Whether the alert's expression keeps the district label of the series it reads."""
    return any("district" in clause for clause in _BY_CLAUSE.findall(alert.expr))


def test_every_alert_reaches_its_team() -> None:
    for alert in ar.all_alerts():
        labels = {"alertname": alert.name, **alert.labels}
        if keeps_jurisdiction(alert):
            assert alert.labels["team"] != "platform", alert.name
            assert route({**labels, **CONGHUA}) == "conghua-ops", alert.name
        else:
            assert route(labels) == RECEIVER_BY_TEAM[alert.labels["team"]], alert.name


def test_inhibitions_name_alerts_the_rules_define() -> None:
    names = {alert.name for alert in ar.all_alerts()}
    named = set()
    for rule in ar.load_yaml(ar.ALERTMANAGER_CONFIG)["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if match := re.fullmatch(r'alertname=~?"([^"]+)"', matcher):
                named |= set(match.group(1).split("|"))
    assert named
    assert named <= names


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on the project's config, alone (no cluster); its base URL."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail(
            "Alertmanager not found: run ./dev test, or apt-get install prometheus-alertmanager"
        )
    port = free_port()
    process = ManagedProcess(
        "alertmanager",
        [
            binary,
            f"--config.file={ar.ALERTMANAGER_CONFIG}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        tmp_path / "alertmanager.log",
    ).start_and_wait_port("127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def post_alerts(base: str, alerts: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": labels} for labels in alerts]).encode()
    request = urllib.request.Request(  # noqa: S310 - localhost
        f"{base}/api/v2/alerts", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - localhost
        assert resp.status == 200


def states(base: str) -> dict[tuple[str, str], str]:
    """(alertname, site) -> active or suppressed, as Alertmanager lists its alerts."""
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=5) as resp:  # noqa: S310
        listed = json.load(resp)
    return {
        (a["labels"]["alertname"], a["labels"].get("site", "")): a["status"]["state"]
        for a in listed
    }


def wait_for_states(base: str, want: dict[tuple[str, str], str]) -> None:
    deadline = time.monotonic() + INHIBITED_WITHIN_S
    while (seen := states(base)) != want:
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)


def test_alertmanager_holds_back_what_a_wider_alert_explains(alertmanager: str) -> None:
    site_a = {**CONGHUA, "team": "ops", "severity": "warning"}
    site_b = {**site_a, "site": "440117001"}
    post_alerts(
        alertmanager,
        [
            {"alertname": "SiteTerminalsDown", **site_a, "severity": "critical"},
            {"alertname": "TerminalOffline", **site_a},
            {"alertname": "TerminalOffline", **site_b},
            {"alertname": "PrinterOutOfPaper", **site_a, "peripheral_kind": "receipt_printer"},
        ],
    )
    wait_for_states(
        alertmanager,
        {
            ("SiteTerminalsDown", "440117000"): "active",
            ("TerminalOffline", "440117000"): "suppressed",
            ("TerminalOffline", "440117001"): "active",
            ("PrinterOutOfPaper", "440117000"): "active",
        },
    )
    # The control plane down: nothing else is believed.
    post_alerts(alertmanager, [{"alertname": "ControlPlaneDown", "team": "platform"}])
    wait_for_states(
        alertmanager,
        {
            ("ControlPlaneDown", ""): "active",
            ("SiteTerminalsDown", "440117000"): "suppressed",
            ("TerminalOffline", "440117000"): "suppressed",
            ("TerminalOffline", "440117001"): "suppressed",
            ("PrinterOutOfPaper", "440117000"): "suppressed",
        },
    )


def test_a_district_outage_holds_back_its_sites_only(alertmanager: str) -> None:
    conghua = {**CONGHUA, "team": "ops", "severity": "critical"}
    huadu = {"city": "4401", "district": "440114", "site": "440114000", "team": "ops"}
    district = {k: v for k, v in conghua.items() if k != "site"}
    post_alerts(
        alertmanager,
        [
            {"alertname": "DistrictTerminalsOffline", **district},
            {"alertname": "SiteTerminalsDown", **conghua},
            {"alertname": "TerminalOffline", **conghua, "site": "440117001"},
            {"alertname": "TerminalOffline", **huadu},
        ],
    )
    wait_for_states(
        alertmanager,
        {
            ("DistrictTerminalsOffline", ""): "active",
            ("SiteTerminalsDown", "440117000"): "suppressed",
            ("TerminalOffline", "440117001"): "suppressed",
            ("TerminalOffline", "440114000"): "active",
        },
    )
