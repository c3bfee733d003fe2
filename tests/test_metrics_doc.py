"""docs/metrics.md lists every metric ``monitoring/metrics.py`` names, as generated from it."""

from __future__ import annotations

import pytest

from monitoring.metrics_doc import BEGIN, DOC, END, DocError, specs, table, with_table


def test_the_committed_doc_holds_the_generated_table() -> None:
    committed = DOC.read_text(encoding="utf-8")

    assert committed == with_table(committed), "run: python -m monitoring.metrics_doc"


def test_every_metric_has_a_row_with_its_labels() -> None:
    committed = DOC.read_text(encoding="utf-8")
    names = [spec.name for spec in specs()]

    assert len(names) == len(set(names)) > 30
    for spec in specs():
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "—"
        assert f"| `{spec.name}` | " in committed
        assert f" | {labels} | " in committed.split(f"| `{spec.name}` | ", 1)[1].split("\n")[0]


def test_a_doc_without_markers_is_refused() -> None:
    with pytest.raises(DocError, match="markers"):
        with_table("# Metrics\n\nno table here\n")
    assert with_table(f"a\n{BEGIN}\nold\n{END}\nb").splitlines()[1:-1] == table().splitlines()
