"""/api/v1/dead-letters: the ingest's dead letters listed and resubmitted over the API.

In-process on the scoped tree (``tests/support/admin_api.py``), on SQLite and PostgreSQL, and
through ``termfleet dead-letters`` against it in a thread. The dead letters are written as the
ingest writes them (``records.store_batch``); the database's refusal is a real trigger
(``tests/support/refusing_database.py``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from control_plane import dead_letters
from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.db.models import AuditEntry, RejectedMessage, StoredRecord
from control_plane.records import RecordRow, RejectedRow, store_batch
from edge.protocol import Channel, PrintJob, encode
from edge.protocol import topics as wire
from tests.support.admin_api import Api, admin_api, admin_api_in_a_thread
from tests.support.refusing_database import POISON, allow_poison, refuse_poison
from tests.support.scoped_fleet import TOWN_A

LIST = "/api/v1/dead-letters"
RESUBMIT = "/api/v1/dead-letters/resubmit"
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DEVICE, OTHER = "kiosk-a", "kiosk-b"


def letter(device: str, seq: int, reason: str, payload: bytes, minute: int) -> RejectedRow:
    topic = wire.uplink(device, Channel.USAGE)
    received = T0 + timedelta(minutes=minute)
    return RejectedRow(topic, device, seq, reason, "refused", payload.decode(), received)


def print_job(seq: int, printer: str = "") -> bytes:
    return encode(PrintJob(seq=seq, at=T0 - timedelta(hours=1), pages=1, printer=printer))


async def seed() -> list[int]:
    """Five dead letters, oldest first: their ids."""
    rows = [
        letter(DEVICE, 1, "unstorable", print_job(1), 1),
        letter(DEVICE, 2, "schema", b'{"type":"print","seq":2,"pages":"two"}', 2),
        letter(DEVICE, 3, "unstorable", print_job(3, printer=POISON), 3),
        letter(OTHER, 4, "unstorable", print_job(4), 4),
        letter(DEVICE, 5, "unstorable", print_job(5), 5),
    ]
    stored_before = RecordRow(DEVICE, 5, "usage", "print", T0, T0, print_job(5).decode())
    await store_batch([stored_before], rows)
    return [row.id for row in await RejectedMessage.all().order_by("id")]


async def kept_seqs() -> list[int | None]:
    return [row.seq for row in await RejectedMessage.all().order_by("id")]


async def stored_seqs(device: str) -> list[int]:
    return [row.seq for row in await StoredRecord.filter(device_id=device).order_by("seq")]


def outcomes(answer: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(one["seq"], one["outcome"], one["stored"]) for one in answer["resubmitted"]]


async def test_the_list_is_newest_first_with_payloads_filtered_and_paged(database_url: str) -> None:
    async with admin_api(database_url) as api:
        ids = await seed()
        admin = await api.token()
        listed = await api.listing(LIST, admin)
        assert [item["id"] for item in listed] == ids[::-1]
        newest = listed[0]
        assert (newest["device_id"], newest["seq"], newest["reason"]) == (DEVICE, 5, "unstorable")
        assert newest["payload"] == print_job(5).decode(), "the payload as it came"
        assert newest["topic"] == wire.uplink(DEVICE, Channel.USAGE)
        assert datetime.fromisoformat(newest["received_at"]) == T0 + timedelta(minutes=5)

        schema = await api.ok("GET", f"{LIST}?reason=schema", admin)
        assert [item["seq"] for item in schema["items"]] == [2]
        other = await api.listing(f"{LIST}?device_id={OTHER}", admin)
        assert [item["seq"] for item in other] == [4]
        mine = await api.listing(f"{LIST}?device_id={DEVICE}&reason=unstorable", admin)
        assert [item["seq"] for item in mine] == [5, 3, 1]
        # An auditor reads them too.
        assert len(await api.listing(LIST, await api.token(Role.AUDITOR))) == len(ids)


async def test_resubmit_stores_what_is_fixed_keeps_the_rest_and_audits_the_token(
    database_url: str,
) -> None:
    await refuse_poison(database_url)
    async with admin_api(database_url) as api:
        ids = await seed()
        operator = await api.token(Role.OPERATOR)
        body = {"device_id": DEVICE, "dry_run": True}

        # A dry run answers as the database would and changes nothing.
        dry = await api.ok("POST", RESUBMIT, operator, body)
        assert dry["dry_run"] is True
        expected = [(1, "stored", 1), (2, "refused", 0), (3, "unstorable", 0)]
        assert outcomes(dry) == [*expected, (5, "already_stored", 0)]
        assert await kept_seqs() == [1, 2, 3, 4, 5]
        assert await stored_seqs(DEVICE) == [5]

        done = await api.ok("POST", RESUBMIT, operator, {"device_id": DEVICE})
        assert done["dry_run"] is False
        assert outcomes(done) == [*expected, (5, "already_stored", 0)]
        assert "pages" in done["resubmitted"][1]["detail"], "the contract's own words"
        assert "refused by a test trigger" in done["resubmitted"][2]["detail"]
        assert await stored_seqs(DEVICE) == [1, 5]
        assert await kept_seqs() == [2, 3, 4]
        audited = await AuditEntry.filter(action=dead_letters.AUDIT_ACTION).order_by("id")
        assert [entry.actor_name for entry in audited] == ["operator-all-0"] * 2

        # The fix: the trigger dropped; one by id, with an id that is not kept (a limit is for
        # a selection without ids: each id given is looked at).
        await allow_poison(database_url)
        by_id = {"ids": [ids[2], ids[0], 999_999], "limit": 1}
        again = await api.ok("POST", RESUBMIT, operator, by_id)
        assert outcomes(again) == [(3, "stored", 1)]
        assert again["not_found"] == [ids[0], 999_999], "resubmitted before, or never kept"
        assert await stored_seqs(DEVICE) == [1, 3, 5]
        assert await kept_seqs() == [2, 4]

        # Oldest first, up to the limit.
        limited = await api.ok("POST", RESUBMIT, operator, {"limit": 1})
        assert outcomes(limited) == [(2, "refused", 0)]


async def test_dead_letters_are_for_tokens_of_the_whole_tree_with_the_permission(
    database_url: str,
) -> None:
    async with admin_api(database_url) as api:
        await seed()
        scoped = await api.token(Role.ADMIN, TOWN_A)
        for method, path in (("GET", LIST), ("POST", RESUBMIT)):
            status, answer = await api.call(method, path, scoped, {} if method == "POST" else None)
            assert (status, answer["error"]["code"]) == (403, "out_of_scope"), path
        technician = await api.token(Role.TECHNICIAN)
        status, answer = await api.call("GET", LIST, technician)
        assert (status, answer["error"]["details"]["permission"]) == (403, "dead_letters.read")
        auditor = await api.token(Role.AUDITOR)
        status, answer = await api.call("POST", RESUBMIT, auditor, {})
        assert (status, answer["error"]["details"]["permission"]) == (
            403,
            "dead_letters.resubmit",
        )
        assert await kept_seqs() == [1, 2, 3, 4, 5], "nothing resubmitted"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("reason=bogus", "reason"),
        ("device_id=no%20such%20id", "device_id"),
        ("cursor=0", "cursor"),
        (f"cursor={2**63}", "cursor"),
        ("cursor=abc", "cursor"),
        ("limit=0", "limit"),
        ("devices=kiosk-a", "devices"),
    ],
)
async def test_a_listing_parameter_out_of_range_is_a_400_naming_it(
    sqlite_url: str, query: str, parameter: str
) -> None:
    async with admin_api(sqlite_url) as api:
        status, answer = await api.call("GET", f"{LIST}?{query}", await api.token())
        assert status == 400, answer
        assert answer["error"]["details"]["parameter"] == parameter


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": [1]}, "id"),
        ({"ids": 1}, "ids"),
        ({"ids": [True]}, "ids"),
        ({"ids": [0]}, "ids"),
        ({"ids": [2**63]}, "ids"),
        ({"ids": list(range(1, 502))}, "ids"),
        ({"reason": "bogus"}, "reason"),
        ({"reason": []}, "reason"),
        ({"reason": {"schema": 1}}, "reason"),
        ({"device_id": "no such id"}, "device_id"),
        ({"device_id": 7}, "device_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": True}, "limit"),
        ({"dry_run": "yes"}, "dry_run"),
    ],
)
async def test_a_resubmit_body_out_of_range_is_a_400_naming_the_field_and_changes_nothing(
    sqlite_url: str, body: dict[str, object], field: str
) -> None:
    async with admin_api(sqlite_url) as api:
        await seed()
        status, answer = await api.call("POST", RESUBMIT, await api.token(), body)
        assert status == 400, answer
        assert answer["error"]["details"]["field"] == field
        assert await kept_seqs() == [1, 2, 3, 4, 5]


async def test_a_resubmit_refuses_what_is_no_json_object_and_query_parameters(
    sqlite_url: str,
) -> None:
    async with admin_api(sqlite_url) as api:
        await seed()
        admin = await api.token()
        status, answer = await api.call("POST", RESUBMIT, admin, raw=b"[1, 2]")
        assert (status, answer["error"]["code"]) == (400, "invalid_body")
        status, answer = await api.call("POST", f"{RESUBMIT}?dry_run=true", admin, {})
        assert (status, answer["error"]["details"]["parameter"]) == (400, "dry_run")
        assert await kept_seqs() == [1, 2, 3, 4, 5]


# --- termfleet dead-letters, against the API in a thread --------------------------------------


def termfleet(url: str, secret: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, [*args, "--server", url], env={"TERMFLEET_TOKEN": secret}, prog_name="termfleet"
    )
    return result.exit_code, result.stdout, result.stderr


async def seeded(_api: Api, _secrets: object) -> None:
    await seed()


def test_the_cli_lists_and_resubmits_through_the_api(database_url: str) -> None:
    asyncio.run(refuse_poison(database_url))
    wanted = {"operator": (Role.OPERATOR, None), "town": (Role.ADMIN, TOWN_A)}
    with admin_api_in_a_thread(database_url, wanted, seeded) as (url, secrets):
        operator = secrets["operator"]
        code, out, err = termfleet(url, operator, "dead-letters", "ls", "--limit", "4")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["ID", "RECEIVED_AT", "DEVICE_ID", "SEQ", "REASON", "DETAIL"]
        assert [line.split()[3] for line in lines[1:]] == ["5", "4", "3", "2"], "newest first"
        code, out, err = termfleet(url, operator, "dead-letters", "ls", "--device", OTHER, "--json")
        assert code == 0, err
        [only] = json.loads(out)
        assert only["payload"] == print_job(4).decode()

        code, out, err = termfleet(
            url, operator, "dead-letters", "resubmit", "--device", DEVICE, "--dry-run"
        )
        assert code == 1, "some stay dead letters"
        assert (
            "dry run, nothing changed: 1 stored, 1 already stored, 1 refused, 1 unstorable" in err
        )
        code, out, err = termfleet(url, operator, "dead-letters", "resubmit", "--reason", "schema")
        assert code == 1
        assert "refused" in out.splitlines()[1]
        code, out, err = termfleet(url, operator, "dead-letters", "resubmit", "--json", "1")
        assert code == 0, err
        report = json.loads(out)
        assert [(one["seq"], one["outcome"]) for one in report["resubmitted"]] == [(1, "stored")]
        assert report["not_found"] == []

        # A town's token: the API's own refusal, and a non-zero exit.
        code, out, err = termfleet(url, secrets["town"], "dead-letters", "ls")
        assert code != 0
        assert "belongs to the whole tree" in err
