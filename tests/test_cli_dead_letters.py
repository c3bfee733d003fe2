"""``termfleet db dead-letters``: what the ingest kept raw, read from a real database.

The rows are written as the ingest writes them (``records.store_batch``); the command is run as
an operator runs it, through the CLI, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from control_plane.cli import cli
from control_plane.db import database
from control_plane.records import RejectedRow, store_batch
from edge.protocol import Channel
from edge.protocol import topics as wire

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="termfleet")
    return result.exit_code, result.stdout, result.stderr


def seed(database_url: str, device: str) -> None:
    def dead(n: int, seq: int | None, reason: str, detail: str, who: str = device) -> RejectedRow:
        topic = wire.uplink(who, Channel.USAGE)
        payload = f'{{"type":"print","seq":{seq},"n":{n}}}'
        return RejectedRow(topic, who, seq, reason, detail, payload, T0 + timedelta(minutes=n))

    rows = [
        dead(1, 7, "schema", "usage: Expected `int`, got `str` - at `$.pages`"),
        dead(2, None, "json", "usage: malformed JSON: invalid character (byte 7)"),
        dead(3, 9, "unstorable", "IntegrityError: refused\nby a trigger " + "x" * 100),
        dead(4, 3, "schema", "usage: bad", who=f"{device}-other"),
    ]

    async def write() -> None:
        async with database(database_url):
            await store_batch([], rows)

    asyncio.run(write())


def test_dead_letters_newest_first_filtered_and_as_json(
    database_url: str, device_prefix: str
) -> None:
    device = f"{device_prefix}-kiosk"
    seed(database_url, device)
    url = ["--database-url", database_url]

    code, out, err = run("db", "dead-letters", *url, "--device", device)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "RECEIVED_AT", "DEVICE_ID", "SEQ", "REASON", "DETAIL"]
    assert [line.split()[4] for line in lines[1:]] == ["unstorable", "json", "schema"]
    # A detail is one line of the table, cut at its width; the seq of the JSON error unknown.
    assert "IntegrityError: refused by a trigger xxx" in lines[1]
    assert lines[1].endswith("…")
    assert lines[2].split()[3] == "-"

    code, out, err = run("db", "dead-letters", *url, "--device", device, "--reason", "unstorable",
                         "--json")  # fmt: skip
    assert code == 0, err
    (only,) = json.loads(out)
    assert (only["seq"], only["reason"]) == (9, "unstorable")
    assert only["detail"].startswith("IntegrityError: refused\nby a trigger")
    assert json.loads(only["payload"]) == {"type": "print", "seq": 9, "n": 3}
    assert only["topic"] == wire.uplink(device, Channel.USAGE)
    assert datetime.fromisoformat(only["received_at"]) == T0 + timedelta(minutes=3)

    code, out, _ = run("db", "dead-letters", *url, "--device", device, "--limit", "1", "--json")
    assert [row["seq"] for row in json.loads(out)] == [9]
    code, out, _ = run("db", "dead-letters", *url, "--device", "nobody")
    assert (code, out.strip()) == (0, "(none)")


def test_dead_letters_refuse_what_they_cannot_answer(database_url: str) -> None:
    url = ["--database-url", database_url]
    code, _, err = run("db", "dead-letters", *url, "--reason", "lost")
    assert code == 2
    assert "'lost' is not one of" in err
    assert "unstorable" in err
    code, _, err = run("db", "dead-letters", *url, "--limit", "0")
    assert code == 2
    assert "0 is not in the range 1<=x<=10000" in err
    code, _, err = run("db", "dead-letters", "--database-url", "mysql://nowhere/db")
    assert code == 1
    assert "unsupported database URL" in err
