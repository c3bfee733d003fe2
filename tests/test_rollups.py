"""What a record counts for, and the counting of records into hourly and daily keys (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from tortoise import fields

from control_plane.db.rollup_models import DailyRollup, HourlyRollup, RollupCounters
from control_plane.retention import deletable_prefix
from control_plane.rollup_counts import (
    COUNTERS,
    MAX_LATENESS,
    Counted,
    Counts,
    DayKey,
    HourKey,
    MonthKey,
    StoredRow,
    counters_of,
    local_day,
    record_hour,
    tally,
)
from control_plane.rollup_settings import RollupSettings, SettingsError
from edge.protocol import (
    CallForHelp,
    DeviceEvent,
    EventType,
    IdCardRead,
    IdCardResult,
    PrintJob,
    Rating,
    Record,
    Review,
    ReviewChannel,
    SessionStarted,
    Transaction,
    TransactionOutcome,
    encode,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 3, 2, 15, 40, 12, tzinfo=UTC)  # 23:40 in Shanghai


def counted(record: Record) -> Counted | None:
    channel = "review" if isinstance(record, Review) else "usage"
    if isinstance(record, DeviceEvent):
        channel = "event"
    return counters_of(channel, encode(record).decode())


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            Transaction(seq=1, department="rs", item_code="RS-0012"),
            Counted("rs", "RS-0012", (("transactions_completed", 1),)),
        ),
        (
            Transaction(
                seq=1, department="ga", item_code="GA-7", outcome=TransactionOutcome.FAILED
            ),
            Counted("ga", "GA-7", (("transactions_failed", 1),)),
        ),
        (
            Transaction(seq=1, item_code="X", outcome=TransactionOutcome.ABANDONED),
            Counted("", "X", (("transactions_abandoned", 1),)),
        ),
        (
            Review(seq=1, case_number="c", rating=Rating.BASIC, institution="rs", item_code="I"),
            Counted("rs", "I", (("reviews_basic", 1), ("window_cases", 1))),
        ),
        (
            Review(seq=1, case_number="c", rating=Rating.SATISFIED, channel=ReviewChannel.KIOSK),
            Counted("", "", (("reviews_satisfied", 1),)),
        ),
        (PrintJob(seq=1, pages=3), Counted("", "", (("pages_printed", 3),))),
        (PrintJob(seq=1, pages=3, ok=False), Counted("", "", (("print_failures", 1),))),
        (
            IdCardRead(seq=1),
            Counted("", "", (("id_card_reads", 1), ("id_card_failures", 0))),
        ),
        (
            IdCardRead(seq=1, result=IdCardResult.NO_CARD),
            Counted("", "", (("id_card_reads", 1), ("id_card_failures", 1))),
        ),
        (CallForHelp(seq=1), Counted("", "", (("help_calls", 1),))),
        (SessionStarted(seq=1), None),
        (DeviceEvent(seq=1, type=EventType.AGENT_STARTED), None),
    ],
    ids=lambda value: type(value).__name__,
)
def test_each_record_counts_for_its_counters(record: Record, expected: Counted | None) -> None:
    assert counted(record) == expected


def test_a_rating_a_newer_pad_sends_counts_as_unknown_and_still_as_a_case() -> None:
    payload = '{"v":1,"seq":4,"case_number":"c9","rating":"glowing","item_code":"I"}'

    assert counters_of("review", payload) == Counted(
        "", "I", (("reviews_unknown", 1), ("window_cases", 1))
    )


def test_codes_longer_than_the_columns_are_cut_to_fit() -> None:
    found = counted(Transaction(seq=1, department="d" * 80, item_code="i" * 70))

    assert found is not None
    assert (len(found.department), len(found.item_code)) == (64, 64)


def test_cases_are_rated_window_cases_and_completed_transactions() -> None:
    counts = Counts(window_cases=3, transactions_completed=2, transactions_failed=5)

    assert (counts.cases, counts.self_service_cases) == (5, 2)


def test_satisfaction_rate_leaves_unknown_ratings_out() -> None:
    counts = Counts(
        reviews_very_satisfied=6,
        reviews_satisfied=1,
        reviews_basic=1,
        reviews_dissatisfied=1,
        reviews_very_dissatisfied=1,
        reviews_unknown=10,
    )

    assert counts.reviews == 20
    assert counts.bad_reviews == 2
    assert counts.satisfaction_rate == pytest.approx(0.8)
    assert Counts(reviews_unknown=3).satisfaction_rate is None


def test_counts_add_up_and_read_back_from_a_row() -> None:
    total = Counts(help_calls=1)
    total.add(Counts(help_calls=2, pages_printed=4))

    assert total == Counts(help_calls=3, pages_printed=4)
    assert Counts.of({"help_calls": 3, "pages_printed": 4, "window_cases": None}) == total
    assert total.values() == tuple(getattr(total, name) for name in COUNTERS)


def test_the_roll_up_tables_have_exactly_the_counters() -> None:
    counters = RollupCounters._meta.fields_map  # noqa: SLF001 - tortoise's model metadata

    assert list(counters) == list(COUNTERS)
    for model in (HourlyRollup, DailyRollup):
        found = model._meta.fields_map  # noqa: SLF001 - as above
        assert all(isinstance(found[name], fields.IntField) for name in COUNTERS)


# --- the hour a record counts in -------------------------------------------------------------


def test_a_record_counts_in_the_hour_it_happened() -> None:
    happened = AT - timedelta(days=3, minutes=20)

    assert record_hour(happened, AT) == datetime(2026, 2, 27, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "device_time",
    [
        None,
        AT + timedelta(minutes=5),  # a clock ahead: nothing is received before it happens
        AT - MAX_LATENESS - timedelta(seconds=1),  # a clock far behind (a flat RTC battery)
    ],
)
def test_without_a_believable_device_time_the_receipt_hour_counts(
    device_time: datetime | None,
) -> None:
    assert record_hour(device_time, AT) == datetime(2026, 3, 2, 15, tzinfo=UTC)


def test_an_hour_in_another_offset_is_the_same_utc_hour() -> None:
    local = datetime(2026, 3, 2, 23, 59, tzinfo=SHANGHAI)

    assert record_hour(local, AT + timedelta(hours=1)) == datetime(2026, 3, 2, 15, tzinfo=UTC)


def test_days_are_local_days() -> None:
    assert local_day(datetime(2026, 3, 2, 15, tzinfo=UTC), SHANGHAI) == date(2026, 3, 2)
    assert local_day(datetime(2026, 3, 2, 16, tzinfo=UTC), SHANGHAI) == date(2026, 3, 3)
    assert local_day(datetime(2026, 3, 2, 16, tzinfo=UTC), ZoneInfo("UTC")) == date(2026, 3, 2)


# --- tallies ---------------------------------------------------------------------------------


def row(record_id: int, record: Record, device: str = "kiosk-1", at: datetime = AT) -> StoredRow:
    channel = "review" if isinstance(record, Review) else "usage"
    return StoredRow(record_id, device, channel, at, at, encode(record).decode())


def test_a_tally_counts_by_hour_and_by_local_day_at_the_devices_site() -> None:
    late_evening = AT  # 23:40 local: 2 March
    after_midnight = AT + timedelta(minutes=30)  # 00:10 local: 3 March
    rows = [
        row(1, Transaction(seq=1, department="rs", item_code="I"), at=late_evening),
        row(2, Transaction(seq=2, department="rs", item_code="I"), at=after_midnight),
        row(3, Transaction(seq=3, department="rs", item_code="I"), "kiosk-2", late_evening),
        row(4, SessionStarted(seq=4)),
        row(5, Transaction(seq=5, department="rs", item_code="I"), "unknown-device"),
    ]

    result = tally(rows, {"kiosk-1": 7, "kiosk-2": None}, SHANGHAI)

    one = Counts(transactions_completed=1)
    two = Counts(transactions_completed=2)
    assert result.hours == {
        HourKey(datetime(2026, 3, 2, 15, tzinfo=UTC), 7, "rs", "I"): one,
        HourKey(datetime(2026, 3, 2, 16, tzinfo=UTC), 7, "rs", "I"): one,
        HourKey(datetime(2026, 3, 2, 15, tzinfo=UTC), 0, "rs", "I"): two,
    }
    assert result.days == {
        DayKey(date(2026, 3, 2), 7, "rs", "I"): one,
        DayKey(date(2026, 3, 3), 7, "rs", "I"): one,
        DayKey(date(2026, 3, 2), 0, "rs", "I"): two,
    }
    assert result.months == {
        MonthKey(date(2026, 3, 1), 7, "rs", "I"): two,
        MonthKey(date(2026, 3, 1), 0, "rs", "I"): two,
    }
    assert (result.counted, result.unreadable) == (4, 0)


def test_a_tally_since_an_hour_leaves_the_earlier_records_out() -> None:
    rows = [
        row(1, CallForHelp(seq=1), at=AT - timedelta(hours=1)),
        row(2, CallForHelp(seq=2), at=AT),
    ]

    result = tally(rows, {}, SHANGHAI, since=datetime(2026, 3, 2, 15, tzinfo=UTC))

    assert list(result.hours.values()) == [Counts(help_calls=1)]


def test_a_payload_this_build_cannot_read_is_counted_as_unreadable_not_raised() -> None:
    rows = [
        StoredRow(1, "k", "usage", AT, AT, '{"v":99,"seq":1,"type":"transaction"}'),
        StoredRow(2, "k", "review", AT, AT, "not json"),
        row(3, CallForHelp(seq=3)),
    ]

    result = tally(rows, {}, SHANGHAI)

    assert (result.counted, result.unreadable) == (1, 2)


# --- retention's pure part -------------------------------------------------------------------


def test_only_the_leading_run_of_old_counted_records_may_go() -> None:
    old, young = AT - timedelta(days=100), AT
    rows = [(1, old), (2, old), (5, young), (6, old)]

    assert deletable_prefix(rows, AT - timedelta(days=90), up_to_id=10) == 2
    assert deletable_prefix(rows, AT - timedelta(days=90), up_to_id=1) == 1
    assert deletable_prefix(rows[2:], AT - timedelta(days=90), up_to_id=10) is None
    assert deletable_prefix([], AT, up_to_id=10) is None


# --- settings --------------------------------------------------------------------------------


def test_settings_default_to_shanghai_90_days_one_year_and_three_years() -> None:
    assert RollupSettings.from_env({}) == RollupSettings(SHANGHAI, 90, 366, 1096)


def test_settings_come_from_the_environment() -> None:
    env = {
        "TERMFLEET_STATS_TIMEZONE": "UTC",
        "TERMFLEET_RETAIN_RECORDS_DAYS": "30",
        "TERMFLEET_RETAIN_HOURLY_DAYS": "60",
        "TERMFLEET_RETAIN_DAILY_DAYS": "3650",
    }

    assert RollupSettings.from_env(env) == RollupSettings(ZoneInfo("UTC"), 30, 60, 3650)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TERMFLEET_STATS_TIMEZONE", "Mars/Olympus"),
        ("TERMFLEET_STATS_TIMEZONE", "../etc/passwd"),
        ("TERMFLEET_RETAIN_RECORDS_DAYS", "0"),
        ("TERMFLEET_RETAIN_HOURLY_DAYS", "ninety"),
        ("TERMFLEET_RETAIN_DAILY_DAYS", "99999999"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        RollupSettings.from_env({name: value})
