"""``termfleet rollout`` against the real API and executor (``test_api_rollouts.rollout_api``).

The CLI runs in a thread with its own event loop while the server answers on the test's loop.
"""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner, Result

from control_plane.cli import cli
from edge.protocol import PackagePhase
from tests.test_api_rollouts import DEVICES, SHA_3, rollout_api
from tests.test_rollout_executor import report


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["rollout", *args], prog_name="termfleet")


async def test_create_show_ls_and_the_actions_through_the_api(database_url: str) -> None:
    async with rollout_api(database_url) as world:
        server = ["--server", world.base, "--token", await world.api.token()]
        created = await asyncio.to_thread(
            run, "create", "--package", "guide:3", "--device", DEVICES[0], "--device", DEVICES[1],
            "--waves", "50,100", "--success", "90", "--failure", "20", "--min-finished", "2",
            "--timeout", "90m", "--when-idle", "--id", "g3", "--json", *server,
        )  # fmt: skip
        shown = await asyncio.to_thread(run, "show", "g3", *server)
        paused = await asyncio.to_thread(run, "pause", "g3", *server)
        paused_again = await asyncio.to_thread(run, "pause", "g3", *server)
        listed = await asyncio.to_thread(run, "ls", *server)
        listed_json = await asyncio.to_thread(run, "ls", "--phase", "paused", "--json", *server)
        none = await asyncio.to_thread(run, "ls", "--phase", "completed", *server)
        resumed = await asyncio.to_thread(run, "resume", "g3", "--waive-thresholds", "--json",
                                          *server)  # fmt: skip
        cancelled = await asyncio.to_thread(run, "cancel", "g3", *server)
        retried = await asyncio.to_thread(run, "retry", "g3", *server)

    assert created.exit_code == 0, created.output
    view = json.loads(created.stdout)
    assert (view["id"], view["package"]["sha256"], view["device_count"]) == ("g3", SHA_3, 2)
    assert (view["success_threshold"], view["failure_threshold"], view["min_finished"]) == (
        90, 20, 2
    )  # fmt: skip
    assert (view["device_timeout_s"], view["install_policy"]) == (5400, "when_idle")
    assert view["target"]["device_ids"] == DEVICES[:2]
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[:3] == [
        "rollout g3: guide version 3 (content), running, wave 1 of 2, 2 devices",
        "  wave 1 (50 %)  ░░░░░░░░░░  0/1 succeeded 0 failed  1 under way, ◀ current",
        "  wave 2 (100 %)  ░░░░░░░░░░  0/1 succeeded 0 failed",
    ]
    assert "a device times out 1h30m after its notice" in shown.stdout
    assert "paused (operator)" in paused.stdout
    assert paused_again.exit_code == 1
    assert "HTTP 409: cannot pause a paused rollout" in paused_again.stderr
    assert listed.stdout.split()[:8] == [
        "ID", "PACKAGE", "VERSION", "PHASE", "WAVE", "DEVICES", "SUCCEEDED", "FAILED"
    ]  # fmt: skip
    assert listed.stdout.splitlines()[1].split()[:4] == ["g3", "guide", "3", "paused"]
    assert [item["id"] for item in json.loads(listed_json.stdout)] == ["g3"]
    assert none.stdout == "(none)\n"
    assert json.loads(resumed.stdout)["waived_wave"] == 1
    assert cancelled.stdout.startswith("rollout g3: guide version 3 (content), cancelled")
    assert retried.exit_code == 1
    assert "cannot retry a cancelled rollout" in retried.stderr


async def test_refusals_are_clear_errors(database_url: str) -> None:
    async with rollout_api(database_url) as world:
        server = ["--server", world.base, "--token", await world.api.token()]
        no_target = await asyncio.to_thread(run, "create", "--package", SHA_3, *server)
        both = await asyncio.to_thread(run, "create", "--package", SHA_3, "--all", "--kind",
                                       "kiosk", *server)  # fmt: skip
        bad_package = await asyncio.to_thread(run, "create", "--package", "guide", "--all",
                                              *server)  # fmt: skip
        bad_timeout = await asyncio.to_thread(run, "create", "--package", SHA_3, "--all",
                                              "--timeout", "soon", *server)  # fmt: skip
        bad_label = await asyncio.to_thread(run, "create", "--package", SHA_3, "--label", "floor",
                                            *server)  # fmt: skip
        bad_waves = await asyncio.to_thread(run, "create", "--package", SHA_3, "--all",
                                            "--waves", "50,10,100", *server)  # fmt: skip
        unknown = await asyncio.to_thread(run, "create", "--package", "guide:9", "--all", *server)
        missing = await asyncio.to_thread(run, "show", "nope", *server)
        stored = dict(world.executor.rollouts)

    for usage in (no_target, both, bad_package, bad_timeout, bad_label):
        assert usage.exit_code == 2, usage.output
    assert "--all for every one" in no_target.stderr
    assert "neither a sha256" in bad_package.stderr
    assert "not a duration" in bad_timeout.stderr
    assert "is not KEY=VALUE" in bad_label.stderr
    assert bad_waves.exit_code == 1
    assert "HTTP 422: waves: wave shares must increase" in bad_waves.stderr
    assert unknown.exit_code == 1
    assert "HTTP 404: no package guide version 9" in unknown.stderr
    assert missing.exit_code == 1
    assert "HTTP 404" in missing.stderr
    assert stored == {}


async def test_show_watch_prints_a_line_per_change_until_the_rollout_is_final(
    database_url: str,
) -> None:
    async with rollout_api(database_url) as world:
        secret = await world.api.token()
        server = ["--server", world.base, "--token", secret]
        view = await world.started(
            secret, waves=["100"], target={"device_ids": DEVICES[:2]}, install_policy="when_idle"
        )
        rollout_id = view["id"]
        watching = asyncio.create_task(
            asyncio.to_thread(run, "show", rollout_id, "--watch", "--interval", "0.05", *server)
        )
        await asyncio.sleep(0.5)
        for device_id in DEVICES[:2]:
            await world.executor.report(
                device_id, report(PackagePhase.INSTALLED, installed=3, rollout_id=rollout_id)
            )
            await asyncio.sleep(0.5)
        await world.executor.tick()
        watched = await asyncio.wait_for(watching, timeout=30)

    assert watched.exit_code == 0, watched.output
    lines = watched.stdout.splitlines()
    line = f"{rollout_id}: {{}}, wave 1/1: wave 1 {{}}/2 succeeded 0 failed".format
    assert lines[0] == line("running", 0)
    assert line("running", 1) in lines
    assert lines[-1] == line("completed", 2)
    assert set(lines) <= {line("running", 0), line("running", 1), line("running", 2), lines[-1]}
    assert len(lines) == len(set(lines))  # a line per change, not per poll
    assert "\x1b[" not in watched.stdout  # no terminal: no redrawing
