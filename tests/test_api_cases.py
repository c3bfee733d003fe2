"""/api/v1/cases over HTTP, on both databases, and ``termfleet cases`` against it.

The business system's call answered 201, 200 for a repeat, each refusal with its status, code
and field; the case shown as it stands (awaiting, rated, defaulted, overdue); roles and scopes;
the notice published before the answer when the server is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import test_utils
from click.testing import CliRunner, Result

from control_plane import registry, tokens
from control_plane.auth import Role
from control_plane.case_notices import CaseNotices
from control_plane.db import database
from control_plane.db.review_models import ReviewCase, ReviewRow
from control_plane.fleet import FleetState
from control_plane.http.app import make_app
from control_plane.http.cases import NOTICES
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.review_defaults import record_defaults
from tests.support.admin_api import Api, admin_api_in_a_thread
from tests.support.case_world import TOWN_A, Downlink, RecordingConnection, load_world
from tests.support.scoped_fleet import ApiClient
from tests.support.tokens import TEST_ACTOR

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CASES = "/api/v1/cases"
NUMBER = "44011720260302000001"
BODY: dict[str, Any] = {
    "case_number": NUMBER,
    "device_id": "pad-d1",
    "item_code": "11440100MB2C91234X4440117001",
    "item_name": "居民身份证换领",
    "staff_id": "A017",
    "department": "gongan",
    "ended_at": "2026-03-02T17:27:00+08:00",
}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class CasesApi:
    client: ApiClient
    clock: Clock

    async def token(self, role: Role = Role.ADMIN, scope: str | None = None) -> str:
        name = f"{role}-{scope or 'all'}-{len(await tokens.listed())}"
        return (await tokens.issue(name, role, actor=TEST_ACTOR, scope_code=scope)).secret

    async def call(
        self, method: str, path: str, secret: str, body: object = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = await self.client.request(method, path, headers=headers, data=data)
        return response.status, await response.json()


@contextlib.asynccontextmanager
async def cases_api(
    database_url: str, connection: RecordingConnection | None = None
) -> AsyncIterator[CasesApi]:
    """The API on the cases' district; with ``connection``, notices go out on it at once."""
    clock = Clock()
    async with database(database_url):
        await load_world()
        fleet = FleetState(await registry.load_states())
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics), clock=clock)
        if connection is not None:
            app[NOTICES] = CaseNotices(Downlink(connection), clock)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield CasesApi(client, clock)


def body(**changes: object) -> dict[str, Any]:
    changed = {**BODY, **changes}
    return {key: value for key, value in changed.items() if value is not None}


async def test_a_case_is_recorded_and_shown(database_url: str) -> None:
    async with cases_api(database_url) as api:
        secret = await api.token()
        status, recorded = await api.call("POST", CASES, secret, BODY)
        shown_status, shown = await api.call("GET", f"{CASES}/{NUMBER}", secret)
    assert status == 201, recorded
    assert recorded == {
        "case_number": NUMBER,
        "device_id": "pad-d1",
        "site": "hall-d",
        "window": "W01",
        "ended_at": "2026-03-02T09:27:00+00:00",
        "rate_by": "2026-03-09T09:27:00+00:00",
        "notified": False,
    }
    assert shown_status == 200, shown
    assert shown == {
        "case_number": NUMBER,
        "device_id": "pad-d1",
        "site": "hall-d",
        "window": "W01",
        "item_code": "11440100MB2C91234X4440117001",
        "item_name": "居民身份证换领",
        "department": "gongan",
        "staff_id": "A017",
        "ended_at": "2026-03-02T09:27:00+00:00",
        "rate_by": "2026-03-09T09:27:00+00:00",
        "notified_at": None,
        "defaulted_at": None,
        "status": "awaiting_rating",
        "review": None,
    }


async def test_a_pad_is_found_by_its_window_and_the_end_defaults_to_now(
    database_url: str,
) -> None:
    async with cases_api(database_url) as api:
        status, recorded = await api.call(
            "POST",
            CASES,
            await api.token(),
            body(device_id=None, site="hall-d", window="W01", ended_at=None),
        )
    assert status == 201, recorded
    assert (recorded["device_id"], recorded["ended_at"]) == ("pad-d1", NOW.isoformat())


