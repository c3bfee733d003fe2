"""The few panel and variable shapes termfleet's dashboards use, built with grafana-foundation-sdk.

Every query panel reads the ``datasource`` variable, so one dashboard serves any Prometheus a
Grafana has (the compose stack provisions one with uid ``prometheus``). Panels are placed left
to right on Grafana's 24-column grid by ``Grid``, which also numbers them, so ids and positions
follow from the order of the code and the committed JSON stays stable.
"""

# The SDK's builders set flags through positional bools (.multi(True)): its API, not ours.
# ruff: noqa: FBT003

from __future__ import annotations

from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from grafana_foundation_sdk.models.text import TextMode

TAG = "termfleet"
FOLDER = "termfleet"
"""The Grafana folder (uid and title) the dashboards go to."""
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
GRID_COLUMNS = 24


PanelBuilder = timeseries.Panel | stat.Panel | bargauge.Panel | table.Panel | text.Panel


@dataclass
class Grid:
    """Places panels left to right, wrapping at 24 columns, and numbers them from 1."""

    panels: list[PanelBuilder] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_height: int = 0

    def add(self, panel: PanelBuilder, width: int = 12, height: int = 8) -> None:
        if self._x + width > GRID_COLUMNS:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        panel.id(len(self.panels) + 1).grid_pos(
            model.GridPos(h=height, w=width, x=self._x, y=self._y)
        )
        self.panels.append(panel)
        self._x += width
        self._row_height = max(self._row_height, height)


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    """One PromQL target; ``instant`` for tables and bar gauges of the latest values."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    if instant:
        target = target.instant().format(PromQueryFormat.TABLE)
    return target


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (from minus infinity)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


OK_ABOVE_ZERO_IS_BAD = thresholds((None, "green"), (1, "red"))
"""For counts of trouble: any at all is red."""
NEUTRAL = thresholds((None, "blue"))


def time_series(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    unit: str = "short",
    *,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .fill_opacity(10)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_model.LegendDisplayMode.TABLE)
            .placement(common_model.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        # Every series at the hovered time, largest first: the one in trouble on top.
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_model.TooltipDisplayMode.MULTI)
            .sort(common_model.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(common_model.StackingMode.NORMAL))
    for target in targets:
        panel = panel.with_target(target)
    return panel


def single_stat(
    title: str,
    description: str,
    expr: str,
    unit: str = "short",
    steps: dashboard.ThresholdsConfig = NEUTRAL,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .thresholds(steps)
        .color_mode(common_model.BigValueColorMode.BACKGROUND)
        .graph_mode(common_model.BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(query(expr))
    )


def bar_gauge(  # noqa: PLR0913 - a title, text, query, legend, unit and colours
    title: str,
    description: str,
    expr: str,
    legend: str,
    *,
    unit: str = "short",
    steps: dashboard.ThresholdsConfig = NEUTRAL,
) -> bargauge.Panel:
    """Latest value per series as horizontal bars: a breakdown at a glance."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .thresholds(steps)
        .orientation(common_model.VizOrientation.HORIZONTAL)
        .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(
            prometheus.Dataquery()
            .expr(expr)
            .ref_id("A")
            .legend_format(legend)
            .datasource(DATASOURCE)
            .instant()
        )
    )


def top_table(title: str, description: str, expr: str, unit: str = "short") -> table.Panel:
    """The latest value of each series as a table row (site codes, counts), largest first."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .with_target(query(expr, instant=True))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}}
            )
        )
        .sort_by([common.TableSortByFieldState().display_name("Value").desc(True)])
    )


def note(title: str, markdown: str) -> text.Panel:
    """A text panel: where the answer lives when it is not in Prometheus."""
    return text.Panel().title(title).mode(TextMode.MARKDOWN).content(markdown)
