"""Service usage (办件量, self-service) and 好差评 (good/bad reviews, work orders)."""

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

LEVEL = 'level=~"$level"'
PER_MINUTE = "[$__rate_interval])) * 60"
BAD = 'rating=~"dissatisfied|very_dissatisfied"'


def service_usage() -> dashboard.Dashboard:
    grid = Grid()
    grid.add(
        single_stat(
            "Transactions 办件量 (time range)",
            "Service-item transactions (办件) terminals reported in the dashboard's time range.",
            f"sum(increase(termfleet_transactions_total{{{LEVEL}}}[$__range]))",
        ),
        width=8,
        height=5,
    )
    grid.add(
        single_stat(
            "Completed share 办结率",
            "Transactions completed over all with an outcome, in the time range.",
            f'sum(increase(termfleet_transaction_outcomes_total{{{LEVEL}, outcome="completed"}}'
            f"[$__range])) / sum(increase(termfleet_transaction_outcomes_total{{{LEVEL}}}"
            "[$__range]))",
            unit="percentunit",
            steps=thresholds((None, "red"), (0.8, "orange"), (0.95, "green")),
        ),
        width=8,
        height=5,
    )
    grid.add(
        single_stat(
            "Printed pages 打印页数 (time range)",
            "Pages the terminals' printers printed in the time range.",
            f"sum(increase(termfleet_printed_pages_total{{{LEVEL}}}[$__range]))",
        ),
        width=8,
        height=5,
    )
    grid.add(
        time_series(
            "Transactions per minute by hall level",
            "办件 per minute at district halls, town centres and village stations.",
            [
                query(
                    f"sum by (level) (rate(termfleet_transactions_total{{{LEVEL}}}{PER_MINUTE}",
                    "{{level}}",
                )
            ],
            stacked=True,
        )
    )
    grid.add(
        bar_gauge(
            "Transactions by department 部门 (time range)",
            "办件 per approving department code (公安, 民政, 人社, 税务, 公积金, ...); departments "
            "beyond the first 60 registered count as other.",
            f"topk(20, sum by (department) (increase(termfleet_transactions_total{{{LEVEL}}}"
            "[$__range])))",
            "{{department}}",
        )
    )
    grid.add(
        time_series(
            "Transaction outcomes per minute",
            "completed, failed, abandoned (the citizen walked away), unknown.",
            [
                query(
                    "sum by (outcome) (rate(termfleet_transaction_outcomes_total"
                    f"{{{LEVEL}}}{PER_MINUTE}",
                    "{{outcome}}",
                )
            ],
            stacked=True,
        )
    )
    grid.add(
        time_series(
            "Self-service usage per minute 自助服务",
            "Usage records other than transactions: sessions, ID-card reads, prints, calls "
            "for help (呼叫帮办), ...",
            [
                query(
                    f"sum by (event) (rate(termfleet_usage_events_total{{{LEVEL}}}{PER_MINUTE}",
                    "{{event}}",
                )
            ],
        )
    )
    grid.add(
        time_series(
            "Printed pages per minute",
            "Pages printed per minute by hall level.",
            [
                query(
                    f"sum by (level) (rate(termfleet_printed_pages_total{{{LEVEL}}}{PER_MINUTE}",
                    "{{level}}",
                )
            ],
        )
    )
    grid.add(
        note(
            "By item, site and month",
            "Prometheus counts since the control plane started. Handled cases by service item "
            "(事项), site, node and month come from the database:\n\n"
            "- `termfleet stats cases --by level,department --node CODE --from DAY --to DAY`\n"
            "- `GET /api/v1/stats/cases?by=level,department` (docs/statistics.md)",
        )
    )
    return var.board(
        "termfleet-usage",
        "termfleet / Service usage",
        "办件量 by hall level and department, outcomes, self-service usage and printing.",
        [var.datasource(), var.level("termfleet_transactions_total")],
        grid,
    )


