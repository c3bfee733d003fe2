"""Template variables and the dashboard shell every termfleet dashboard shares.

Query variables are multi-value with "All"; Grafana then sends the selected values (all of them
for "All") as a regex ``(a|b)``, so panels filter with ``label=~"$var"``. The jurisdiction
variables come from ``termfleet_district_devices``, which lists every district of the tree
whatever its terminals do, so the lists are complete even where nothing is wrong.
"""

# The SDK's builders set flags through positional bools (.multi(True)): its API, not ours.
# ruff: noqa: FBT003

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as model

from .panels import DATASOURCE, TAG, Grid

REFRESH = "30s"
TIME_FROM = "now-6h"


def datasource() -> dashboard.DatasourceVariable:
    return (
        dashboard.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .description("The Prometheus that scrapes the control plane(s).")
    )


def label_values(name: str, label: str, query: str, description: str) -> dashboard.QueryVariable:
    """A multi-value variable over ``label``'s values in ``query`` (a PromQL series selector)."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(f"label_values({query}, {name})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
    )


def city() -> dashboard.QueryVariable:
    return label_values(
        "city",
        "City 市",
        "termfleet_district_devices",
        "行政区划 code of the city; none for terminals placed nowhere.",
    )


def district() -> dashboard.QueryVariable:
    return label_values(
        "district",
        "District 区/县",
        'termfleet_district_devices{city=~"$city"}',
        "行政区划 code of the district, within the chosen cities.",
    )


def kind() -> dashboard.QueryVariable:
    return label_values(
        "kind",
        "Device kind",
        "termfleet_devices",
        "kiosk 一体机, review_pad 评价器, station_pc 村居站, booth 政务晓屋.",
    )


def level(metric: str) -> dashboard.QueryVariable:
    return label_values(
        "level",
        "Hall level",
        metric,
        "Level of the hall the terminal stands in: district, town, village (none: no site).",
    )


def board(
    uid: str,
    title: str,
    description: str,
    variables: list[dashboard.DatasourceVariable | dashboard.QueryVariable],
    grid: Grid,
) -> dashboard.Dashboard:
    """A dashboard with termfleet's tag, refresh and time range, and the grid's panels."""
    built = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .refresh(REFRESH)
        .time(TIME_FROM, "now")
        .timezone("browser")
        .link(
            dashboard.DashboardLink("termfleet")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for variable in variables:
        built = built.with_variable(variable)
    for panel in grid.panels:
        built = built.with_panel(panel)
    return built
