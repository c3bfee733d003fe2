"""The rollouts API's views and the CLI's drawing of them, pure: no database, no server."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from control_plane.cli.rollout_draw import (
    bar,
    change_line,
    details,
    draw,
    duration_text,
    parse_duration,
    redraw,
    wave_line,
)
from control_plane.db.rollout_models import Rollout
from control_plane.rollout_store import Tracked, spec_of
from control_plane.rollout_views import (
    DeviceFilter,
    device_page,
    percent,
    rollout_page,
    rollout_view,
    wave_shares,
)
from control_plane.rollouts import DeviceProgress, DeviceStep, PauseReason, RolloutState
from control_plane.rollouts.waves import percent as share

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DEVICES = [f"kiosk-{n:02d}" for n in range(60)]


def tracked(
    steps: dict[str, DeviceStep] | None = None,
    *,
    rollout_id: str = "guide-3",
    waves: tuple[str, ...] = ("1/10", "1"),
    devices: list[str] = DEVICES,
    created_at: datetime = NOW,
) -> Tracked:
    row = Rollout(
        id=rollout_id, package_kind="content", package_name="guide", target_version=3,
        target_sha256="3" * 64, previous_version=2, previous_sha256="2" * 64,
        target={"node": "440117", "kinds": [], "labels": {}, "device_ids": []}, waves=list(waves),
        success_threshold="19/20", failure_threshold="1/10", min_finished=5,
        device_timeout_s=7200, install_policy="outside_opening_hours", phase="running", wave=0,
        created_at=created_at, created_by="admin-all-0", updated_at=created_at,
    )  # fmt: skip
    state = RolloutState.start(spec_of(row, devices))
    progress = {d: DeviceProgress(step=DeviceStep.QUEUED, step_since=NOW) for d in devices}
    for device_id, step in (steps or {}).items():
        progress[device_id] = DeviceProgress(step=step, step_since=NOW, installed_version="2")
    return Tracked(row=row, state=state, devices=progress)


def test_percent_is_whole_when_it_can_be() -> None:
    assert [percent(share(p)) for p in (1, 10, "0.5", 100)] == [1, 10, 0.5, 100]


def test_waves_merged_for_a_small_fleet_are_shown_as_they_run() -> None:
    shares = (share(1), share(10), share(50), share(100))
    assert wave_shares(shares, 3) == [share(1), share(10), Fraction(1)]
    assert wave_shares(shares, 1000) == list(shares)


def test_the_view_counts_each_waves_own_devices_by_step() -> None:
    first = tracked().state.members[0]
    steps = {first[0]: DeviceStep.SUCCEEDED, first[1]: DeviceStep.SKIPPED_ALREADY_INSTALLED,
             first[2]: DeviceStep.FAILED, first[3]: DeviceStep.INCOMPATIBLE,
             first[4]: DeviceStep.NOTIFIED}  # fmt: skip
    view = rollout_view(tracked(steps))

    one, two = view["waves"]
    assert (one["number"], one["percent"], one["size"], one["current"]) == (1, 10, 6, True)
    assert (one["succeeded"], one["failed"], one["not_judged"], one["finished"]) == (2, 1, 1, 4)
    assert one["succeeded_share"] == pytest.approx(66.667, abs=0.001)
    assert one["failed_share"] == pytest.approx(33.333, abs=0.001)
    assert one["steps"]["notified"] == 1
    assert one["steps"]["queued"] == 1
    assert (two["size"], two["reached"], two["current"]) == (54, 60, False)
    assert two["succeeded_share"] is None
    assert sum(view["steps"].values()) == 60
    assert list(view["steps"]) == [step.value for step in DeviceStep]
    assert (view["wave"], view["wave_count"], view["final"]) == (1, 2, False)
    assert (view["success_threshold"], view["failure_threshold"]) == (95, 10)


def test_device_pages_follow_on_filtered_and_narrowed() -> None:
    rollout = tracked({DEVICES[5]: DeviceStep.FAILED, DEVICES[9]: DeviceStep.FAILED})
    rollout.notes[DEVICES[5]] = ("no_space", "disk full")
    first = device_page(rollout, DeviceFilter(), after=None, limit=25)
    second = device_page(rollout, DeviceFilter(), after=first.next_after, limit=50)
    failed = device_page(rollout, DeviceFilter(step=DeviceStep.FAILED), after=None, limit=1)
    seen = device_page(rollout, DeviceFilter(visible={DEVICES[9]}), after=None, limit=10)
    second_wave = device_page(rollout, DeviceFilter(wave=1), after=None, limit=100)

    assert [d["device_id"] for d in first.items + second.items] == DEVICES
    assert second.next_after is None
    assert failed.items[0] | {"since": "-"} == {
        "device_id": DEVICES[5], "wave": rollout.wave_of(DEVICES[5]) + 1, "step": "failed",
        "since": "-", "attempts": 0, "reason": "no_space", "detail": "disk full",
        "installed_version": 2,
    }  # fmt: skip
    assert failed.next_after == DEVICES[5]
    assert [d["device_id"] for d in seen.items] == [DEVICES[9]]
    assert len(second_wave.items) == 54
    assert {d["wave"] for d in second_wave.items} == {2}


def test_rollouts_are_listed_newest_first_and_filtered() -> None:
    old = tracked(rollout_id="a", created_at=NOW - timedelta(days=1))
    new = tracked(rollout_id="b")
    paused = tracked(rollout_id="c", created_at=NOW + timedelta(hours=1))
    paused.state = dataclasses.replace(paused.state, phase=paused.state.phase.PAUSED)

    first = rollout_page([old, new, paused], phase=None, package=None, after=None, limit=2)
    rest = rollout_page([old, new, paused], phase=None, package=None, after="b", limit=2)
    only = rollout_page([old, new, paused], phase=paused.state.phase, package=None, after=None,
                        limit=5)  # fmt: skip
    other = rollout_page([old, new], phase=None, package="notice", after=None, limit=5)

    assert ([i["id"] for i in first.items], first.next_after) == (["c", "b"], "b")
    assert ([i["id"] for i in rest.items], rest.next_after) == (["a"], None)
    assert [i["id"] for i in only.items] == ["c"]
    assert other.items == []


# --- the CLI's drawing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "drawn"),
    [(0, 50, "░" * 10), (38, 50, "███████░░░"), (1, 50, "█░░░░░░░░░"), (49, 50, "█████████░"),
     (50, 50, "█" * 10), (0, 0, "░" * 10)],
)  # fmt: skip
def test_a_bar_is_full_only_when_all_are_done(done: int, total: int, drawn: str) -> None:
    assert bar(done, total) == drawn


def test_a_wave_line_reads_like_the_issue_asks() -> None:
    wave = {"number": 2, "percent": 10, "size": 50, "succeeded": 38, "failed": 2, "not_judged": 0,
            "finished": 40, "current": False, "steps": {"queued": 0}}  # fmt: skip
    assert wave_line(wave) == ("wave 2 (10 %)  ███████░░░  38/50 succeeded 2 failed  10 under way")
    waiting = wave | {"succeeded": 0, "failed": 0, "finished": 0, "steps": {"queued": 50}}
    assert wave_line(waiting) == "wave 2 (10 %)  ░░░░░░░░░░  0/50 succeeded 0 failed"
    assert wave_line(wave | {"percent": 0.5, "current": True}).endswith("◀ current")


def test_the_drawing_of_a_paused_rollout_and_its_change_line() -> None:
    first = tracked().state.members[0]
    rollout = tracked(
        dict.fromkeys(first[:5], DeviceStep.SUCCEEDED) | {first[5]: DeviceStep.FAILED}
    )
    rollout.state = dataclasses.replace(
        rollout.state, phase=rollout.state.phase.PAUSED, pause_reason=PauseReason.FAILURE_THRESHOLD
    )
    rollout.row.pause_detail = "wave 1: 1 of 6 finished devices failed (16.7% > 10.0%)"
    view = rollout_view(rollout)

    assert draw(view) == [
        "rollout guide-3: guide version 3 (content), paused, wave 1 of 2, 60 devices",
        "  paused (failure_threshold): wave 1: 1 of 6 finished devices failed (16.7% > 10.0%)",
        "  wave 1 (10 %)  ████████░░  5/6 succeeded 1 failed  ◀ current",
        "  wave 2 (100 %)  ░░░░░░░░░░  0/54 succeeded 0 failed",
    ]
    assert change_line(view) == (
        "guide-3: paused (failure_threshold), wave 1/2: wave 1 5/6 succeeded 1 failed;"
        " wave 2 0/54 succeeded 0 failed"
    )
    assert "  install outside_opening_hours; a device times out 2h after its notice" in details(
        view
    )


def test_a_redraw_goes_back_over_the_lines_it_drew() -> None:
    assert redraw(0, ["a", "b"]) == "a\nb"
    assert redraw(2, ["a", "b", "c"]) == "\x1b[2F\x1b[Ja\nb\nc"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("1d", 86400), ("45s", 45), ("3600", 3600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(duration_text(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "2 hours", "h", "0", "0m", "-5"])
def test_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
