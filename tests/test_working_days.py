"""The working-day calendar: 2026 deadlines by hand, years without data, overrides, refusals."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.reviews import working_days
from control_plane.reviews.working_days import (
    MAX_WORKING_DAYS,
    CalendarDataError,
    Due,
    WorkingCalendar,
    load_calendar,
    parse_arrangement,
)

CALENDAR = load_calendar()
D = date

HEADER = 'year = 2026\nsource = "test"\n'


def days(first: date, last: date) -> set[date]:
    return {first + timedelta(days=k) for k in range((last - first).days + 1)}


@pytest.mark.parametrize(
    ("start", "n", "due"),
    [
        # National Day 2026 (off Thu Oct 1 - Wed Oct 7; make-up Sun Sep 20 and Sat Oct 10).
        # A review on Wed Sep 30, 5 working days; Sep 30 itself does not count:
        # Oct 1-7 off; Thu Oct 8 = 1, Fri Oct 9 = 2, Sat Oct 10 (调休) = 3, Sun Oct 11 off,
        # Mon Oct 12 = 4, Tue Oct 13 = 5.
        (D(2026, 9, 30), 5, D(2026, 10, 13)),
        # Thu Sep 24: Fri Sep 25 - Sun Sep 27 are Mid-Autumn off; Mon 28 = 1, Tue 29 = 2,
        # Wed 30 = 3, Oct 1-7 off, Thu Oct 8 = 4, Fri Oct 9 = 5.
        (D(2026, 9, 24), 5, D(2026, 10, 9)),
        (D(2026, 9, 18), 1, D(2026, 9, 20)),  # Fri → Sun Sep 20, a make-up working day
        (D(2026, 10, 3), 1, D(2026, 10, 8)),  # made on a day off: the next working day is 1
        (D(2026, 10, 9), 1, D(2026, 10, 10)),  # Fri → Sat Oct 10, a make-up working day
        # 15 working days from Sep 30: Oct 8, 9, 10 (Sat), 12-16, 19-23 make 13; 26, 27 → 15.
        (D(2026, 9, 30), 15, D(2026, 10, 27)),
        # Spring Festival (off Sun Feb 15 - Mon Feb 23; make-up Sat Feb 14 and Sat Feb 28).
        (D(2026, 2, 13), 1, D(2026, 2, 14)),  # Fri → Sat Feb 14 (调休)
        (D(2026, 2, 13), 2, D(2026, 2, 24)),  # Feb 14 = 1, Feb 15-23 off, Tue Feb 24 = 2
        # Thu Feb 12: Fri 13 = 1, Sat 14 = 2, Tue 24 = 3, Wed 25 = 4, Thu 26 = 5.
        (D(2026, 2, 12), 5, D(2026, 2, 26)),
        (D(2026, 2, 13), 6, D(2026, 2, 28)),  # 14, 24, 25, 26, 27, then Sat 28 (调休) = 6
        (D(2026, 2, 13), 7, D(2026, 3, 2)),  # Sun Mar 1 is an ordinary Sunday
        # New Year (off Thu Jan 1 - Sat Jan 3; Sun Jan 4 is a working day).
        (D(2025, 12, 31), 1, D(2026, 1, 4)),
        (D(2025, 12, 31), 3, D(2026, 1, 6)),
        (D(2026, 1, 2), 1, D(2026, 1, 4)),
        # Qingming (Sat Apr 4 - Mon Apr 6): Fri Apr 3 → Tue Apr 7.
        (D(2026, 4, 3), 1, D(2026, 4, 7)),
        # Labour Day (Fri May 1 - Tue May 5; Sat May 9 works). Thu Apr 30, 15 days:
        # May 6, 7, 8, 9 (Sat) = 4; 11-15 = 9; 18-22 = 14; Mon May 25 = 15.
        (D(2026, 4, 30), 15, D(2026, 5, 25)),
        # A plain week: Wed Mar 11 → Thu 12, Fri 13, Mon 16, Tue 17, Wed 18.
        (D(2026, 3, 11), 5, D(2026, 3, 18)),
        (D(2026, 3, 9), 5, D(2026, 3, 16)),  # Monday to Monday
        (D(2026, 3, 14), 1, D(2026, 3, 16)),  # made on a Saturday
    ],
)
def test_deadlines_in_2026_fall_where_a_hand_count_puts_them(
    start: date, n: int, due: date
) -> None:
    assert CALENDAR.add_working_days(start, n) == Due(due)


def test_make_up_days_are_working_days_and_days_off_are_not() -> None:
    assert CALENDAR.is_working_day(D(2026, 1, 4))  # Sunday, 调休
    assert CALENDAR.is_working_day(D(2026, 2, 28))  # Saturday, 调休
    assert not CALENDAR.is_working_day(D(2026, 2, 16))  # Monday, 春节
    assert not CALENDAR.is_working_day(D(2026, 10, 11))  # an ordinary Sunday
    assert CALENDAR.is_working_day(D(2026, 3, 10))  # an ordinary Tuesday


def test_a_year_without_data_is_counted_by_weekends_and_says_so() -> None:
    # Thu Dec 31 2026, 5 working days. 2027 has no data (its notice is not out), so Fri Jan 1
    # counts as a working day although New Year's Day will surely be off: Jan 1 = 1, Mon 4 = 2,
    # Tue 5 = 3, Wed 6 = 4, Thu 7 = 5.
    due = CALENDAR.add_working_days(D(2026, 12, 31), 5)

    assert due == Due(D(2027, 1, 7), provisional_years=(2027,))
    assert due.provisional
    assert CALENDAR.covered_years == {2026}


def test_only_the_days_after_the_start_decide_whether_a_deadline_is_provisional() -> None:
    # 2025 is not shipped: a start in 2025 is fine, a day counted in 2025 is not.
    assert not CALENDAR.add_working_days(D(2025, 12, 31), 1).provisional
    assert CALENDAR.add_working_days(D(2025, 12, 30), 1) == Due(D(2025, 12, 31), (2025,))
    assert CALENDAR.add_working_days(D(2025, 12, 1), 40).provisional_years == (2025,)


def test_a_deadline_across_several_uncovered_years_names_them_all() -> None:
    assert CALENDAR.add_working_days(D(2027, 12, 1), 366).provisional_years == (2027, 2028, 2029)


@pytest.mark.parametrize("n", [0, -1, MAX_WORKING_DAYS + 1])
def test_a_deadline_of_no_days_or_of_more_than_a_year_is_refused(n: int) -> None:
    with pytest.raises(ValueError, match=rf"not {n}$"):
        CALENDAR.add_working_days(D(2026, 3, 2), n)


def test_working_days_between_counts_after_the_first_day_up_to_the_second() -> None:
    assert CALENDAR.working_days_between(D(2026, 3, 9), D(2026, 3, 9)) == 0
    assert CALENDAR.working_days_between(D(2026, 3, 9), D(2026, 3, 16)) == 5
    # Overdue: due Tue Oct 13, still open Fri Oct 16 → 3 working days late; asked the other
    # way round it is -3 (3 working days left).
    assert CALENDAR.working_days_between(D(2026, 10, 13), D(2026, 10, 16)) == 3
    assert CALENDAR.working_days_between(D(2026, 10, 16), D(2026, 10, 13)) == -3
    assert CALENDAR.working_days_between(D(2026, 9, 30), D(2026, 10, 7)) == 0
    # The first day never counts, whether a make-up day or a day off; the last always does.
    assert CALENDAR.working_days_between(D(2026, 2, 14), D(2026, 2, 24)) == 1
    assert CALENDAR.working_days_between(D(2026, 2, 13), D(2026, 2, 14)) == 1
    assert CALENDAR.working_days_between(D(2026, 10, 1), D(2026, 10, 8)) == 1
    assert CALENDAR.working_days_between(D(2026, 9, 30), D(2026, 10, 1)) == 0


def test_the_shipped_2026_file_is_exactly_the_state_council_arrangement() -> None:
    # Each day written out, independent of the file's range syntax.
    off = (
        days(D(2026, 1, 1), D(2026, 1, 3))
        | days(D(2026, 2, 15), D(2026, 2, 23))
        | days(D(2026, 4, 4), D(2026, 4, 6))
        | days(D(2026, 5, 1), D(2026, 5, 5))
        | days(D(2026, 6, 19), D(2026, 6, 21))
        | days(D(2026, 9, 25), D(2026, 9, 27))
        | days(D(2026, 10, 1), D(2026, 10, 7))
    )
    work = {D(2026, 1, 4), D(2026, 2, 14), D(2026, 2, 28), D(2026, 5, 9)}
    work |= {D(2026, 9, 20), D(2026, 10, 10)}

    assert CALENDAR.off == off
    assert CALENDAR.work == work
    assert len(off) == 3 + 9 + 3 + 5 + 3 + 3 + 7


def test_2026_has_248_working_days() -> None:
    # By hand: 2026 starts on a Thursday and has 365 days, so 52 weeks and one Thursday:
    # 52 x 5 + 1 = 261 weekdays. Weekdays off: 元旦 Jan 1-2 (2), 春节 Feb 16-20 and 23 (6),
    # 清明 Apr 6 (1), 劳动节 May 1, 4, 5 (3), 端午 Jun 19 (1), 中秋 Sep 25 (1), 国庆 Oct 1, 2,
    # 5, 6, 7 (5): 19. Make-up days: 6. 261 - 19 + 6 = 248, not the 250 in the brief; it agrees
    # with 365 - 104 weekend days - 13 statutory holiday days (the count since 2025).
    whole_year = days(D(2026, 1, 1), D(2026, 12, 31))

    assert sum(CALENDAR.is_working_day(day) for day in whole_year) == 248
    assert CALENDAR.working_days_between(D(2025, 12, 31), D(2026, 12, 31)) == 248


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_an_override_adds_a_local_day_off_to_the_shipped_year(tmp_path: Path) -> None:
    local = write(
        tmp_path / "local.toml",
        HEADER + '[[holiday]]\nname = "local day"\noff = ["2026-03-05"]\n',
    )

    calendar = load_calendar([local])

    assert not calendar.is_working_day(D(2026, 3, 5))
    assert calendar.add_working_days(D(2026, 3, 4), 1) == Due(D(2026, 3, 6))
    assert calendar.add_working_days(D(2026, 9, 30), 5) == Due(D(2026, 10, 13))  # shipped holds


def test_an_override_with_replace_stands_for_the_whole_year(tmp_path: Path) -> None:
    replacing = write(
        tmp_path / "2026.toml",
        HEADER + 'replace = true\n[[holiday]]\nname = "国庆节"\noff = ["2026-10-01..2026-10-03"]\n',
    )

    calendar = load_calendar([replacing])

    assert calendar.is_working_day(D(2026, 2, 16))  # the shipped Spring Festival is gone
    assert not calendar.is_working_day(D(2026, 9, 20))  # and so is its make-up Sunday
    # Oct 1-3 off, Sun 4; Mon 5 = 1 … Fri 9 = 5.
    assert calendar.add_working_days(D(2026, 9, 30), 5) == Due(D(2026, 10, 9))


def test_an_override_for_a_new_year_makes_it_covered(tmp_path: Path) -> None:
    # An invented arrangement, only to exercise the mechanism: not the real 2027.
    year = write(
        tmp_path / "cn-2027.toml",
        'year = 2027\nsource = "test"\n[[holiday]]\nname = "元旦"\noff = ["2027-01-01"]\n',
    )

    calendar = load_calendar([year])

    assert calendar.covered_years == {2026, 2027}
    assert calendar.add_working_days(D(2026, 12, 31), 5) == Due(D(2027, 1, 8))


def test_overrides_apply_in_order(tmp_path: Path) -> None:
    added = write(tmp_path / "a.toml", HEADER + '[[holiday]]\nname = "x"\noff = ["2026-03-05"]\n')
    replacing = write(tmp_path / "b.toml", HEADER + "replace = true\n")

    assert load_calendar([added, replacing]).is_working_day(D(2026, 3, 5))
    assert not load_calendar([replacing, added]).is_working_day(D(2026, 3, 5))
    assert load_calendar([replacing]).covered_years == {2026}  # no holidays, still covered


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('off = ["2026-10-01"]', r"local.toml: holiday 'x': day off 2026-10-01 is already listed"),
        ('off = ["2026-02-14"]', r"2026-02-14 is both off and working \(see cn-2026.toml"),
        ('work = ["2026-10-04"]', r"2026-10-04 is both off and working \(see cn-2026.toml"),
        ('work = ["2026-01-04"]', r"make-up day 2026-01-04 is already listed by cn-2026.toml"),
    ],
)
def test_an_adding_override_that_contradicts_the_shipped_year_is_refused(
    tmp_path: Path, entry: str, message: str
) -> None:
    local = write(tmp_path / "local.toml", HEADER + f'[[holiday]]\nname = "x"\n{entry}\n')

    with pytest.raises(CalendarDataError, match=message):
        load_calendar([local])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("year = \n", r"^f.toml: not valid TOML"),
        ('source = "s"\n', r"^f.toml: year must be a whole number such as 2026, not None"),
        ('year = "2026"\nsource = "s"\n', r"year must be a whole number .*not '2026'"),
        ('year = true\nsource = "s"\n', r"year must be a whole number .*not True"),
        ("year = 2026\n", r"^f.toml: source must name the notice"),
        (HEADER + "colour = 1\n", r"^f.toml: unknown keys \['colour'\]"),
        (HEADER + 'replace = "yes"\n', r"replace must be true or false, not 'yes'"),
        (HEADER + 'holiday = "x"\n', r"write each holiday as a \[\[holiday\]\] table"),
        (HEADER + '[[holiday]]\noff = ["2026-01-01"]\n', r"^f.toml: holiday 1: needs a name"),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = ["2026-01-01"]\n[[holiday]]\nname = "b"\n',
            r"^f.toml: holiday 2 \(b\): lists no days off and no make-up days",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\ndays = ["2026-01-01"]\n',
            r"^f.toml: holiday 1 \(a\): unknown keys \['days'\]",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = ["2025-12-31"]\n',
            r"holiday 1 \(a\): off: 2025-12-31 is outside the file's year 2026",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\nwork = ["2027-01-02"]\n',
            r"holiday 1 \(a\): work: 2027-01-02 is outside the file's year 2026",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = ["2026-12-31..2027-01-01"]\n',
            r"off: 2027-01-01 is outside the file's year 2026",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = ["2026-02-14"]\nwork = ["2026-02-14"]\n',
            r"holiday 'a': 2026-02-14 is both off and working",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\nwork = ["2026-02-16"]\n',
            r"holiday 1 \(a\): make-up day 2026-02-16 is a Monday, not a Saturday or Sunday",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = ["2026-10-01..2026-10-03", "2026-10-03"]\n',
            r"holiday 1 \(a\): off: 2026-10-03 is listed twice",
        ),
        (
            HEADER
            + '[[holiday]]\nname = "a"\noff = ["2026-10-01"]\n'
            + '[[holiday]]\nname = "b"\noff = ["2026-10-01"]\n',
            r"f.toml: holiday 'b': day off 2026-10-01 is already listed by f.toml: holiday 'a'",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = ["2026-2-14"]\n',
            r"holiday 1 \(a\): off: '2026-2-14' is not a date \(YYYY-MM-DD\)",
        ),
        (HEADER + '[[holiday]]\nname = "a"\noff = ["2026-02-30"]\n', r"'2026-02-30' is not a date"),
        (HEADER + '[[holiday]]\nname = "a"\noff = ["20260214"]\n', r"'20260214' is not a date"),
        (HEADER + '[[holiday]]\nname = "a"\noff = ["2026-02-14.."]\n', r"'' is not a date"),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = [2026-02-14]\n',
            r"off: datetime.date\(2026, 2, 14\) is not a quoted date",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = "2026-02-14"\n',
            r"off: must be a list of dates, not '2026-02-14'",
        ),
        (
            HEADER + '[[holiday]]\nname = "a"\noff = ["2026-10-07..2026-10-01"]\n',
            r"range '2026-10-07..2026-10-01' ends before it begins",
        ),
    ],
)
def test_a_bad_data_file_is_refused_naming_the_file_and_the_entry(text: str, message: str) -> None:
    with pytest.raises(CalendarDataError, match=message):
        parse_arrangement(text, "f.toml")


def test_the_shipped_data_may_not_replace_or_repeat_a_year() -> None:
    year = parse_arrangement(HEADER, "cn-2026.toml")
    again = parse_arrangement(HEADER, "other.toml")
    replacing = parse_arrangement(HEADER + "replace = true\n", "cn-2026.toml")

    with pytest.raises(CalendarDataError, match=r"^other.toml: year 2026 is also in cn-2026.toml"):
        WorkingCalendar.build([year, again])
    with pytest.raises(CalendarDataError, match=r"replace is for override files only"):
        WorkingCalendar.build([replacing])


def test_a_shipped_file_must_be_named_for_its_year(tmp_path: Path) -> None:
    write(tmp_path / "cn-2025.toml", HEADER)
    (tmp_path / "README").write_text("not a year", encoding="utf-8")

    with pytest.raises(CalendarDataError, match=r"^cn-2025.toml: a shipped year is named cn-2026"):
        load_calendar(shipped=tmp_path)


def test_shipped_years_load_from_any_folder(tmp_path: Path) -> None:
    write(tmp_path / "cn-2026.toml", HEADER)
    (tmp_path / "README").write_text("not a year", encoding="utf-8")

    assert load_calendar(shipped=tmp_path) == WorkingCalendar(covered_years=frozenset({2026}))


def test_an_override_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "gbk.toml"
    path.write_bytes("name = '春节'".encode("gbk"))

    with pytest.raises(CalendarDataError, match=r"gbk.toml: not UTF-8 text"):
        load_calendar([path])


def test_a_calendar_built_by_hand_keeps_the_invariants_the_counting_relies_on() -> None:
    with pytest.raises(CalendarDataError, match=r"days both off and working: 2026-02-14"):
        WorkingCalendar(off=frozenset({D(2026, 2, 14)}), work=frozenset({D(2026, 2, 14)}))
    with pytest.raises(CalendarDataError, match=r"must be weekend days: 2026-02-16"):
        WorkingCalendar(work=frozenset({D(2026, 2, 16)}))


def test_the_module_never_reads_the_clock() -> None:
    source = Path(working_days.__file__).read_text(encoding="utf-8")

    assert not re.search(r"\b(today|now|utcnow|time|monotonic)\(", source)


# Boundaries are where counting goes wrong: start often on a day off or a make-up day.
special_days = sorted(CALENDAR.off | CALENDAR.work)
starts = st.one_of(
    st.dates(min_value=D(2025, 6, 1), max_value=D(2028, 6, 30)),
    st.sampled_from(special_days),
    st.sampled_from(special_days).map(lambda day: day - timedelta(days=1)),
)
counts = st.integers(min_value=1, max_value=MAX_WORKING_DAYS)


@given(start=starts, n=counts)
def test_a_deadline_is_a_working_day_after_the_start_n_working_days_on(start: date, n: int) -> None:
    due = CALENDAR.add_working_days(start, n)

    assert due.day > start
    assert CALENDAR.is_working_day(due.day)
    assert CALENDAR.working_days_between(start, due.day) == n
    counted = {start + timedelta(days=k) for k in range(1, (due.day - start).days + 1)}
    assert due.provisional_years == tuple(sorted({day.year for day in counted} - {2026}))


@given(start=starts, n=st.integers(min_value=1, max_value=MAX_WORKING_DAYS - 1))
def test_a_longer_deadline_falls_later(start: date, n: int) -> None:
    assert CALENDAR.add_working_days(start, n + 1).day > CALENDAR.add_working_days(start, n).day


@given(a=starts, b=starts)
def test_working_days_between_agrees_with_counting_day_by_day(a: date, b: date) -> None:
    first, last = sorted((a, b))
    by_day = sum(
        CALENDAR.is_working_day(first + timedelta(days=k))
        for k in range(1, (last - first).days + 1)
    )

    assert CALENDAR.working_days_between(first, last) == by_day
    assert CALENDAR.working_days_between(last, first) == -by_day
