"""``termfleet reviews`` against the review API on SQLite and PostgreSQL.

The commands run in a thread with their own event loop while the API answers on the test's
(``tests/support/review_world.py``). Tables are checked by display width: a Chinese character
takes two columns of a terminal.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata

from click.testing import CliRunner, Result

from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.db.review_models import ReviewChainProblem, ReviewRefusal
from control_plane.reviews.scores import ScoreRule
from tests.support.review_world import CONGHUA, W01, add_review, march, review_api, seed_march


def run(*args: str, token: str) -> Result:
    return CliRunner().invoke(
        cli, ["reviews", *args], prog_name="termfleet", env={"TERMFLEET_TOKEN": token}
    )


async def in_thread(*args: str, token: str) -> Result:
    return await asyncio.to_thread(run, *args, token=token)


def columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line)


def cell_starts(line: str) -> list[int]:
    """The display columns where a table line's cells start: after two spaces or more."""
    starts: list[int] = []
    width, previous = 0, "  "
    for char in line:
        if char != " " and previous == "  ":
            starts.append(width)
        previous = (previous + char)[-2:]
        width += columns(char)
    return starts


async def test_scores_print_an_aligned_league_table_and_json(database_url: str) -> None:
    async with review_api(database_url, rule=ScoreRule(min_reviews=3)) as api:
        await seed_march()
        secret = await api.token(Role.AUDITOR, CONGHUA)
        server = ["--server", api.base]
        printed = await in_thread("scores", "--by", "window", "--month", "2026-03", *server,
                                  token=secret)  # fmt: skip
        as_json = await in_thread("scores", "--by", "level", "--json", *server, token=secret)
        direct = await api.ok("/api/v1/scores?by=level", secret)
        refused = await in_thread("scores", "--month", "March", *server, token=secret)

    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert lines[0].split() == ["RANK", "NAME", "SCORE", "REVIEWS", "满意率", "差评率"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4", "-", "-"]
    assert lines[1].split() == ["1", "W01", "从化区政务服务中心", "9.33", "3", "100.0%", "0.0%"]
    assert lines[3].split()[-4:] == ["7.00", "4", "75.0%", "25.0%"]
    assert lines[-1].split() == ["-", "TOTAL", "7.60", "15", "86.7%", "13.3%"]  # 13/15, 2/15
    # Aligned by display width: each cell starts where its header does, Chinese names or not.
    assert len(cell_starts(lines[0])) == 6
    assert {tuple(cell_starts(line)) for line in lines} == {tuple(cell_starts(lines[0]))}
    assert "2026-03, node 440117, by window" in printed.stderr
    assert json.loads(as_json.stdout) == direct
    assert [item["key"] for item in direct["items"]] == ["district", "town", "village"]
    assert refused.exit_code == 1
    assert "HTTP 400: month must be a month as YYYY-MM" in refused.stderr


async def test_ls_show_refusals_and_chain_problems(database_url: str) -> None:
    async with review_api(database_url) as api:
        await seed_march()
        await add_review(W01, "dissatisfied", march(18), case_number="GD-7")
        await ReviewRefusal.create(
            device_id="pad-w01", seq=900, case_number="GD-7", reason="duplicate",
            rating="satisfied", received_at=march(19), payload="{}",
        )  # fmt: skip
        await ReviewChainProblem.create(
            device_id="pad-w01", seq=901, kind="hash_mismatch", expected="ab", found="cd",
            found_at=march(19),
        )  # fmt: skip
        secret = await api.token(Role.OPERATOR, CONGHUA)
        server = ["--server", api.base]
        bad = await in_thread("ls", "--bad", "--site", "s440117", "--json", *server, token=secret)
        two = await in_thread("ls", "--rating", "satisfied", "--rating", "basic", "--limit", "2",
                              *server, token=secret)  # fmt: skip
        shown = await in_thread("show", "GD-7", *server, token=secret)
        shown_json = await in_thread("show", "GD-7", "--json", *server, token=secret)
        missing = await in_thread("show", "GD-404", *server, token=secret)
        refusals = await in_thread("refusals", "--json", *server, token=secret)
        problems = await in_thread("chain-problems", *server, token=secret)

    assert bad.exit_code == 0, bad.output
    assert json.loads(bad.stdout)[0]["rated_at"] == "2026-03-31T16:00:00+00:00"  # newest first
    assert {item["rating"] for item in json.loads(bad.stdout)} == {
        "dissatisfied", "very_dissatisfied"
    }  # fmt: skip
    assert len(json.loads(bad.stdout)) == 5  # W01's 2 and GD-7, W02's 2 (one voided)
    lines = two.stdout.splitlines()
    assert lines[0].split() == [
        "RATED_AT", "CASE_NUMBER", "RATING", "SITE", "WINDOW", "DEPARTMENT", "SOURCE"
    ]  # fmt: skip
    assert len(lines) == 3  # --limit 2
    assert lines[1].split()[2:] == ["satisfied", "s440117101001", "01", "ga", "terminal"]
    assert shown.exit_code == 0, shown.output
    assert "rating: dissatisfied" in shown.stdout
    assert "site_name: 从化区政务服务中心" in shown.stdout
    assert json.loads(shown_json.stdout)["work_order"] is None
    assert missing.exit_code == 1
    assert "HTTP 404: no review of case 'GD-404'" in missing.stderr
    assert [(r["case_number"], r["reason"]) for r in json.loads(refusals.stdout)] == [
        ("GD-7", "duplicate")
    ]
    assert problems.stdout.splitlines()[1].split()[1:4] == ["pad-w01", "901", "hash_mismatch"]


async def test_policy_set_ls_and_unset(database_url: str) -> None:
    async with review_api(database_url) as api:
        admin = await api.token()
        district = await api.token(Role.ADMIN, CONGHUA)
        server = ["--server", api.base]
        province = await in_thread("policy", "set", "44", "--deadline-days", "5",
                                   "--rate-within-days", "7", *server, token=admin)  # fmt: skip
        own = await in_thread("policy", "set", CONGHUA, "--deadline-days", "15",
                              "--rate-within-days", "7", "--json", *server,
                              token=district)  # fmt: skip
        too_long = await in_thread("policy", "set", CONGHUA, "--deadline-days", "90",
                                   "--rate-within-days", "7", *server, token=district)  # fmt: skip
        half = await in_thread("policy", "set", CONGHUA, "--deadline-days", "9", *server,
                               token=district)  # fmt: skip
        listed = await in_thread("policy", "ls", *server, token=district)
        unset = await in_thread("policy", "unset", CONGHUA, *server, token=district)
        listed_after = await in_thread("policy", "ls", "--json", *server, token=district)
        beyond = await in_thread("policy", "unset", "44", *server, token=district)

    assert province.exit_code == 0, province.output
    assert province.stdout == (
        "node 44: work orders due in 5 working days, cases rated within 7 days\n"
    )
    assert json.loads(own.stdout)["deadline_working_days"] == 15
    assert too_long.exit_code == 1
    assert "HTTP 422: deadline_working_days must be from 1 to 60, not 90" in too_long.stderr
    assert half.exit_code == 2  # both values: a policy is set whole
    assert "--rate-within-days" in half.stderr
    assert [line.split()[:4] for line in listed.stdout.splitlines()[1:]] == [
        ["44", "n44", "5", "7"],
        [CONGHUA, f"n{CONGHUA}", "15", "7"],
    ]
    assert unset.stdout == f"node {CONGHUA}: its own review policy removed\n"
    assert [item["node"] for item in json.loads(listed_after.stdout)] == ["44"]
    assert beyond.exit_code == 1
    assert "HTTP 404" in beyond.stderr