def reviews() -> dashboard.Dashboard:
    grid = Grid()
    grid.add(
        single_stat(
            "Bad-review share 差评率 (time range)",
            "不满意 and 非常不满意 over all ratings stored in the time range.",
            f"sum(increase(termfleet_reviews_total{{{LEVEL}, {BAD}}}[$__range])) / "
            f"sum(increase(termfleet_reviews_total{{{LEVEL}}}[$__range]))",
            unit="percentunit",
            steps=thresholds((None, "green"), (0.02, "orange"), (0.05, "red")),
        ),
        width=6,
        height=5,
    )
    grid.add(
        single_stat(
            "Open work orders 整改工单",
            "Bad-review work orders not closed yet (counted about once a minute).",
            f"sum(termfleet_work_orders_open{{{LEVEL}}})",
            steps=thresholds((None, "blue")),
        ),
        width=6,
        height=5,
    )
    grid.add(
        single_stat(
            "Overdue work orders 超期",
            "Open work orders past their due date (件件有着落: every one needs an answer).",
            f"sum(termfleet_work_orders_overdue{{{LEVEL}}})",
            steps=OK_ABOVE_ZERO_IS_BAD,
        ),
        width=6,
        height=5,
    )
    grid.add(
        single_stat(
            "Review chain problems 防篡改 (time range)",
            "Breaks found in review pads' hash chains: a review altered, removed or a pad "
            "restarted its log.",
            "sum(increase(termfleet_review_chain_problems_total[$__range]))",
            steps=OK_ABOVE_ZERO_IS_BAD,
        ),
        width=6,
        height=5,
    )
    grid.add(
        time_series(
            "Reviews per minute by rating",
            "非常满意 very_satisfied, 满意 satisfied, 基本满意 basic, 不满意 dissatisfied, "
            "非常不满意 very_dissatisfied.",
            [
                query(
                    f"sum by (rating) (rate(termfleet_reviews_total{{{LEVEL}}}{PER_MINUTE}",
                    "{{rating}}",
                )
            ],
            stacked=True,
        )
    )
    grid.add(
        bar_gauge(
            "Reviews by hall level and rating (time range)",
            "Ratings stored in the time range per hall level.",
            f"sum by (level, rating) (increase(termfleet_reviews_total{{{LEVEL}}}[$__range]))",
            "{{level}} {{rating}}",
        )
    )
    grid.add(
        top_table(
            "Halls with bad reviews in the last hour",
            "The halls (site codes) with the most 差评 stored in the last hour: bad and all "
            "reviews there in that hour.",
            "sum by (site, level, rating_class) (termfleet_hall_reviews_last_hour"
            '{city=~"$city", district=~"$district"})',
        )
    )
    grid.add(
        time_series(
            "Work orders: open, overdue, opened per hour",
            "Open and overdue work orders by hall level, and those opened in the last hour.",
            [
                query(f"sum by (level) (termfleet_work_orders_open{{{LEVEL}}})", "open {{level}}"),
                query(
                    f"sum by (level) (termfleet_work_orders_overdue{{{LEVEL}}})",
                    "overdue {{level}}",
                    ref="B",
                ),
                query(
                    f"sum by (level) (increase(termfleet_work_orders_opened_total{{{LEVEL}}}[1h]))",
                    "opened/h {{level}}",
                    ref="C",
                ),
            ],
        )
    )
    grid.add(
        time_series(
            "Refused ratings and chain problems",
            "Ratings refused (duplicate: the case was rated already; late: after its rating "
            "period) and hash-chain breaks, per hour.",
            [
                query(
                    "sum by (reason) (increase(termfleet_review_refusals_total[1h]))",
                    "refused {{reason}}",
                ),
                query(
                    "sum by (kind) (increase(termfleet_review_chain_problems_total[1h]))",
                    "chain {{kind}}",
                    ref="B",
                ),
            ],
        )
    )
    grid.add(
        note(
            "Scores, league tables and call-backs",
            "10-point scores, 满意率, league tables (排名) and the call-back rate (回访率) are "
            "computed from the database, not Prometheus:\n\n"
            "- `termfleet reviews scores --by site|window|department|level --month YYYY-MM` "
            "(docs/scores.md), `GET /api/v1/scores`\n"
            "- `termfleet workorders summary` (open, overdue, call-back rate; docs/workorders.md), "
            "`GET /api/v1/workorders/summary`"
            "\n- `termfleet reviews chain-problems` for the pads behind a chain problem",
        )
    )
    return var.board(
        "termfleet-reviews",
        "termfleet / 好差评 reviews",
        "Ratings by level, the bad-review share, halls with bad reviews, work orders.",
        [var.datasource(), var.level("termfleet_reviews_total"), var.city(), var.district()],
        grid,
    )
