"""Recording the cases a business system says have ended (``review_cases``), on both databases.

The pure checks first (fields, the rating period's bounds, what counts as a repeat), then the
pad found by device or by window with every refusal, repeats and conflicts, the jurisdiction's
policy shortening the period, and tokens scoped to a town. The API: ``test_api_cases.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from control_plane import review_cases
from control_plane.admin_errors import AdminError, ConflictError, InvalidFieldError, NotFoundError
from control_plane.auth import PermissionDeniedError, Principal, Refusal, Role
from control_plane.db import database
from control_plane.db.models import JurisdictionNode, ServiceWindow, Site
from control_plane.db.review_models import ReviewCase
from control_plane.review_cases import CaseRequest, check_request, rate_by, record_case, repeats
from tests.support.case_world import TOWN_A, World, load_world, set_policy

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ADMIN = Principal(token_id=1, name="business-system", role=Role.ADMIN)


def asked(**fields: object) -> CaseRequest:
    base = CaseRequest(
        case_number="44011720260302000001",
        item_code="11440100MB2C91234X4440117001",
        device_id="pad-d1",
        item_name="居民身份证换领",
        staff_id="A017",
        department="gongan",
        ended_at=NOW - timedelta(minutes=3),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


# --- pure checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"case_number": ""}, "case_number"),
        ({"case_number": "4" * 65}, "case_number"),
        ({"case_number": "4401 1726"}, "case_number"),
        ({"case_number": "4401/1726"}, "case_number"),
        ({"case_number": "4401?1726"}, "case_number"),
        ({"case_number": "4401\x071726"}, "case_number"),
        ({"item_code": ""}, "item_code"),
        ({"item_code": "x" * 65}, "item_code"),
        ({"item_name": "名" * 256}, "item_name"),
        ({"staff_id": "s" * 65}, "staff_id"),
        ({"department": "d" * 65}, "department"),
        ({"site": "hall-d", "window": "W01"}, "device_id"),
        ({"device_id": None}, "device_id"),
        ({"device_id": None, "site": "hall-d"}, "window"),
        ({"device_id": None, "window": "W01"}, "site"),
        ({"ended_at": datetime(2026, 3, 2, 9, 0)}, "ended_at"),  # noqa: DTZ001 - the refusal
    ],
)
def test_requests_that_cannot_make_a_case_are_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        check_request(asked(**changes))
    assert refused.value.field == field


def test_sixty_four_characters_of_any_script_make_a_case_number() -> None:
    check_request(asked(case_number="粤" * 64))
    check_request(asked(device_id=None, site="hall-d", window="W01"))


def test_the_rating_period_is_natural_days_from_the_end_of_the_case() -> None:
    ended = NOW - timedelta(hours=5)
    assert rate_by(ended, NOW, 7) == ended + timedelta(days=7)
    assert rate_by(ended, NOW, 3) == ended + timedelta(days=3)
    beijing = ended.astimezone(timezone(timedelta(hours=8)))
    assert rate_by(beijing, NOW, 7) == ended + timedelta(days=7)


def test_a_clock_a_little_ahead_is_allowed_a_case_ended_later_is_not() -> None:
    ahead = NOW + review_cases.FUTURE_SKEW
    assert rate_by(ahead, NOW, 7) == ahead + timedelta(days=7)
    with pytest.raises(InvalidFieldError) as refused:
        rate_by(ahead + timedelta(seconds=1), NOW, 7)
    assert (refused.value.code, refused.value.field) == (review_cases.ENDED_IN_FUTURE, "ended_at")


@pytest.mark.parametrize("ago", [timedelta(days=7), timedelta(days=30)])
def test_a_case_whose_rating_period_is_over_is_refused(ago: timedelta) -> None:
    with pytest.raises(InvalidFieldError) as refused:
        rate_by(NOW - ago, NOW, 7)
    assert refused.value.code == review_cases.RATING_PERIOD_OVER
    assert rate_by(NOW - ago + timedelta(seconds=1), NOW, ago.days) > NOW


def stored(**fields: object) -> ReviewCase:
    case = ReviewCase(
        case_number="c1",
        device_id="pad-d1",
        window_number="W01",
        item_code="i1",
        item_name="n1",
        staff_id="s1",
        department="gongan",
        ended_at=NOW,
        rate_by=NOW + timedelta(days=7),
    )
    for name, value in fields.items():
        setattr(case, name, value)
    return case


@pytest.mark.parametrize(
    ("request_fields", "same"),
    [
        ({}, True),
        ({"ended_at": None}, True),  # a retry that lets the time default repeats the first
        ({"device_id": None, "site": "hall-d", "window": "W01"}, True),
        ({"device_id": None, "site": "hall-d", "window": "W02"}, False),
        ({"device_id": None, "site": "town-a", "window": "W01"}, False),
        ({"device_id": "pad-a1"}, False),
        ({"ended_at": NOW + timedelta(seconds=1)}, False),
        ({"item_code": "i2"}, False),
        ({"item_name": "n2"}, False),
        ({"staff_id": "s2"}, False),
        ({"department": "minzheng"}, False),
    ],
)
def test_a_repeat_says_again_what_the_case_says(
    request_fields: dict[str, object], *, same: bool
) -> None:
    base = CaseRequest(
        case_number="c1",
        item_code="i1",
        device_id="pad-d1",
        item_name="n1",
        staff_id="s1",
        department="gongan",
        ended_at=NOW,
    )
    request = replace(base, **request_fields)  # type: ignore[arg-type]
    assert repeats(stored(), request, "hall-d") is same


# --- in the database -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def world(database_url: str) -> AsyncIterator[World]:
    async with database(database_url):
        yield await load_world()


async def scoped(code: str) -> Principal:
    node = await JurisdictionNode.get(code=code)
    return Principal(
        token_id=2, name="town", role=Role.ADMIN, scope_path=node.path, scope_code=code
    )


async def test_a_case_for_a_pad_named_by_its_id_is_stored_with_its_window(
    database_url: str,
) -> None:
    async with world(database_url):
        recorded = await record_case(ADMIN, asked(), NOW)
        case = await ReviewCase.get(case_number="44011720260302000001")
        site = await Site.get(code="hall-d")
        window = await ServiceWindow.get(site_id=site.id, number="W01")
    assert (recorded.created, recorded.site_code) == (True, "hall-d")
    assert (case.device_id, case.site_id, case.window_id, case.window_number) == (
        "pad-d1",
        site.id,
        window.id,
        "W01",
    )
    assert (case.item_code, case.item_name, case.staff_id, case.department) == (
        "11440100MB2C91234X4440117001",
        "居民身份证换领",
        "A017",
        "gongan",
    )
    assert case.ended_at == NOW - timedelta(minutes=3)
    assert case.rate_by == NOW - timedelta(minutes=3) + timedelta(days=7)
    assert (case.notified_at, case.defaulted_at) == (None, None)


async def test_a_case_without_an_end_time_ends_now(database_url: str) -> None:
    async with world(database_url):
        await record_case(ADMIN, asked(ended_at=None), NOW)
        case = await ReviewCase.get(case_number="44011720260302000001")
    assert (case.ended_at, case.rate_by) == (NOW, NOW + timedelta(days=7))


@pytest.mark.parametrize(("window", "pad"), [("W01", "pad-d1"), ("W05", "pad-d5")])
async def test_the_one_pad_in_service_at_a_window_is_meant_by_the_window(
    database_url: str, window: str, pad: str
) -> None:
    async with world(database_url):
        recorded = await record_case(
            ADMIN, asked(device_id=None, site="hall-d", window=window), NOW
        )
    assert (recorded.case.device_id, recorded.case.window_number) == (pad, window)


@pytest.mark.parametrize(
    ("pad", "error", "code"),
    [
        ({"device_id": None, "site": "hall-x", "window": "W01"}, InvalidFieldError, "unknown_site"),
        ({"device_id": None, "site": "hall-d", "window": "W09"}, InvalidFieldError,
         "unknown_window"),
        ({"device_id": None, "site": "hall-d", "window": "W02"}, ConflictError, "no_review_pad"),
        ({"device_id": None, "site": "hall-d", "window": "W04"}, ConflictError, "no_review_pad"),
        ({"device_id": None, "site": "hall-d", "window": "W03"}, ConflictError,
         "several_review_pads"),
        ({"device_id": "pad-x"}, InvalidFieldError, "unknown_device"),
        ({"device_id": "kiosk-d"}, InvalidFieldError, "not_a_review_pad"),
        ({"device_id": "pad-d4"}, ConflictError, "device_retired"),
        ({"device_id": "pad-loose"}, ConflictError, "pad_not_placed"),
        ({"device_id": "pad-nowindow"}, ConflictError, "pad_not_placed"),
        ({"ended_at": NOW + timedelta(hours=1)}, InvalidFieldError, "ended_in_future"),
        ({"ended_at": NOW - timedelta(days=8)}, InvalidFieldError, "rating_period_over"),
    ],
)  # fmt: skip
async def test_each_refusal_has_its_code_and_stores_nothing(
    database_url: str, pad: dict[str, object], error: type[AdminError], code: str
) -> None:
    async with world(database_url):
        with pytest.raises(error) as refused:
            await record_case(ADMIN, asked(**pad), NOW)
        count = await ReviewCase.all().count()
    assert refused.value.code == code
    assert count == 0


async def test_several_pads_at_a_window_are_named_so_that_one_can_be_chosen(
    database_url: str,
) -> None:
    async with world(database_url):
        with pytest.raises(ConflictError) as refused:
            await record_case(ADMIN, asked(device_id=None, site="hall-d", window="W03"), NOW)
        chosen = await record_case(ADMIN, asked(device_id="pad-d3b"), NOW)
    assert "pad-d3a, pad-d3b" in refused.value.message
    assert "device_id" in refused.value.message
    assert chosen.case.window_number == "W03"


async def test_the_same_case_again_is_a_repeat_that_changes_nothing(database_url: str) -> None:
    async with world(database_url):
        first = await record_case(ADMIN, asked(), NOW)
        again = await record_case(ADMIN, asked(), NOW + timedelta(minutes=1))
        by_window = await record_case(
            ADMIN, asked(device_id=None, site="hall-d", window="W01"), NOW
        )
        rows = await ReviewCase.all()
    assert (first.created, again.created, by_window.created) == (True, False, False)
    assert [row.case_number for row in rows] == ["44011720260302000001"]
    assert again.case.rate_by == first.case.rate_by


async def test_a_retry_without_an_end_time_repeats_the_first_call(database_url: str) -> None:
    async with world(database_url):
        first = await record_case(ADMIN, asked(ended_at=None), NOW)
        again = await record_case(ADMIN, asked(ended_at=None), NOW + timedelta(seconds=30))
    assert not again.created
    assert again.case.ended_at == first.case.ended_at == NOW


@pytest.mark.parametrize(
    "other",
    [{"staff_id": "B002"}, {"device_id": "pad-a1"}, {"ended_at": NOW - timedelta(minutes=4)}],
)
async def test_the_same_number_with_other_details_is_a_conflict(
    database_url: str, other: dict[str, object]
) -> None:
    async with world(database_url):
        await record_case(ADMIN, asked(), NOW)
        with pytest.raises(ConflictError) as refused:
            await record_case(ADMIN, asked(**other), NOW)
        case = await ReviewCase.get(case_number="44011720260302000001")
    assert refused.value.code == review_cases.CASE_EXISTS
    assert (case.device_id, case.staff_id) == ("pad-d1", "A017")


async def test_two_identical_calls_at_once_store_one_case(database_url: str) -> None:
    async with world(database_url):
        results = await asyncio.gather(
            record_case(ADMIN, asked(), NOW), record_case(ADMIN, asked(), NOW)
        )
        count = await ReviewCase.all().count()
    assert sorted(result.created for result in results) == [False, True]
    assert count == 1


async def test_a_shorter_rating_period_on_a_town_holds_for_its_sites_only(
    database_url: str,
) -> None:
    ended = NOW - timedelta(days=4)
    async with world(database_url):
        await set_policy(TOWN_A, 3)
        at_b = await record_case(ADMIN, asked(case_number="b1", device_id="pad-b1"), NOW)
        at_a = await record_case(
            ADMIN, asked(case_number="a1", device_id="pad-a1", ended_at=NOW), NOW
        )
        with pytest.raises(InvalidFieldError) as refused:
            await record_case(
                ADMIN, asked(case_number="a2", device_id="pad-a1", ended_at=ended), NOW
            )
        old_at_b = await record_case(
            ADMIN, asked(case_number="b2", device_id="pad-b1", ended_at=ended), NOW
        )
    assert at_a.case.rate_by == NOW + timedelta(days=3)
    assert at_b.case.rate_by == NOW - timedelta(minutes=3) + timedelta(days=7)
    assert refused.value.code == review_cases.RATING_PERIOD_OVER
    assert old_at_b.case.rate_by == ended + timedelta(days=7)


async def test_a_town_token_tells_its_own_pads_only(database_url: str) -> None:
    async with world(database_url):
        town_a = await scoped(TOWN_A)
        mine = await record_case(town_a, asked(case_number="a1", device_id="pad-a1"), NOW)
        refusals = []
        for pad in (
            {"device_id": "pad-b1"},
            {"device_id": "pad-x"},  # unknown: not told apart from outside the scope
            {"device_id": "pad-loose"},  # placed nowhere: in no scope
            {"device_id": None, "site": "town-b", "window": "W01"},
            {"device_id": None, "site": "hall-x", "window": "W01"},
        ):
            with pytest.raises(PermissionDeniedError) as refused:
                await record_case(town_a, asked(case_number="b1", **pad), NOW)
            refusals.append(refused.value.code)
        count = await ReviewCase.all().count()
    assert mine.created
    assert refusals == [Refusal.OUT_OF_SCOPE] * 5
    assert count == 1


async def test_a_case_outside_the_scope_is_taken_but_not_shown(database_url: str) -> None:
    async with world(database_url):
        await record_case(ADMIN, asked(device_id="pad-b1"), NOW)
        town_a = await scoped(TOWN_A)
        with pytest.raises(ConflictError) as taken:
            await record_case(town_a, asked(device_id="pad-b1"), NOW)
        with pytest.raises(NotFoundError):
            await review_cases.load_case(town_a, "44011720260302000001")
        shown = await review_cases.load_case(ADMIN, "44011720260302000001")
    assert taken.value.code == review_cases.CASE_EXISTS
    assert "pad-b1" not in taken.value.message
    assert (shown.case.device_id, shown.site_code, shown.review) == ("pad-b1", "town-b", None)


@pytest.mark.parametrize("number", ["nope", "a/b", "x" * 65])
async def test_an_unknown_case_is_not_found(database_url: str, number: str) -> None:
    async with world(database_url):
        with pytest.raises(NotFoundError):
            await review_cases.load_case(ADMIN, number)