async def test_a_retry_answers_200_and_other_details_409(database_url: str) -> None:
    async with cases_api(database_url) as api:
        secret = await api.token()
        first = await api.call("POST", CASES, secret, BODY)
        api.clock.now = NOW + timedelta(seconds=20)
        again = await api.call("POST", CASES, secret, BODY)
        other = await api.call("POST", CASES, secret, body(staff_id="B002"))
        count = await ReviewCase.all().count()
    assert (first[0], again[0]) == (201, 200)
    assert again[1] == first[1]
    status, answer = other
    assert status == 409
    assert answer["error"]["code"] == "case_exists"
    assert count == 1


@pytest.mark.parametrize(
    ("changes", "status", "code", "field"),
    [
        ({"device_id": None, "site": "hall-x", "window": "W01"}, 400, "unknown_site", "site"),
        ({"device_id": None, "site": "hall-d", "window": "W09"}, 400, "unknown_window", "window"),
        ({"device_id": None, "site": "hall-d", "window": "W02"}, 409, "no_review_pad", None),
        ({"device_id": None, "site": "hall-d", "window": "W03"}, 409, "several_review_pads",
         None),
        ({"device_id": "pad-x"}, 400, "unknown_device", "device_id"),
        ({"device_id": "kiosk-d"}, 400, "not_a_review_pad", "device_id"),
        ({"device_id": "pad-d4"}, 409, "device_retired", None),
        ({"device_id": "pad-loose"}, 409, "pad_not_placed", None),
        ({"ended_at": "2026-03-02T10:30:00Z"}, 400, "ended_in_future", "ended_at"),
        ({"ended_at": "2026-02-20T10:30:00Z"}, 400, "rating_period_over", "ended_at"),
        ({"ended_at": "2026-03-02T09:00:00"}, 400, "invalid_field", "ended_at"),
        ({"ended_at": "yesterday"}, 400, "invalid_field", "ended_at"),
        ({"ended_at": 1772442000}, 400, "invalid_field", "ended_at"),
        ({"case_number": "4" * 65}, 400, "invalid_field", "case_number"),
        ({"case_number": ""}, 400, "invalid_field", "case_number"),
        ({"case_number": None}, 400, "invalid_field", "case_number"),
        ({"item_code": None}, 400, "invalid_field", "item_code"),
        ({"item_code": 17}, 400, "invalid_field", "item_code"),
        ({"staff_id": "s" * 65}, 400, "invalid_field", "staff_id"),
        ({"site": "hall-d", "window": "W01"}, 400, "invalid_field", "device_id"),
        ({"device_id": None}, 400, "invalid_field", "device_id"),
        ({"device_id": None, "site": "hall-d"}, 400, "invalid_field", "window"),
        ({"citizen_id": "4401"}, 400, "invalid_field", "citizen_id"),
    ],
)  # fmt: skip
async def test_each_refusal_has_its_status_code_and_field(
    database_url: str,
    changes: Mapping[str, object],
    status: int,
    code: str,
    field: str | None,
) -> None:
    async with cases_api(database_url) as api:
        answer_status, answer = await api.call("POST", CASES, await api.token(), body(**changes))
        count = await ReviewCase.all().count()
    assert answer_status == status, answer
    assert answer["error"]["code"] == code
    assert answer["error"]["details"].get("field") == field
    assert count == 0


async def test_a_body_that_is_not_an_object_and_a_query_are_refused(database_url: str) -> None:
    async with cases_api(database_url) as api:
        secret = await api.token()
        array = await api.call("POST", CASES, secret, raw=b"[1]")
        not_json = await api.call("POST", CASES, secret, raw=b"case=1")
        query = await api.call("POST", f"{CASES}?dry_run=1", secret, BODY)
        shown_query = await api.call("GET", f"{CASES}/{NUMBER}?verbose=1", secret)
    assert [status for status, _ in (array, not_json, query, shown_query)] == [400] * 4
    assert array[1]["error"]["code"] == not_json[1]["error"]["code"] == "invalid_body"
    assert query[1]["error"]["details"]["parameter"] == "dry_run"
    assert shown_query[1]["error"]["details"]["parameter"] == "verbose"


