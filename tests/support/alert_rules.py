"""The alert rules, their promtool unit tests and docs/alerts.md, read for the tests. Pure.

PromQL is not parsed whole: metric names and the label matchers right after them are enough to
hold the rules to the names in ``monitoring/metrics.py``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitoring import metrics

ROOT = Path(__file__).resolve().parent.parent.parent
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTS_DOC = ROOT / "docs" / "alerts.md"
ALERTMANAGER_CONFIG = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"

HISTOGRAMS = (metrics.INGEST_COMMIT_SECONDS, metrics.PUBLISH_TO_COMMIT_SECONDS)
GAUGE_HISTOGRAMS = (metrics.OUTBOX_BACKLOG,)
SCRAPE_LABELS = frozenset({"instance", "job"})
"""Labels Prometheus adds to every scraped series."""

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_METRIC = re.compile(r"(?<![\w:])(termfleet_[A-Za-z0-9_]+)")
_SELECTOR = re.compile(r"(termfleet_[A-Za-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Alert:
    name: str
    file: Path
    expr: str
    for_: str | None
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class Matcher:
    metric: str
    label: str
    op: str
    value: str

    def values(self) -> list[str]:
        """The value, or each branch of a regex that is a plain alternation (``a|b``)."""
        return self.value.split("|") if "~" in self.op else [self.value]


@dataclass
class RuleTestFile:
    path: Path
    rule_files: list[Path]
    firing: set[str] = field(default_factory=set)
    quiet: set[str] = field(default_factory=set)
    unchecked: list[str] = field(default_factory=list)
    """Firing cases that do not check both labels and annotations."""


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        msg = f"{path}: expected a mapping at the top"
        raise TypeError(msg)
    return data


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def alerts_in(path: Path) -> Iterator[Alert]:
    for group in load_yaml(path)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                yield Alert(
                    rule["alert"],
                    path,
                    rule["expr"],
                    rule.get("for"),
                    rule.get("labels", {}),
                    rule.get("annotations", {}),
                )


def all_alerts() -> list[Alert]:
    return [alert for path in rule_files() for alert in alerts_in(path)]


def rule_test_files() -> list[RuleTestFile]:
    return [read_rule_tests(path) for path in sorted(RULE_TESTS_DIR.glob("*.yml"))]


def read_rule_tests(path: Path) -> RuleTestFile:
    data = load_yaml(path)
    found = RuleTestFile(path, [(path.parent / f).resolve() for f in data["rule_files"]])
    for test in data["tests"]:
        for case in test.get("alert_rule_test", []):
            expected = case.get("exp_alerts") or []
            (found.firing if expected else found.quiet).add(case["alertname"])
            for alert in expected:
                if not (alert.get("exp_labels") and alert.get("exp_annotations")):
                    found.unchecked.append(f"{test['name']}: {case['alertname']}")
    return found


def metric_names(expr: str) -> set[str]:
    """The ``termfleet_`` metrics an expression reads (label values are not names)."""
    return set(_METRIC.findall(_QUOTED.sub('""', expr)))


def matchers(expr: str) -> Iterator[Matcher]:
    for metric, body in _SELECTOR.findall(expr):
        for label, op, value in _MATCHER.findall(body):
            yield Matcher(metric, label, op, value)


def spec_of(name: str) -> metrics.MetricSpec | None:
    """The spec that exposes series ``name``: itself, or the histogram it is a part of."""
    specs = {s.name: s for s in vars(metrics).values() if isinstance(s, metrics.MetricSpec)}
    if name in specs:
        return specs[name]
    ends = {"_bucket": HISTOGRAMS + GAUGE_HISTOGRAMS, "_sum": HISTOGRAMS, "_count": HISTOGRAMS}
    ends |= {"_gsum": GAUGE_HISTOGRAMS, "_gcount": GAUGE_HISTOGRAMS}
    parts = {f"{s.name}{end}": s for end, of in ends.items() for s in of}
    return parts.get(name)


def unknown_metrics(expr: str) -> list[str]:
    """Names an expression reads that ``monitoring/metrics.py`` does not expose, sorted."""
    return sorted(name for name in metric_names(expr) if spec_of(name) is None)


def unknown_labels(expr: str) -> list[str]:
    """``metric{label}`` pairs whose label the metric does not carry (nor Prometheus adds)."""
    wrong = []
    for m in matchers(expr):
        spec = spec_of(m.metric)
        allowed = SCRAPE_LABELS | set(spec.labels if spec else ()) | {"le"}
        if m.label not in allowed:
            wrong.append(f"{m.metric}{{{m.label}}}")
    return wrong


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(
        c for c in heading.strip().lower() if c in " -_" or unicodedata.category(c)[0] in "LN"
    )
    return kept.replace(" ", "-")


def doc_anchors(markdown: str) -> set[str]:
    return {github_anchor(h) for h in _HEADING.findall(markdown)}


def doc_table(markdown: str, header: Iterable[str]) -> list[list[str]]:
    """The rows of the first Markdown table whose header cells are ``header``, cells stripped."""
    want = [h.strip() for h in header]
    rows: list[list[str]] = []
    in_table = False
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            if in_table:
                break
            continue
        if in_table and not set(line) <= set("|-: "):
            rows.append(cells)
        elif cells == want:
            in_table = True
    if not in_table:
        msg = f"no table with the header {want}"
        raise LookupError(msg)
    return rows
