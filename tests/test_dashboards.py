"""The Grafana dashboards: committed JSON, sound structure, every panel's query answered.

The committed JSON is what the code generates; the structure is sound; and every panel's query
returns data from a real Prometheus scraping a running `termfleet demo`.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

import pytest
import yaml

from monitoring import metrics
from monitoring.grafana import build
from monitoring.grafana.panels import FOLDER, TAG
from tests.support import dashboard_queries as dq
from tests.support import demo_stand as stand
from tests.support.demo_stand import DemoStand

GRAFANA_DIR = Path(build.__file__).parent
DATA_WITHIN_S = 180.0
"""From the demo's start to data in every panel: two or more scrapes of every rate window, and
the once-a-minute counts of work orders and hall reviews."""
POLL_S = 5.0
METRIC_LABELS = {
    spec.name: spec.labels
    for spec in vars(metrics).values()
    if isinstance(spec, metrics.MetricSpec)
}
KNOWN_METRICS = set(METRIC_LABELS)


def test_the_committed_json_is_what_the_code_generates() -> None:
    assert build.differences(build.DASHBOARDS_DIR) == [], (
        "regenerate with: python -m monitoring.grafana.build"
    )


def test_check_names_every_file_that_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "reviews.json").write_text("{}\n")
    (tmp_path / "rollouts.json").unlink()
    (tmp_path / "old.json").write_text("{}\n")
    assert build.differences(tmp_path) == [
        "old.json (not generated)",
        "reviews.json",
        "rollouts.json",
    ]
    assert build.main(["--out", str(tmp_path), "--check"]) == 1
    assert "old.json (not generated), reviews.json, rollouts.json" in capsys.readouterr().err
    assert build.main(["--out", str(tmp_path)]) == 0
    assert build.differences(tmp_path) == ["old.json (not generated)"]


def test_dashboards_are_sound() -> None:
    models = build.models()
    assert dq.structure_problems(models, METRIC_LABELS) == []
    for name, model in models.items():
        assert model["uid"].startswith("termfleet-"), name
        assert TAG in model["tags"], name
        assert model["description"], name
        for panel in dq.panels(model):
            assert panel.get("description") or panel["type"] == "text", (name, panel["title"])
    assert len([q for m in models.values() for q in dq.queries(m)]) >= 50


def test_the_structure_check_finds_what_it_looks_for() -> None:
    good = build.models()["site.json"]
    bad = json.loads(json.dumps(good))
    bad["panels"][1]["id"] = bad["panels"][0]["id"]
    bad["panels"][0]["targets"][0]["expr"] = 'sum(termfleet_no_such_metric{x=~"$nowhere"})'
    bad["panels"][2]["datasource"] = {"type": "prometheus", "uid": "prometheus"}
    bad["templating"]["list"] = [v for v in bad["templating"]["list"] if v["name"] != "city"]
    problems = dq.structure_problems({"a.json": good, "b.json": bad}, METRIC_LABELS)
    title = bad["title"]
    first, third = bad["panels"][0]["title"], bad["panels"][2]["title"]
    assert sorted(problems) == sorted(
        [
            f"dashboard uid {good['uid']!r} used twice",
            "b.json: panel id 1 used twice",
            "b.json: variable district uses undefined $city",
            "b.json: variable site uses undefined $city",
            f"b.json / {third}: not on the datasource variable",
            f"{title} / {first} [A]: undefined variable $nowhere",
            f"{title} / {first} [A]: termfleet_no_such_metric is not in monitoring/metrics.py",
        ]
        + [f"{q.where()}: undefined variable $city" for q in dq.queries(bad) if "$city" in q.expr]
    )


def test_labels_a_query_uses_must_be_its_metrics_labels() -> None:
    expr = 'sum by (level, nope) (termfleet_reviews_total{rating="bad", colour="x", job="y"})'
    assert dq.label_problems(expr, METRIC_LABELS) == [
        "termfleet_reviews_total has no label colour",
        "no metric of the query has label nope",
    ]
    quantile = "histogram_quantile(0.9, sum by (le) (rate(termfleet_ingest_commit_seconds_bucket"
    assert (
        dq.label_problems(
            quantile + "[1m])))",
            METRIC_LABELS,
        )
        == []
    )


def test_query_helpers_refuse_what_they_cannot_read() -> None:
    with pytest.raises(ValueError, match="not a label_values"):
        dq.label_values_query("up")
    with pytest.raises(KeyError, match="site"):
        dq.substitute('x{site=~"$site"}', {})
    assert dq.label_values_query('label_values(x{a="b"}, site)') == ('x{a="b"}', "site")
    assert dq.regex_of(["4401", "a.b"]) == r"(4401|a\\.b)"
    assert dq.spec_name("termfleet_ingest_commit_seconds_bucket", KNOWN_METRICS) is not None


def test_grafana_provisions_the_dashboards_directory_into_the_folder() -> None:
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/termfleet.yml").read_text())
    [entry] = provider["providers"]
    assert entry["type"] == "file"
    assert entry["folder"] == FOLDER
    assert entry["folderUid"] == FOLDER
    assert entry["options"]["path"] == "/var/lib/grafana/dashboards"
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text()
    )
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]


def test_the_dashboards_are_written_for_the_grafana_compose_runs() -> None:
    """The SDK's version is EPOCH!GRAFANA-VERSION: the schema it writes is that Grafana's."""
    compose = yaml.safe_load((GRAFANA_DIR.parents[1] / "docker-compose.yml").read_text())
    image = compose["services"]["grafana"]["image"]
    sdk_grafana = importlib.metadata.version("grafana-foundation-sdk").split("!")[-1]
    assert image.split(":")[-1].split(".")[:2] == sdk_grafana.split(".")[:2], (image, sdk_grafana)


def resolve_variables(model: dq.Model, prom: dq.Prometheus) -> tuple[dict[str, str], list[str]]:
    """Each variable's value as Grafana sends "All": every value its own query returns."""
    values = dict(dq.GRAFANA_INTERVALS)
    problems = []
    for variable in dq.variables(model):
        if variable["type"] == "datasource":
            continue
        selector, label = dq.label_values_query(dq.substitute(variable["query"], values))
        found = prom.label_values(selector, label)
        if not found:
            problems.append(f"{model['title']}: variable ${variable['name']} has no values")
            found = ["(no values)"]
        values[variable["name"]] = dq.regex_of(found)
    return values, problems