@pytest.mark.parametrize(
    ("role", "post", "get"),
    [(Role.ADMIN, 201, 200), (Role.OPERATOR, 403, 200), (Role.AUDITOR, 403, 200),
     (Role.TECHNICIAN, 403, 403)],
)  # fmt: skip
async def test_telling_pads_needs_reviews_write_and_reading_reviews_read(
    database_url: str, role: Role, post: int, get: int
) -> None:
    async with cases_api(database_url) as api:
        await api.call("POST", CASES, await api.token(), BODY)
        secret = await api.token(role)
        posted, _ = await api.call("POST", CASES, secret, body(case_number="c2"))
        got, _ = await api.call("GET", f"{CASES}/{NUMBER}", secret)
    assert (posted, got) == (post, get)


async def test_a_town_token_tells_and_sees_its_own_pads_only(database_url: str) -> None:
    async with cases_api(database_url) as api:
        town_a = await api.token(scope=TOWN_A)
        everywhere = await api.token()
        mine = await api.call("POST", CASES, town_a, body(case_number="a1", device_id="pad-a1"))
        theirs = await api.call("POST", CASES, town_a, body(case_number="b1", device_id="pad-b1"))
        await api.call("POST", CASES, everywhere, body(case_number="b2", device_id="pad-b1"))
        seen = await api.call("GET", f"{CASES}/a1", town_a)
        unseen = await api.call("GET", f"{CASES}/b2", town_a)
    assert (mine[0], seen[0]) == (201, 200)
    assert (theirs[0], theirs[1]["error"]["code"]) == (403, "out_of_scope")
    assert (unseen[0], unseen[1]["error"]["code"]) == (404, "not_found")


async def test_an_unknown_case_is_a_404(database_url: str) -> None:
    async with cases_api(database_url) as api:
        status, answer = await api.call("GET", f"{CASES}/nope", await api.token())
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_a_case_shows_its_rating_its_default_or_that_it_is_overdue(
    database_url: str,
) -> None:
    async with cases_api(database_url) as api:
        secret = await api.token()
        for number in ("rated", "defaulted", "overdue"):
            await api.call("POST", CASES, secret, body(case_number=number, ended_at=None))
        await ReviewRow.create(
            case_number="rated",
            source="terminal",
            device_id="pad-d1",
            seq=3,
            rating="dissatisfied",
            channel="window_pad",
            rated_at=NOW + timedelta(minutes=1),
            received_at=NOW + timedelta(minutes=1),
        )
        api.clock.now = NOW + timedelta(days=7)
        await record_defaults(api.clock.now)
        await ReviewCase.create(  # came due after the job's last pass
            case_number="overdue2",
            device_id="pad-d1",
            window_number="W01",
            ended_at=NOW + timedelta(minutes=1),
            rate_by=NOW + timedelta(days=7, minutes=1),
        )
        api.clock.now = NOW + timedelta(days=7, minutes=2)
        views = {
            number: (await api.call("GET", f"{CASES}/{number}", secret))[1]
            for number in ("rated", "defaulted", "overdue2")
        }
    rated, defaulted, overdue = views["rated"], views["defaulted"], views["overdue2"]
    assert (rated["status"], rated["defaulted_at"]) == ("rated", None)
    assert rated["review"] == {
        "rating": "dissatisfied",
        "source": "terminal",
        "rated_at": (NOW + timedelta(minutes=1)).isoformat(),
        "voided": False,
    }
    assert defaulted["status"] == "defaulted"
    assert defaulted["defaulted_at"] == (NOW + timedelta(days=7)).isoformat()
    assert defaulted["review"] == {
        "rating": "basic",
        "source": "default",
        "rated_at": (NOW + timedelta(days=7)).isoformat(),
        "voided": False,
    }
    assert (overdue["status"], overdue["review"], overdue["site"]) == ("overdue", None, None)


