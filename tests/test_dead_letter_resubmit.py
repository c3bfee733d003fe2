"""``termfleet db resubmit``: dead letters stored again once what refused them is fixed.

The dead letters are written as the ingest writes them (``records.store_batch``); the command
runs as an operator runs it, through the CLI, on SQLite and PostgreSQL. The database's refusal
is a real trigger (``tests/support/refusing_database.py``), dropped to stand for the fix.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from control_plane import dead_letters
from control_plane.audit import local_actor
from control_plane.cli import cli
from control_plane.db import database
from control_plane.db.models import AuditEntry, RejectedMessage, StoredRecord
from control_plane.db.review_models import ReviewRow
from control_plane.dead_letters import Outcome, reread
from control_plane.records import RecordRow, RejectedRow, store_batch
from control_plane.reviews.working_days import load_calendar
from edge.protocol import Channel, PrintJob, ProtocolError, Rating, Review, encode, encode_records
from edge.protocol import topics as wire
from tests.support.refusing_database import POISON, allow_poison, refuse_poison

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
CASE = "4401172026112400001"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="termfleet")
    return result.exit_code, result.stdout, result.stderr


def letter(device: str, seq: int | None, payload: bytes, reason: str, n: int) -> RejectedRow:
    topic = wire.uplink(device, Channel.REVIEW if b"case_number" in payload else Channel.USAGE)
    received = T0 + timedelta(minutes=n)
    return RejectedRow(topic, device, seq, reason, "refused", payload.decode(), received)


def seed(database_url: str, device: str) -> None:
    """Five dead letters, oldest first, and one record of theirs already stored."""
    at = T0 - timedelta(hours=1)
    review = Review(seq=2, at=at, case_number=CASE, rating=Rating.VERY_SATISFIED)
    backlog = encode_records([PrintJob(seq=s, at=at, pages=1) for s in (3, 4)])
    rows = [
        letter(device, 1, encode(PrintJob(seq=1, at=at, pages=2)), "unstorable", 1),
        letter(device, 2, encode(review), "unstorable", 2),
        letter(device, None, backlog, "version", 3),  # a whole message of two records
        letter(device, 5, b'{"type":"print","seq":5,"pages":"two"}', "schema", 4),
        letter(device, 6, encode(PrintJob(seq=6, at=at, pages=1, printer=POISON)), "unstorable", 5),
        letter(device, 7, encode(PrintJob(seq=7, at=at, pages=1)), "unstorable", 6),
    ]
    stored_before = RecordRow(device, 7, "usage", "print", at, T0, encode(PrintJob(seq=7)).decode())

    async def write() -> None:
        async with database(database_url):
            await store_batch([stored_before], rows)

    asyncio.run(write())


async def letters_of(database_url: str, device: str) -> list[tuple[int | None, str]]:
    async with database(database_url):
        kept = await RejectedMessage.filter(device_id=device).order_by("id")
        return [(row.seq, row.reason) for row in kept]


async def seqs_of(database_url: str, device: str) -> list[int]:
    async with database(database_url):
        stored = await StoredRecord.filter(device_id=device).order_by("seq")
        return [row.seq for row in stored]


def test_resubmit_stores_what_is_fixed_keeps_the_rest_and_audits(
    database_url: str, device_prefix: str
) -> None:
    device = f"{device_prefix}-kiosk"
    seed(database_url, device)
    asyncio.run(refuse_poison(database_url))
    url = ["--database-url", database_url]

    # A dry run answers as the database would and changes nothing.
    code, out, err = run("db", "resubmit", *url, "--device", device, "--dry-run", "--json")
    assert code == 1, err  # some stay dead letters
    report = json.loads(out)
    assert report["dry_run"] is True
    outcomes = [(r["seq"], r["outcome"], r["stored"]) for r in report["resubmitted"]]
    assert outcomes == [
        (1, "stored", 1),
        (2, "stored", 1),
        (None, "stored", 2),
        (5, "refused", 0),
        (6, "unstorable", 0),
        (7, "already_stored", 0),
    ]
    assert asyncio.run(seqs_of(database_url, device)) == [7]
    assert len(asyncio.run(letters_of(database_url, device))) == 6

    code, out, err = run("db", "resubmit", *url, "--device", device)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "DEVICE_ID", "SEQ", "REASON", "OUTCOME", "STORED", "DETAIL"]
    assert "pages" in lines[4]  # why seq 5 is still refused: the contract's own words
    assert "refused by a test trigger" in lines[5]
    assert "3 stored, 1 already stored, 1 refused, 1 unstorable; 4 records stored" in err
    assert asyncio.run(seqs_of(database_url, device)) == [1, 2, 3, 4, 7]
    assert asyncio.run(letters_of(database_url, device)) == [(5, "schema"), (6, "unstorable")]

    async def reviews_and_audit() -> tuple[list[tuple[str, int]], list[dict[str, object]]]:
        async with database(database_url):
            reviews = await ReviewRow.filter(case_number=CASE).values_list("device_id", "seq")
            audit = await AuditEntry.filter(action=dead_letters.AUDIT_ACTION).order_by("id")
            return list(reviews), [entry.before or {} for entry in audit]

    reviews, audited = asyncio.run(reviews_and_audit())
    assert reviews == [(device, 2)]  # the 好差评 review with its case, as the ingest stores it
    assert [entry["seq"] for entry in audited] == [1, 2, None, 7]

    # The fix for the database's refusal: seq 6 now goes in; seq 5 stays refused.
    asyncio.run(allow_poison(database_url))
    code, out, err = run("db", "resubmit", *url, "--device", device, "--reason", "unstorable",
                         "--json")  # fmt: skip
    assert code == 0, err
    (only,) = json.loads(out)["resubmitted"]
    assert (only["seq"], only["outcome"], only["stored"]) == (6, "stored", 1)
    assert asyncio.run(seqs_of(database_url, device)) == [1, 2, 3, 4, 6, 7]
    assert asyncio.run(letters_of(database_url, device)) == [(5, "schema")]


def test_resubmit_by_id_names_what_is_not_found(database_url: str, device_prefix: str) -> None:
    device = f"{device_prefix}-kiosk"
    seed(database_url, device)

    async def first_id() -> int:
        async with database(database_url):
            found = await RejectedMessage.filter(device_id=device).order_by("id").first()
            assert found is not None
            return int(found.id)

    wanted = asyncio.run(first_id())
    url = ["--database-url", database_url]
    code, out, err = run("db", "resubmit", *url, str(wanted), "999999999", "--json")
    assert code == 1
    report = json.loads(out)
    assert [r["id"] for r in report["resubmitted"]] == [wanted]
    assert report["not_found"] == [999999999]
    code, out, err = run("db", "resubmit", *url, str(wanted))
    assert (code, out.strip()) == (1, "(none)")
    assert "no dead letters; 0 records stored; not found: " + str(wanted) in err


def test_a_letter_resubmitted_meanwhile_is_not_stored_twice(
    database_url: str, device_prefix: str
) -> None:
    """Two operators at once: the second's transaction finds the letter gone and undoes itself."""
    device = f"{device_prefix}-kiosk"
    seed(database_url, device)

    async def race() -> list[Outcome]:
        async with database(database_url):
            letters = await dead_letters.select(dead_letters.Selection(device_id=device, limit=1))
            await RejectedMessage.filter(id=letters[0].id).delete()  # the other operator
            return [
                one.outcome
                async for one in dead_letters.resubmit(letters, load_calendar(), local_actor())
            ]

    assert asyncio.run(race()) == [Outcome.GONE]
    assert asyncio.run(seqs_of(database_url, device)) == [7]