def panels_without_data(models: dict[str, dq.Model], prom: dq.Prometheus) -> list[str]:
    missing = []
    for model in models.values():
        values, problems = resolve_variables(model, prom)
        missing += problems
        for query in dq.queries(model):
            expr = dq.substitute(query.expr, values)
            if not prom.has_data(expr, instant=query.instant):
                missing.append(f"{query.where()}: {expr}")
    return missing


ARRANGED = {
    # What DemoStand.arrange() set up, as the metrics must show it: proof that the panels above
    # drew on the arranged situations, not on some accident of the run.
    "a kiosk unexpectedly offline at the open hall": (
        f'termfleet_site_devices_offline_unexpected{{site="{stand.OPEN_SITE}"}} >= 1'
    ),
    "a station PC offline as expected": 'sum(termfleet_devices{presence="offline_expected"}) >= 1',
    "a window without a pad at the open hall": (
        f'termfleet_site_windows_without_pad{{site="{stand.OPEN_SITE}"}} >= 1'
    ),
    "the unfinished rollout": f'termfleet_rollout_wave{{rollout="{stand.ROLLOUT_ID}"}}',
    "the config layer": f'termfleet_config_layer_devices{{layer="{stand.CONFIG_LAYER}"}}',
    "the enrollment": 'termfleet_enrollments_total{outcome="accepted"} >= 1',
}


@pytest.mark.slow
@pytest.mark.timeout(DATA_WITHIN_S + 180)
def test_every_panel_query_returns_data_from_the_running_demo(tmp_path: Path) -> None:
    models = build.models()
    queries = sum(1 for m in models.values() for _ in dq.queries(m))
    with DemoStand(tmp_path / "demo") as demo:
        online = time.monotonic()
        demo.arrange()
        prom = dq.Prometheus(demo.prometheus)
        while True:
            missing = panels_without_data(models, prom)
            not_shown = [
                what for what, expr in ARRANGED.items() if not prom.has_data(expr, instant=True)
            ]
            if not (missing or not_shown) or time.monotonic() - online > DATA_WITHIN_S:
                break
            time.sleep(POLL_S)
        waited = time.monotonic() - online
        stopped = {
            d: stand.live(demo.device(d))
            for d in (stand.STOPPED_AT_OPEN_SITE, stand.STOPPED_AT_CLOSED_SITE)
        }
    # With -s: how long after the district came online every panel had data.
    print(f"{queries} panel queries, {len(missing)} without data after {waited:.0f} s")  # noqa: T201
    assert not missing, (
        f"{len(missing)} of {queries} queries without data after {waited:.0f} s:\n"
        + "\n".join(missing)
    )
    assert not_shown == [], f"arranged on the demo but not in its metrics; the API shows {stopped}"