async def test_a_connected_server_publishes_the_notice_before_it_answers(
    database_url: str,
) -> None:
    connection = RecordingConnection()
    async with cases_api(database_url, connection) as api:
        secret = await api.token()
        status, recorded = await api.call("POST", CASES, secret, BODY)
        again_status, again = await api.call("POST", CASES, secret, BODY)
        _, shown = await api.call("GET", f"{CASES}/{NUMBER}", secret)
    assert (status, recorded["notified"]) == (201, True)
    assert (again_status, again["notified"]) == (200, True)
    [(device_id, notice)] = connection.notices()
    assert device_id == "pad-d1"
    assert (notice.case_number, notice.item_code, notice.item_name) == (
        NUMBER,
        "11440100MB2C91234X4440117001",
        "居民身份证换领",
    )
    assert (notice.staff_id, notice.window, notice.institution) == ("A017", "W01", "gongan")
    assert notice.ended_at == datetime(2026, 3, 2, 9, 27, tzinfo=UTC)
    assert shown["notified_at"] == NOW.isoformat()


# --- the command ---------------------------------------------------------------------------------


def cases_cli(*args: str) -> Result:
    from control_plane.cli import cli  # noqa: PLC0415 - the command as the user runs it

    return CliRunner().invoke(cli, ["cases", *args], prog_name="termfleet")


async def _world(_api: Api, _secrets: Mapping[str, str]) -> None:
    await load_world()


def test_notify_and_show_through_the_api(database_url: str) -> None:
    wanted = {"admin": (Role.ADMIN, None)}
    with admin_api_in_a_thread(database_url, wanted, _world) as (base, secrets):
        server = ["--server", base, "--token", secrets["admin"]]
        notified = cases_cli(
            "notify", "--case", "c1", "--device", "pad-d1", "--item", "11440100MB2C9",
            "--item-name", "居民身份证换领", "--staff", "A017", "--department", "gongan",
            *server,
        )  # fmt: skip
        by_window = cases_cli(
            "notify", "--case", "c2", "--site", "hall-d", "--window", "W01", "--item", "i2",
            "--ended-at", datetime.now(UTC).isoformat(), "--json", *server,
        )  # fmt: skip
        repeated = cases_cli(
            "notify", "--case", "c2", "--site", "hall-d", "--window", "W01", "--item", "other",
            *server,
        )  # fmt: skip
        shown = cases_cli("show", "c1", *server)
        shown_json = cases_cli("show", "c2", "--json", *server)
        unknown = cases_cli("show", "no-such-case", *server)
    assert notified.exit_code == 0, notified.output
    assert notified.stdout.startswith("case c1: review pad pad-d1 at site hall-d, window W01;")
    assert "notice waits for the broker connection" in notified.stdout
    assert by_window.exit_code == 0, by_window.output
    assert json.loads(by_window.stdout)["device_id"] == "pad-d1"
    assert repeated.exit_code == 1
    assert "HTTP 409" in repeated.stderr
    assert "recorded before with other details" in repeated.stderr
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "case c1: awaiting its rating"
    assert lines[1] == "  review pad pad-d1 at site hall-d, window W01"
    assert lines[2] == "  item 11440100MB2C9 居民身份证换领; department gongan, staff A017"
    assert lines[4] == "  notice not sent yet"
    assert json.loads(shown_json.stdout)["item_code"] == "i2"
    assert unknown.exit_code == 1
    assert "HTTP 404" in unknown.stderr


@pytest.mark.parametrize(
    "pad",
    [[], ["--device", "pad-d1", "--site", "hall-d", "--window", "W01"], ["--site", "hall-d"]],
)
def test_notify_needs_a_device_or_a_site_and_window(pad: list[str]) -> None:
    result = cases_cli(
        "notify", "--case", "c1", "--item", "i1", *pad, "--server", "http://127.0.0.1:9",
        "--token", "tf_x",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--device" in result.stderr or "--window" in result.stderr


async def test_the_cli_runs_beside_an_api_on_this_loop_too(database_url: str) -> None:
    """``show`` through the in-process API: the command runs in a thread with its own loop."""
    async with cases_api(database_url) as api:
        secret = await api.token()
        await api.call("POST", CASES, secret, body(case_number="c9"))
        base = str(api.client.make_url("")).rstrip("/")
        shown = await asyncio.to_thread(
            cases_cli, "show", "c9", "--json", "--server", base, "--token", secret
        )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["status"] == "awaiting_rating"
