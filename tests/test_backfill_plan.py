"""The backfill's pure parts.

The span, the seeds' targets, rates by hall level, visit times, dated records and their tally,
the ledger that refuses a second backfill, the progress lines.
"""

from __future__ import annotations

import io
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from edge.protocol import (
    CallForHelp,
    CaseNotice,
    DeviceKind,
    IdCardRead,
    IdCardResult,
    PrintJob,
    Rating,
    Review,
    SessionEnded,
    SessionStarted,
    Transaction,
    TransactionOutcome,
)
from edge.schedule import DEFAULT_ZONE, parse
from edge.simulator import backfill_progress
from edge.simulator.activity import RatedCase, Visit
from edge.simulator.backfill import BackfillPlan, terminal_day
from edge.simulator.backfill_ledger import (
    BackfillRefusedError,
    backfilled_days,
    claim_days,
    ledger_path,
)
from edge.simulator.backfill_plan import (
    MAX_BACKFILL_DAYS,
    RATING_YIELD,
    SEED_Q1_CASES,
    BackfillPlanError,
    backfill_days,
    plan_levels,
    targets,
    visit_starts,
    weighted_minutes,
)
from edge.simulator.backfill_visits import Produced, case_number, dated_records
from edge.simulator.district import SimulatedTerminal, load_district, opening_hours, terminals

HALL = parse("mon-fri 08:30-12:00,14:00-17:30; sat 09:00-12:00")
ALWAYS = parse("24/7")
MONDAY, SATURDAY, SUNDAY = date(2026, 3, 2), date(2026, 3, 7), date(2026, 3, 8)
_HOURS_TEXTS = {site["hours"] for site in load_district("conghua")["sites"]}


# --- the span and the targets ------------------------------------------------------------


def test_the_span_is_whole_days_before_today_oldest_first() -> None:
    days = backfill_days(date(2026, 4, 1), 28)
    assert days[0] == date(2026, 3, 4)
    assert days[-1] == date(2026, 3, 31)
    assert len(set(days)) == 28
    assert days == sorted(days)


@pytest.mark.parametrize("count", [0, -1, MAX_BACKFILL_DAYS + 1])
def test_a_span_outside_the_control_planes_lateness_limit_is_refused(count: int) -> None:
    with pytest.raises(BackfillPlanError, match=r"from 1 to 29.*older than 30 days"):
        backfill_days(date(2026, 4, 1), count)


def test_ninety_days_are_the_seeds_quarter_and_thirty_a_third() -> None:
    assert targets(90) == pytest.approx({"district": 34_435, "town": 5_277, "village": 1_311})
    month = targets(30)
    assert sum(month.values()) == pytest.approx(41_023 / 3)
    assert month["district"] / sum(month.values()) == pytest.approx(0.8394, abs=1e-4)
    assert targets(30, scale=0.1)["town"] == pytest.approx(5_277 / 30)


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_a_scale_that_is_not_positive_is_refused(scale: float) -> None:
    with pytest.raises(BackfillPlanError, match="--backfill-scale must be above 0"):
        targets(3, scale)


# --- the day's shape and the rates --------------------------------------------------------


def test_weighted_minutes_follow_the_hours_and_the_morning_peak() -> None:
    # 08:30-12:00 and 14:00-17:30 is 420 minutes, 120 of them (09:00-11:00) at 1.6.
    assert weighted_minutes(HALL, MONDAY) == pytest.approx(420 + 120 * 0.6)
    assert weighted_minutes(HALL, SATURDAY) == pytest.approx(180 + 120 * 0.6)
    assert weighted_minutes(HALL, SUNDAY) == 0
    # A 24/7 site: 9 day hours (07:00-22:00 less the peak's 2) at 1, 2 at 1.6, 9 night hours at
    # 0.1, less the last 10 minutes before midnight (no visit starts then).
    night = (9 * 60 - 10) * 0.1
    assert weighted_minutes(ALWAYS, MONDAY) == pytest.approx(13 * 60 + 120 * 1.6 + night)