@pytest.mark.parametrize(
    ("topic", "payload", "why"),
    [
        ("termfleet/v1/up/k1/usage", b'{"type":"print","seq":1,"pages":"x"}', "pages"),
        ("termfleet/v1/up/k1/health", b"{}", "carries no records"),
        ("termfleet/v1/up/k1/heartbeat", b"{}", "unknown channel"),
        ("termfleet/v1/down/k1/ack", b"{}", "carries no records"),
        ("termfleet/v1/up/k1", b"{}", "levels"),
        (
            "termfleet/v1/up/k1/usage",
            '{"type":"print","seq":1,"printer":"a\ufffd"}'.encode(),
            "no longer as sent",
        ),
        # One bad record of an array: none of them is stored, the letter stays whole.
        (
            "termfleet/v1/up/k1/usage",
            b'[{"type":"print","seq":1},{"type":"print","seq":"2"}]',
            "seq",
        ),
    ],
)
def test_reread_refuses_what_the_contract_still_refuses(
    topic: str, payload: bytes, why: str
) -> None:
    with pytest.raises(ProtocolError, match=why):
        reread(topic, payload.decode(), T0)


def test_reread_sorts_a_letter_as_the_ingest_would() -> None:
    review = Review(seq=9, at=T0, case_number=CASE, rating=Rating.SATISFIED)
    records = reread(wire.uplink("pad-1", Channel.REVIEW), encode(review).decode(), T0)
    ((row,), (arrived,)) = records.rows, records.reviews
    assert (row.device_id, row.seq, row.type, row.received_at) == ("pad-1", 9, "review", T0)
    assert arrived.review == review
