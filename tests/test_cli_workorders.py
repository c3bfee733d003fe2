"""``termfleet workorders`` against the real API (``tests/support/workorder_seed.py``).

The CLI runs in a thread with its own event loop while the server answers on the test's loop;
its clock is 10:00 on 10 March 2026 in Asia/Shanghai.
"""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner, Result

from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.db.review_models import WorkOrderEvent
from control_plane.reviews.workorders import Action, CallOutcome
from tests.support.scoped_fleet import TOWN_A, TOWN_B
from tests.support.workorder_seed import DUE_LATER, OPENED, seed_order, step, workorder_api

A = Action


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["workorders", *args], prog_name="termfleet")


async def test_ls_show_transition_and_summary_through_the_api(database_url: str) -> None:
    async with workorder_api(database_url) as api:
        base = str(api.client.make_url("")).rstrip("/")
        server = ["--server", base, "--token", await api.token(Role.OPERATOR, TOWN_A)]
        new = await seed_order("c-new", site=f"s{TOWN_A}", item_name="社保卡补办")
        reached = [step(A.CALL_BACK, OPENED, outcome=CallOutcome.REACHED)]
        later = await seed_order("c-later", site=f"s{TOWN_A}", due=DUE_LATER, steps=reached)
        await seed_order("c-other", site=f"s{TOWN_B}")  # outside the token's scope
        listed = await asyncio.to_thread(run, "ls", *server)
        listed_json = await asyncio.to_thread(run, "ls", "--overdue", "--json", *server)
        by_state = await asyncio.to_thread(
            run, "ls", "--state", "called_back", "--state", "closed", "--json", *server
        )
        none = await asyncio.to_thread(run, "ls", "--site", f"s{TOWN_A}", "--state", "closed",
                                       *server)  # fmt: skip
        moved = await asyncio.to_thread(
            run, "transition", str(new), "call_back", "--note", "reached her", "--outcome",
            "reached", "--json", *server,
        )  # fmt: skip
        verified = await asyncio.to_thread(
            run, "transition", str(later), "verify", "--note", "checked the queue log", *server
        )
        fixing = await asyncio.to_thread(
            run, "transition", str(later), "set_deadline", "--note", "new printer",
            "--fix-by", "2026-03-20", "--json", *server,
        )  # fmt: skip
        shown = await asyncio.to_thread(run, "show", str(new), *server)
        shown_json = await asyncio.to_thread(run, "show", str(new), "--json", *server)
        summary = await asyncio.to_thread(run, "summary", "--json", *server)
        summary_text = await asyncio.to_thread(run, "summary", "--since", "2026-03-02", *server)
        events = await WorkOrderEvent.filter(work_order_id=new).count()

    assert listed.exit_code == 0, listed.output
    assert listed.stdout.split()[:8] == [
        "ID", "CASE", "SITE", "DEPARTMENT", "RATING", "STATE", "DUE", "OVERDUE"
    ]  # fmt: skip
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["c-new", "c-later"]
    assert listed.stdout.splitlines()[1].split()[-2:] == ["2026-03-09", "overdue"]
    assert [item["case_number"] for item in json.loads(listed_json.stdout)] == ["c-new"]
    assert [item["case_number"] for item in json.loads(by_state.stdout)] == ["c-later"]
    assert none.stdout == "(none)\n"
    assert moved.exit_code == 0, moved.output
    view = json.loads(moved.stdout)
    assert (view["state"], view["history"][-1]["outcome"]) == ("called_back", "reached")
    assert view["allowed_actions"] == ["verify", "appeal"]
    assert verified.stdout.startswith(f"work order {later}: verified, due {DUE_LATER}")
    assert json.loads(fixing.stdout)["fix_by"] == "2026-03-20"
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == f"work order {new}: called_back, due 2026-03-09, overdue"
    assert lines[1] == (
        f"  case c-new at site s{TOWN_A}, department gongan, window 03, staff staff-7"
    )  # fmt: skip
    assert lines[2].endswith(": item-110 社保卡补办")
    assert "call_back  to_call_back → called_back  by operator-" in shown.stdout
    assert "    reached her" in lines
    assert lines[-1] == "next, this token may: verify, appeal"
    assert json.loads(shown_json.stdout)["review"]["item_name"] == "社保卡补办"
    assert events == 1
    figures = json.loads(summary.stdout)
    assert (figures["total"], figures["open"], figures["overdue"]) == (2, 2, 1)
    assert (figures["called_back"], figures["callback_rate"]) == (2, 1.0)
    assert summary_text.stdout.splitlines() == [
        "work orders: 2 (called_back 1, fixing 1)",
        "open: 2, overdue on 2026-03-10: 1",
        "call-back rate (回访率): 100.0% (2 of 2)",
        "closed: 0, within the deadline: 0",
    ]


async def test_refusals_are_the_apis_messages(database_url: str) -> None:
    async with workorder_api(database_url) as api:
        base = str(api.client.make_url("")).rstrip("/")
        operator = ["--server", base, "--token", await api.token(Role.OPERATOR, TOWN_A)]
        order_id = await seed_order("c-refuse", site=f"s{TOWN_A}")
        other = await seed_order("c-elsewhere", site=f"s{TOWN_B}")
        illegal = await asyncio.to_thread(
            run, "transition", str(order_id), "verify", "--note", "checked", *operator
        )
        forbidden = await asyncio.to_thread(
            run, "transition", str(order_id), "approve", "--note", "fine", *operator
        )
        hidden = await asyncio.to_thread(run, "show", str(other), *operator)
        no_note = await asyncio.to_thread(run, "transition", str(order_id), "explain", *operator)
        bad_day = await asyncio.to_thread(
            run, "transition", str(order_id), "set_deadline", "--note", "x", "--fix-by",
            "next week", *operator,
        )  # fmt: skip
        events = await WorkOrderEvent.all().count()

    assert illegal.exit_code == 1
    assert "HTTP 409: call the citizen back first" in illegal.stderr
    assert forbidden.exit_code == 1
    assert "HTTP 403: a operator token may not do this (it needs workorders.review)" in (
        forbidden.stderr
    )  # fmt: skip
    assert hidden.exit_code == 1
    assert f"HTTP 404: no work order has the id '{other}'" in hidden.stderr
    assert no_note.exit_code == 2
    assert "--note" in no_note.stderr
    assert bad_day.exit_code == 2
    assert "--fix-by" in bad_day.stderr
    assert events == 0