def test_each_levels_rate_gives_its_raters_the_target_in_expectation() -> None:
    district = terminals("conghua")
    hours = opening_hours("conghua")
    days = backfill_days(date(2026, 4, 1), 28)
    wanted = targets(len(days))
    plans = plan_levels(district, hours, days, wanted)
    # Per hours text, not per site: every village station keeps the same hours.
    by_hours = {h: sum(weighted_minutes(parse(h), d) for d in days) for h in _HOURS_TEXTS}
    minutes = {site["code"]: by_hours[site["hours"]] for site in load_district("conghua")["sites"]}
    for level, plan in plans.items():
        expected = sum(
            plan.rate * RATING_YIELD.get(t.kind, 0) * minutes[t.site_code]
            for t in district
            if t.site_level == level
        )
        assert expected == pytest.approx(wanted[level]), level
    # The district hall is far busier per window than a town centre, a town than a village.
    assert plans["district"].rate > plans["town"].rate > plans["village"].rate > 0


def test_a_level_without_raters_gets_no_rate_rather_than_a_division_by_zero() -> None:
    kiosk = SimulatedTerminal("kiosk-x", DeviceKind.KIOSK, "s1", "town")
    plans = plan_levels([kiosk], {"s1": HALL}, [MONDAY], targets(1))
    assert plans["town"].rate == 0
    assert plans["district"].rate == 0


def test_visits_start_while_open_at_the_planned_rate() -> None:
    rng = random.Random(1)
    rate = 0.05
    days = [MONDAY + timedelta(weeks=n) for n in range(40)]
    starts = [s for d in days for s in visit_starts(HALL, d, rate, rng)]
    assert all(HALL.is_open(s) for s in starts)
    expected = rate * weighted_minutes(HALL, MONDAY) * len(days)  # about 984
    assert abs(len(starts) - expected) < 4 * expected**0.5
    assert visit_starts(HALL, SUNDAY, rate, rng) == []
    assert visit_starts(HALL, MONDAY, 0.0, rng) == []


def test_a_day_comes_out_the_same_for_the_same_seed_and_another_for_another() -> None:
    district = terminals("conghua")
    hours = opening_hours("conghua")
    pad = next(t for t in district if t.kind is DeviceKind.REVIEW_PAD)
    days = backfill_days(date(2026, 3, 4), 2)
    plan, again = (BackfillPlan.make(district, hours, days, seed=3) for _ in range(2))
    other = BackfillPlan.make(district, hours, days, seed=4)
    day = date(2026, 3, 3)
    first = terminal_day(pad, hours[pad.site_code], day, plan)
    assert first, "a district hall window on a Tuesday has visits"
    assert first == terminal_day(pad, hours[pad.site_code], day, again)
    assert first != terminal_day(pad, hours[pad.site_code], day, other)


# --- dated records and the tally ---------------------------------------------------------


def _kiosk_visit() -> Visit:
    return Visit(
        [
            SessionStarted(session_id="1"),
            IdCardRead(session_id="1", result=IdCardResult.FAILED),
            Transaction(
                session_id="1",
                department="rs",
                item_code="RS-0012",
                outcome=TransactionOutcome.COMPLETED,
                duration_s=100.0,
            ),
            PrintJob(session_id="1", pages=3),
            CallForHelp(session_id="1"),
            SessionEnded(session_id="1", duration_s=90.0),
        ],
        RatedCase(
            CaseNotice(case_number="station-1-000001", item_code="RS-0012", institution="rs"),
            Rating.DISSATISFIED,
        ),
    )


def test_a_visits_records_are_dated_in_order_and_its_case_carries_its_day() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=DEFAULT_ZONE)
    case = case_number("station-1", MONDAY, 7)
    assert case == "station-1-20260302-0007"
    records = dated_records(_kiosk_visit(), start, case)
    times = [r.at for r in records if r.at is not None]
    assert len(times) == len(records)
    assert times[0] == start
    assert times == sorted(times)
    assert times[2] == start + timedelta(seconds=15 + 100)  # the transaction took its duration
    review = records[-1]
    assert isinstance(review, Review)
    assert review.case_number == case
    assert review.at is not None
    assert review.at > times[-2]


