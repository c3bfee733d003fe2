"""Fleet overview and the site drill-down: who is online, who should be, what is broken where."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

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

KIND = 'kind=~"$kind"'
PLACE = 'city=~"$city", district=~"$district"'
SITE = f'{PLACE}, site=~"$site"'
TOP = 10


def fleet_overview() -> dashboard.Dashboard:
    grid = Grid()
    for title, presence, description, steps in (
        ("Online 在线", "online", "Terminals whose agent is connected now.", var_neutral()),
        (
            "Unexpectedly offline 异常离线",
            "offline_unexpected",
            "Offline while their site is open (or its hours are unknown): someone should look.",
            OK_ABOVE_ZERO_IS_BAD,
        ),
        (
            "Expected offline 闭馆离线",
            "offline_expected",
            "Offline while their site is closed: a village station switched off at night.",
            var_neutral(),
        ),
    ):
        grid.add(
            single_stat(
                title,
                description,
                f'sum(termfleet_devices{{{KIND}, presence="{presence}"}})',
                steps=steps,
            ),
            width=6,
            height=5,
        )
    grid.add(
        single_stat(
            "Online share 在线率",
            "Online terminals over all terminals of the chosen kinds, unknown presence included.",
            f'sum(termfleet_devices{{{KIND}, presence="online"}})'
            f" / sum(termfleet_devices{{{KIND}}})",
            unit="percentunit",
            steps=thresholds((None, "red"), (0.9, "orange"), (0.98, "green")),
        ),
        width=6,
        height=5,
    )
    grid.add(
        time_series(
            "Presence by kind",
            "Terminals by kind and presence (online, offline_expected, offline_unexpected, "
            "unknown: never heard of since the control plane started).",
            [
                query(
                    f"sum by (kind, presence) (termfleet_devices{{{KIND}}})",
                    "{{kind}} {{presence}}",
                )
            ],
        )
    )
    grid.add(
        time_series(
            "Presence by hall level",
            "Terminals by the level of the hall they stand in (district, town, village; none: "
            "not placed) and presence.",
            [
                query(
                    f"sum by (level, presence) (termfleet_devices{{{KIND}}})",
                    "{{level}} {{presence}}",
                )
            ],
        )
    )
    grid.add(
        time_series(
            "Presence by district 区/县",
            "Terminals of every district of the chosen cities, by presence.",
            [
                query(
                    f"sum by (district, presence) (termfleet_district_devices{{{PLACE}}})",
                    "{{district}} {{presence}}",
                )
            ],
        ),
        width=24,
    )
    grid.add(
        bar_gauge(
            "Peripheral faults by peripheral 外设故障",
            "Peripherals of online terminals that are not ok, by peripheral kind (receipt "
            "printer, ID-card reader 身份证阅读器, document camera 高拍仪, review pad, ...).",
            "sum by (peripheral_kind) (termfleet_peripheral_faults)",
            "{{peripheral_kind}}",
            steps=OK_ABOVE_ZERO_IS_BAD,
        )
    )
    grid.add(
        bar_gauge(
            "Printers out of paper 缺纸",
            "Printers of online terminals reporting paper_out or paper_near_end, by printer "
            "kind and reason: send someone with a roll before the kiosk can no longer print.",
            'sum by (peripheral_kind, reason) (termfleet_peripheral_faults{reason=~"paper_.*"})',
            "{{peripheral_kind}} {{reason}}",
            steps=OK_ABOVE_ZERO_IS_BAD,
        )
    )
    grid.add(
        top_table(
            f"Top {TOP} sites with terminals unexpectedly offline",
            "Sites (site code) with the most terminals offline while open, from the site "
            "gauge (the worst 50 sites of the fleet). Drill down on the site dashboard.",
            f"topk({TOP}, sum by (site, level, district) "
            f"(termfleet_site_devices_offline_unexpected{{{PLACE}}}))",
        ),
        width=8,
    )
    grid.add(
        top_table(
            f"Top {TOP} sites with faulty peripherals",
            "Sites with the most faulty peripherals on online terminals.",
            f"topk({TOP}, sum by (site, level, district) "
            f"(termfleet_site_peripheral_faults{{{PLACE}}}))",
        ),
        width=8,
    )
    grid.add(
        top_table(
            f"Top {TOP} open sites with windows without a review pad",
            "Windows (窗口) of open sites where no online review pad (评价器) is bound: "
            "citizens there cannot rate (好差评).",
            f"topk({TOP}, sum by (site, level, district) "
            f"(termfleet_site_windows_without_pad{{{PLACE}}}))",
        ),
        width=8,
    )
    grid.add(
        time_series(
            "Outbox backlog 待发记录",
            "Online terminals by records waiting in their outbox (from heartbeats), per "
            "upper bound: a rising count beyond 100 means records are not getting through.",
            [query("sum by (le) (termfleet_outbox_backlog_records_bucket)", "≤ {{le}}")],
        )
    )
    grid.add(
        time_series(
            "Records waiting in outboxes",
            "Records waiting in the outboxes of all online terminals.",
            [query("sum(termfleet_outbox_backlog_records_gsum)", "records")],
        )
    )
    return var.board(
        "termfleet-fleet",
        "termfleet / Fleet overview",
        "Presence of every terminal, peripheral faults, the worst sites and outbox backlogs.",
        [var.datasource(), var.city(), var.district(), var.kind()],
        grid,
    )


def var_neutral() -> dashboard.ThresholdsConfig:
    return thresholds((None, "blue"))


def site_variable() -> dashboard.QueryVariable:
    return var.label_values(
        "site",
        "Site 场所",
        f'{{__name__=~"termfleet_site_.+|termfleet_hall_reviews_last_hour", {PLACE}}}',
        "Sites the site gauges list now: those with trouble (offline terminals, faults, "
        "windows without a pad, bad reviews in the last hour).",
    )


def site_drill_down() -> dashboard.Dashboard:
    grid = Grid()
    grid.add(
        single_stat(
            "Unexpectedly offline 异常离线",
            "Terminals offline at the chosen sites while they are open.",
            f"sum(termfleet_site_devices_offline_unexpected{{{SITE}}})",
            steps=OK_ABOVE_ZERO_IS_BAD,
        ),
        width=8,
        height=5,
    )
    grid.add(
        single_stat(
            "Faulty peripherals 外设故障",
            "Peripherals not ok on online terminals at the chosen sites.",
            f"sum(termfleet_site_peripheral_faults{{{SITE}}})",
            steps=OK_ABOVE_ZERO_IS_BAD,
        ),
        width=8,
        height=5,
    )
    grid.add(
        single_stat(
            "Windows without a review pad",
            "Windows of the chosen (open) sites with no online review pad (评价器).",
            f"sum(termfleet_site_windows_without_pad{{{SITE}}})",
            steps=OK_ABOVE_ZERO_IS_BAD,
        ),
        width=8,
        height=5,
    )
    grid.add(
        time_series(
            "Terminals unexpectedly offline by site",
            "Per site, over time: when did they drop, did they come back.",
            [
                query(
                    f"sum by (site) (termfleet_site_devices_offline_unexpected{{{SITE}}})",
                    "{{site}}",
                )
            ],
        )
    )
    grid.add(
        top_table(
            "Faulty peripherals by kind and reason",
            "paper_out, paper_near_end, no_answer, unplugged, sam_fault, ... per peripheral kind.",
            f"sum by (site, peripheral_kind, reason) (termfleet_site_peripheral_faults{{{SITE}}})",
        )
    )
    grid.add(
        time_series(
            "Reviews in the last hour 好差评",
            "Reviews stored in the last hour at the chosen halls, all and bad (差评); a hall is "
            "listed only while it has a bad review in that hour.",
            [
                query(
                    f"sum by (site, rating_class) (termfleet_hall_reviews_last_hour{{{SITE}}})",
                    "{{site}} {{rating_class}}",
                )
            ],
        )
    )
    grid.add(
        note(
            "Per terminal",
            "Prometheus holds no per-terminal series (bounded labels). For the terminals of a "
            "site use the CLI or the REST API:\n\n"
            "- `termfleet sites show SITE` (hours, windows)\n"
            "- `termfleet devices ls --site SITE` (presence, faults) or "
            "`GET /api/v1/devices?site=SITE`\n"
            "- `termfleet devices show DEVICE` (peripherals, recent records)",
        )
    )
    return var.board(
        "termfleet-site",
        "termfleet / Site drill-down",
        "One site (or a few): offline terminals, faulty peripherals, windows without a pad.",
        [var.datasource(), var.city(), var.district(), site_variable()],
        grid,
    )
