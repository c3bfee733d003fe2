"""The agent's pure package rules: citizen sessions and idleness, install permissions, the plan.

A fake monotonic clock drives ``CitizenActivity``; ``package_plan`` and ``package_report`` are
tables. The IO around them is in test_agent_packages.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent.citizen_activity import MAX_SESSION_S, CitizenActivity
from edge.agent.package_plan import (
    Blocker,
    Fit,
    Reason,
    Step,
    first_step,
    incompatibility,
    install_blocker,
    same_package,
    usable_targets,
)
from edge.agent.package_report import Pace, Progress, Versions, package_report
from edge.content.download import DownloadReason
from edge.content.layout import InstallReason
from edge.content.manifest import PackageReason
from edge.protocol import (
    Artifact,
    ContentNotice,
    DeviceEvent,
    EventType,
    InstallWhen,
    PackageKind,
    PackagePhase,
    PackageTarget,
    PrintJob,
    SessionEnded,
    SessionStarted,
    Transaction,
)
from edge.protocol.packages import MAX_PACKAGES

NOW = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_session_is_under_way_from_its_start_to_its_end(clock: FakeClock) -> None:
    activity = CitizenActivity(clock, idle_after_s=600)
    assert not activity.in_session()

    activity.observe(SessionStarted(session_id="s1"))
    clock.advance(120)
    assert activity.in_session()
    assert not activity.idle()

    activity.observe(SessionEnded(session_id="s1", duration_s=120))
    assert not activity.in_session()


def test_idle_only_after_the_quiet_spell_and_any_usage_restarts_it(clock: FakeClock) -> None:
    activity = CitizenActivity(clock, idle_after_s=600)
    clock.advance(599)
    assert not activity.idle(), "an agent that just started does not know who stands there"
    clock.advance(1)
    assert activity.idle()

    activity.observe(PrintJob(pages=1))
    assert not activity.idle()
    clock.advance(600)
    assert activity.idle()


def test_device_events_are_no_citizen(clock: FakeClock) -> None:
    activity = CitizenActivity(clock, idle_after_s=10)
    clock.advance(10)

    assert not activity.observe(DeviceEvent(type=EventType.AGENT_STARTED))
    assert activity.idle()


def test_a_session_never_ended_stops_counting_after_the_bound(clock: FakeClock) -> None:
    activity = CitizenActivity(clock, idle_after_s=600)
    activity.observe(SessionStarted(session_id="crashed"))
    clock.advance(MAX_SESSION_S - 1)
    assert activity.in_session()

    clock.advance(1)
    assert not activity.in_session()
    assert activity.idle(), "its start was the last sign of a citizen, half an hour ago"


def test_a_transaction_inside_a_session_keeps_it_open_and_the_terminal_busy(
    clock: FakeClock,
) -> None:
    activity = CitizenActivity(clock, idle_after_s=60, max_session_s=600)
    activity.observe(SessionStarted(session_id="a"))
    clock.advance(300)
    activity.observe(Transaction(session_id="a", item_code="1144010000001"))
    activity.observe(SessionEnded(session_id="a"))
    clock.advance(59)
    assert not activity.idle()
    clock.advance(1)
    assert activity.idle()


def test_an_end_without_session_id_ends_every_open_session(clock: FakeClock) -> None:
    activity = CitizenActivity(clock)
    activity.observe(SessionStarted())
    activity.observe(SessionStarted(session_id="b"))
    activity.observe(SessionEnded(session_id="unknown"))
    assert activity.in_session()

    activity.observe(SessionEnded())
    assert not activity.in_session()


# --- install permission -----------------------------------------------------------------------


def target(**fields: object) -> PackageTarget:
    base: dict[str, object] = {"name": "guide-cards", "version": 7}
    return PackageTarget(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("install", "until", "in_session", "idle", "blocker"),
    [
        (InstallWhen.NOT_YET, None, False, True, Blocker.NOT_YET),
        (InstallWhen.UNKNOWN, None, False, True, Blocker.NOT_YET),
        (InstallWhen.NOW, None, False, False, None),
        (InstallWhen.NOW, None, True, False, Blocker.IN_SESSION),
        (InstallWhen.NOW, NOW + timedelta(seconds=1), False, False, None),
        (InstallWhen.NOW, NOW, False, True, Blocker.WINDOW_ENDED),
        (InstallWhen.NOW, NOW - timedelta(hours=1), False, True, Blocker.WINDOW_ENDED),
        (InstallWhen.WHEN_IDLE, None, False, True, None),
        (InstallWhen.WHEN_IDLE, None, False, False, Blocker.NOT_IDLE),
        (InstallWhen.WHEN_IDLE, None, True, False, Blocker.IN_SESSION),
    ],
)
def test_install_blocker_table(
    install: InstallWhen,
    until: datetime | None,
    in_session: bool,  # noqa: FBT001 - a table's column
    idle: bool,  # noqa: FBT001
    blocker: Blocker | None,
) -> None:
    t = target(install=install, install_until=until)
    assert install_blocker(t, NOW, in_session=in_session, idle=idle) is blocker


# --- the first step ---------------------------------------------------------------------------

CAN_VERIFY = Fit(has_keys=True, flashable=None)


@pytest.mark.parametrize(
    ("fields", "installed", "previous", "fit", "step"),
    [
        ({}, 7, 6, CAN_VERIFY, Step.DONE),
        ({}, 6, 5, CAN_VERIFY, Step.FETCH),
        ({}, None, None, CAN_VERIFY, Step.FETCH),
        ({"version": 5, "allow_older": True}, 6, 5, CAN_VERIFY, Step.ROLL_BACK),
        ({"version": 5}, 6, 5, CAN_VERIFY, Step.FETCH),
        ({"version": 6}, 5, 6, CAN_VERIFY, Step.ROLL_BACK),
        ({"version": 4, "allow_older": True}, 6, 5, CAN_VERIFY, Step.FETCH),
        ({}, 6, None, Fit(has_keys=False, flashable=None), Step.NO_KEYS),
        ({"version": 5, "allow_older": True}, 6, 5, Fit(has_keys=False, flashable=None),
         Step.ROLL_BACK),
        ({"kind": PackageKind.UNKNOWN}, None, None, CAN_VERIFY, Step.INCOMPATIBLE),
        ({"kind": PackageKind.FIRMWARE, "peripheral": "pad0"}, None, None, CAN_VERIFY,
         Step.INCOMPATIBLE),
        ({"kind": PackageKind.FIRMWARE, "peripheral": "pad0"}, None, None,
         Fit(has_keys=True, flashable=frozenset({"printer0"})), Step.INCOMPATIBLE),
        ({"kind": PackageKind.FIRMWARE, "peripheral": "pad0"}, None, None,
         Fit(has_keys=True, flashable=frozenset({"pad0"})), Step.FETCH),
    ],
)  # fmt: skip
def test_first_step_table(
    fields: dict[str, object], installed: int | None, previous: int | None, fit: Fit, step: Step
) -> None:
    assert first_step(target(**fields), installed, previous, fit) is step


def test_incompatibility_names_its_reason() -> None:
    firmware = target(kind=PackageKind.FIRMWARE, peripheral="pad0")
    assert incompatibility(target(kind=PackageKind.UNKNOWN), CAN_VERIFY) is Reason.UNKNOWN_KIND
    assert incompatibility(firmware, CAN_VERIFY) is Reason.NO_PERIPHERALS
    assert (
        incompatibility(firmware, Fit(has_keys=True, flashable=frozenset()))
        is Reason.NO_SUCH_PERIPHERAL
    )
    assert incompatibility(target(), CAN_VERIFY) is None


def test_new_orders_or_a_new_url_carry_on_a_new_package_restarts() -> None:
    old = target(artifact=Artifact(url="http://cp/a?sig=1", sha256="a" * 64))
    assert same_package(old, target(artifact=Artifact(url="http://cp/a?sig=2", sha256="a" * 64)))
    assert same_package(
        old,
        target(
            artifact=old.artifact, install=InstallWhen.NOW, install_until=NOW, rollout_id="ro-2"
        ),
    )
    assert not same_package(old, target(version=8, artifact=old.artifact))
    assert not same_package(old, target(artifact=Artifact(sha256="b" * 64)))
    assert not same_package(old, target(artifact=old.artifact, allow_older=True))


def test_targets_without_name_or_version_and_repeats_are_dropped() -> None:
    notice = ContentNotice(
        targets=[
            PackageTarget(name="cards", version=1),
            PackageTarget(name="", version=2),
            PackageTarget(name="video"),
            PackageTarget(name="cards", version=9),
        ]
    )
    assert usable_targets(notice) == {"cards": PackageTarget(name="cards", version=1)}


# --- the report -------------------------------------------------------------------------------


def test_report_has_work_first_then_installed_names_and_cuts_details() -> None:
    versions = {"cards": Versions(6, 5), "catalog": Versions(3, None)}
    work = {
        "cards": Progress(
            target=7,
            rollout_id="ro-7",
            phase=PackagePhase.DOWNLOADING,
            bytes_done=10,
            bytes_total=20,
            detail="x" * 500,
            at=NOW,
        )
    }
    report = package_report(versions, work, NOW)

    cards, catalog = report.packages
    assert (cards.name, cards.installed, cards.previous, cards.target) == ("cards", 6, 5, 7)
    assert (cards.phase, cards.bytes_done, cards.bytes_total) == (PackagePhase.DOWNLOADING, 10, 20)
    assert len(cards.detail) == 200
    assert (catalog.name, catalog.installed, catalog.phase) == (
        "catalog",
        3,
        PackagePhase.INSTALLED,
    )
    assert catalog.target is None


def test_report_never_lists_more_than_the_wire_allows() -> None:
    versions = {f"p{i:03d}": Versions(1) for i in range(MAX_PACKAGES + 5)}
    assert len(package_report(versions, {}, NOW).packages) == MAX_PACKAGES


def test_pace_allows_one_report_a_second() -> None:
    pace = Pace(1.0)
    assert pace.wait_s(10.0) == 0.0
    pace.published(10.0)
    assert pace.wait_s(10.25) == pytest.approx(0.75)
    assert pace.wait_s(11.5) == 0.0


def test_every_reason_the_agent_reports_is_in_docs_content() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "content.md").read_text()
    section = doc.split("### Reasons it reports", 1)[1].split("\n### ", 1)[0]
    # network is retried, never reported; already_installed is checked before verifying.
    reported = (
        {r.value for r in DownloadReason} - {DownloadReason.NETWORK.value}
        | {r.value for r in PackageReason} - {PackageReason.ALREADY_INSTALLED.value}
        | {r.value for r in InstallReason} - {InstallReason.ALREADY_INSTALLED.value}
        | {r.value for r in Reason}
    )
    missing = sorted(r for r in reported if f"`{r}`" not in section)
    assert missing == []
    for blocker in Blocker:
        assert f"`{blocker.value}`" in doc.replace("\n", " ").replace("  ", " ")
