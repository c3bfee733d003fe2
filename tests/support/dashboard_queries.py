"""Reading dashboard JSON models as Grafana would: panels, queries, variables, substitution.

Pure apart from ``Prometheus``, a small client of Prometheus' HTTP API for the queries.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Model = dict[str, Any]

GRAFANA_INTERVALS = {
    # What Grafana puts in their place for a 6-hour range and the compose stack's 15 s scrape
    # interval (the datasource's timeInterval): $__rate_interval is max(4 x scrape, step + scrape).
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "6h",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_METRIC = re.compile(r"\b(?:termfleet|process)_[a-z0-9_]+\b")
_SERIES_SUFFIXES = ("_bucket", "_count", "_sum", "_gsum", "_gcount")
_SELECTOR = re.compile(r"\b(termfleet_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
TARGET_LABELS = frozenset({"instance", "job", "le"})
"""Labels every series has from the scrape (instance, job), and histogram buckets' le."""
_REGEX_CHARS = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.DOTALL)


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str
    instant: bool

    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} [{self.ref}]"


def panels(model: Model) -> Iterator[Model]:
    """Every panel, those inside rows too."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(model: Model) -> Iterator[Query]:
    for panel in panels(model):
        for target in panel.get("targets", []):
            yield Query(
                model["title"],
                panel["title"],
                target.get("refId", ""),
                target["expr"],
                bool(target.get("instant")),
            )


def variables(model: Model) -> list[Model]:
    return list(model.get("templating", {}).get("list", []))


def variables_in(text: str) -> set[str]:
    """Names of the template variables ``text`` refers to ($name or ${name})."""
    return {a or b for a, b in _VARIABLE.findall(text)}


def metric_names(expr: str) -> set[str]:
    """The termfleet_ and process_ metric names a query reads, histogram suffixes included."""
    return set(_METRIC.findall(expr))


def spec_name(series: str, known: set[str]) -> str | None:
    """The metric a series name belongs to (``x_bucket`` → ``x``), or None if none is known."""
    if series in known:
        return series
    for suffix in _SERIES_SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in known:
            return series.removesuffix(suffix)
    return None


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every $var and ${var} replaced; KeyError names one with no value."""

    def value(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return _VARIABLE.sub(value, text)


def regex_of(values: list[str]) -> str:
    """How Grafana sends a multi-value (or "All") selection to Prometheus: ``(a|b)``.

    Like Grafana, it escapes regex characters with a backslash doubled for PromQL's string.
    """
    escaped = [_REGEX_CHARS.sub(r"\\\\\g<0>", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def label_values_query(query: str) -> tuple[str, str]:
    """(series selector, label) of ``label_values(selector, label)``."""
    found = _LABEL_VALUES.match(query.strip())
    if found is None:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return found.group(1).strip(), found.group(2)


class Prometheus:
    """The few calls of Prometheus' HTTP API that Grafana makes for these dashboards."""

    def __init__(self, base: str) -> None:
        self.base = base

    def _get(self, path: str, params: list[tuple[str, str]]) -> Any:  # noqa: ANN401 - JSON
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - localhost
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            # Prometheus says what it could not parse; a query error is the dashboard's bug.
            raise AssertionError(f"{path} {params}: {exc.code} {exc.read().decode()}") from exc
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def label_values(self, selector: str, label: str) -> list[str]:
        start = str(time.time() - 3600)
        return sorted(
            self._get(f"/api/v1/label/{label}/values", [("match[]", selector), ("start", start)])
        )

    def has_data(self, expr: str, *, instant: bool) -> bool:
        """Whether the query returns any sample: now if ``instant``, else over 5 minutes."""
        if instant:
            return bool(self._get("/api/v1/query", [("query", expr)])["result"])
        now = time.time()
        params = [("query", expr), ("start", str(now - 300)), ("end", str(now)), ("step", "5")]
        return bool(self._get("/api/v1/query_range", params)["result"])


BUILTIN_VARIABLES = frozenset(GRAFANA_INTERVALS)
DATASOURCE_UID = "${datasource}"


def label_problems(expr: str, labels: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Labels ``expr`` matches or groups by that its metrics do not have.

    ``labels`` holds each metric's labels. A grouping label must belong to one of the
    expression's metrics; a matcher's label to the metric it selects.
    """
    problems = []
    metrics = {spec_name(m, set(labels)) for m in metric_names(expr)} - {None}
    for series, matchers in _SELECTOR.findall(expr):
        metric = spec_name(series, set(labels))
        if metric is None:
            continue
        own = set(labels[metric]) | TARGET_LABELS
        problems += [
            f"{series} has no label {label}"
            for label in _MATCHER_LABEL.findall(matchers)
            if label not in own and label != "__name__"
        ]
    anywhere = TARGET_LABELS.union(*(labels[m] for m in metrics if m is not None))
    for grouping in _GROUPING.findall(expr):
        names = {n.strip() for n in grouping.split(",") if n.strip()}
        problems += [f"no metric of the query has label {n}" for n in sorted(names - anywhere)]
    return problems


def structure_problems(
    models: Mapping[str, Model], labels: Mapping[str, tuple[str, ...]]
) -> list[str]:
    """What is wrong with a set of dashboards, one line per problem, empty when nothing is.

    Unique dashboard uids and panel ids; every query panel and target on the ``datasource``
    variable; every metric named in monitoring/metrics.py (or a process_ metric); every
    variable a query or variable uses defined, and defined before it is used; every label a
    query matches or groups by one its metrics have (``labels``: each metric's labels).
    """
    known_metrics = set(labels)
    problems = []
    uids = [m.get("uid") for m in models.values()]
    problems += [f"dashboard uid {u!r} used twice" for u in set(uids) if uids.count(u) > 1]
    for name, model in models.items():
        ids = [p.get("id") for p in panels(model)]
        problems += [f"{name}: panel id {i} used twice" for i in set(ids) if ids.count(i) > 1]
        defined: set[str] = set(BUILTIN_VARIABLES)
        for variable in variables(model):
            used = variables_in(str(variable.get("query", ""))) - defined
            problems += [f"{name}: variable {variable['name']} uses undefined ${u}" for u in used]
            defined.add(variable["name"])
        if "datasource" not in defined:
            problems.append(f"{name}: no datasource variable")
        for panel in panels(model):
            targets = panel.get("targets", [])
            sources = [panel.get("datasource")] + [t.get("datasource") for t in targets]
            if targets and any((s or {}).get("uid") != DATASOURCE_UID for s in sources):
                problems.append(f"{name} / {panel['title']}: not on the datasource variable")
        for query in queries(model):
            problems += [
                f"{query.where()}: undefined variable ${u}"
                for u in sorted(variables_in(query.expr) - defined)
            ]
            problems += [
                f"{query.where()}: {m} is not in monitoring/metrics.py"
                for m in sorted(metric_names(query.expr))
                if m.startswith("termfleet_") and spec_name(m, known_metrics) is None
            ]
            problems += [f"{query.where()}: {p}" for p in label_problems(query.expr, labels)]
    return problems