def test_the_tally_counts_as_the_statistics_count() -> None:
    produced = Produced()
    start = datetime(2026, 3, 2, 9, 0, tzinfo=DEFAULT_ZONE)
    produced.add(dated_records(_kiosk_visit(), start, "c1"), "village", "station_pc")
    counts = produced.by_level["village"]
    assert counts["window_cases"] == 1
    assert counts["self_service_cases"] == counts["transactions_completed"] == 1
    assert counts["bad_reviews"] == 1
    assert counts["pages_printed"] == 3
    assert counts["id_card_reads"] == counts["id_card_failures"] == 1
    assert counts["help_calls"] == 1
    # Prints, reads and help calls name no item: only the transaction and the rating do.
    assert produced.by_item["RS-0012"]["window_cases"] == 1
    assert produced.by_item["RS-0012"]["pages_printed"] == 0
    assert produced.by_department["rs"]["self_service_cases"] == 1
    body = produced.as_json()
    assert body["records"] == 7
    assert body["records_by_kind"] == {"station_pc": 7}
    assert body["total"]["window_cases"] == 1


def test_the_seed_levels_have_their_share() -> None:
    total = sum(SEED_Q1_CASES.values())
    assert total == 41_023
    shares = {level: n / total for level, n in SEED_Q1_CASES.items()}
    assert shares == pytest.approx({"district": 0.84, "town": 0.13, "village": 0.03}, abs=0.005)


# --- the ledger and the progress ----------------------------------------------------------


def test_the_ledger_refuses_days_backfilled_before_and_takes_others(tmp_path: Path) -> None:
    claim_days(tmp_path, [date(2026, 3, 1), date(2026, 3, 2)])
    with pytest.raises(BackfillRefusedError) as refused:
        claim_days(tmp_path, [date(2026, 3, 2), date(2026, 3, 3)])
    message = str(refused.value)
    assert "2026-03-02 already backfilled" in message
    assert "count those days twice" in message
    assert str(ledger_path(tmp_path)) in message
    assert backfilled_days(tmp_path) == [date(2026, 3, 1), date(2026, 3, 2)]  # unchanged
    claim_days(tmp_path, [date(2026, 3, 3)])
    assert backfilled_days(tmp_path)[-1] == date(2026, 3, 3)


def test_an_unreadable_ledger_refuses_rather_than_guessing(tmp_path: Path) -> None:
    ledger_path(tmp_path).write_text("{not json")
    with pytest.raises(BackfillRefusedError, match="cannot read the backfill ledger"):
        claim_days(tmp_path, [MONDAY])


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_lines_in_a_log_and_says_when_nothing_moves() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = backfill_progress.Progress(out, tty=False, clock=clock)
    progress.update("acked", 0, 100)
    clock.now = 1.0
    progress.update("acked", 10, 100)  # within LINE_EVERY_S: not shown
    clock.now = 6.0
    progress.update("acked", 10, 100)
    clock.now = 1 + backfill_progress.STALLED_AFTER_S
    progress.update("acked", 10, 100)
    progress.update("acked", 100, 100, final=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "acked: 0/100 (0%)"
    assert lines[1] == "acked: 10/100 (10%)"
    assert "nothing for 60s; is the control plane running?" in lines[2]
    assert lines[-1] == "acked: 100/100 (100%)"


def test_progress_on_a_terminal_redraws_one_bar() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = backfill_progress.Progress(out, tty=True, clock=clock)
    progress.update("written", 5, 10)
    progress.update("written", 10, 10, final=True)
    assert out.getvalue() == (
        "\r[" + "#" * 15 + "-" * 15 + "] written: 5/10 (50%)"
        "\r[" + "#" * 30 + "] written: 10/10 (100%)\n"
    )
