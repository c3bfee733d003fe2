"""Case notices to the pads (``case_notices``): once each, when connected, again only when at risk.

With a connection that records what it is handed, on both databases: published when connected
and later when not, in the order the cases ended, not for a case whose period is over; handed
over again on a new connection only if not known acknowledged, only each pad's newest case and
only while it awaits its rating; after a restart those of the last moments; a connection lost
midway; two replicas. Then end to end on a real Mosquitto: a case posted through the API reaches
a subscriber on the pad's case topic, and a real review-pad agent with a simulated pad prompts,
is pressed, and its review is stored as the case's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import test_utils

from control_plane import registry, tokens
from control_plane.auth import Principal, Role
from control_plane.case_notices import UNACKED_WINDOW, CaseNotices, newest_per_pad
from control_plane.db import database
from control_plane.db.review_models import ReviewCase, ReviewRow
from control_plane.fleet import FleetState
from control_plane.http.app import make_app
from control_plane.http.cases import NOTICES
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.review_cases import CaseRequest, record_case
from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.config import AgentConfig
from edge.agent.peripheral_setup import simulated_bridge
from edge.agent.peripherals import PeripheralMonitor
from edge.agent.review_pad import ReviewPadLink
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.agent.telemetry import SystemHealth
from edge.protocol import CaseNotice, Channel, DeviceKind, Rating, decode
from edge.protocol import topics as wire
from firmware_bridge.simulated.review_pad import VirtualReviewPad
from tests.support.agent_run import connected_agent
from tests.support.case_world import Downlink, RecordingConnection, World, load_world
from tests.support.tokens import TEST_ACTOR

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ADMIN = Principal(token_id=1, name="business-system", role=Role.ADMIN)
WAIT_S = 20.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def world(database_url: str) -> AsyncIterator[World]:
    async with database(database_url):
        yield await load_world()


async def case(number: str, pad: str = "pad-d1", ended_at: datetime = NOW) -> ReviewCase:
    request = CaseRequest(
        case_number=number, item_code="i-" + number, device_id=pad, ended_at=ended_at
    )
    return (await record_case(ADMIN, request, ended_at)).case


async def notified() -> dict[str, datetime | None]:
    return {row.case_number: row.notified_at for row in await ReviewCase.all()}


# --- the rules, with a recording connection ------------------------------------------------------


async def test_a_case_goes_out_once_connected_and_once_only(database_url: str) -> None:
    clock = Clock()
    source = Downlink()
    notices = CaseNotices(source, clock)
    connection = RecordingConnection()
    async with world(database_url):
        await case("c1")
        offline = await notices.publish_now()
        before = await notified()
        source.downlink = connection
        clock.now = NOW + timedelta(minutes=2)
        online = await notices.publish_now()
        again = await notices.publish_now()
        after = await notified()
    assert (offline, before) == (0, {"c1": None})
    assert (online, again) == (1, 0)
    assert after == {"c1": NOW + timedelta(minutes=2)}
    [(device_id, notice)] = connection.notices()
    assert (device_id, notice.case_number, notice.item_code) == ("pad-d1", "c1", "i-c1")
    assert (notice.window, notice.ended_at) == ("W01", NOW)


async def test_cases_go_out_in_the_order_they_ended_and_not_after_their_period(
    database_url: str,
) -> None:
    clock = Clock()
    connection = RecordingConnection()
    notices = CaseNotices(Downlink(connection), clock, batch=2)
    async with world(database_url):
        await case("late", ended_at=NOW - timedelta(minutes=1))
        await case("early", ended_at=NOW - timedelta(minutes=9))
        await case("middle", pad="pad-a1", ended_at=NOW - timedelta(minutes=5))
        await case("expired", ended_at=NOW - timedelta(days=6, hours=23))
        await case("defaulted", ended_at=NOW - timedelta(minutes=30))
        await ReviewCase.filter(case_number="defaulted").update(defaulted_at=NOW)
        clock.now = NOW + timedelta(hours=2)  # "expired" is past its rating period now
        sent = await notices.publish_now()
        states = await notified()
    assert sent == 3
    assert connection.case_numbers() == ["early", "middle", "late"]
    assert (states["expired"], states["defaulted"]) == (None, None)


async def test_notices_not_known_acknowledged_go_again_on_a_new_connection(
    database_url: str,
) -> None:
    first, second, third = RecordingConnection(), RecordingConnection(), RecordingConnection()
    source = Downlink(first)
    notices = CaseNotices(source, Clock())
    async with world(database_url):
        await case("c1")
        await notices.publish_now()
        first.unacknowledged = 1  # the broker has not acknowledged it when the link breaks
        source.downlink = second
        await notices.publish_now()
        second.unacknowledged = 0  # acknowledged, seen at the next tick
        await notices.publish_now()
        source.downlink = third
        await notices.publish_now()
    assert (first.case_numbers(), second.case_numbers()) == (["c1"], ["c1"])
    assert third.case_numbers() == []


async def test_only_a_pads_newest_case_awaiting_its_rating_goes_again(database_url: str) -> None:
    first, second = RecordingConnection(), RecordingConnection()
    source = Downlink(first)
    notices = CaseNotices(source, Clock())
    async with world(database_url):
        await case("d1-old", ended_at=NOW - timedelta(minutes=4))
        await case("d1-new", ended_at=NOW - timedelta(minutes=1))
        await case("a1-rated", pad="pad-a1")
        await case("b1-defaulted", pad="pad-b1")
        await case("d5", pad="pad-d5")
        await notices.publish_now()
        first.unacknowledged = 5
        await ReviewRow.create(
            case_number="a1-rated",
            source="terminal",
            device_id="pad-a1",
            seq=1,
            rating="satisfied",
            channel="window_pad",
            rated_at=NOW,
            received_at=NOW,
        )
        await ReviewCase.filter(case_number="b1-defaulted").update(defaulted_at=NOW)
        source.downlink = second
        await notices.publish_now()
    assert sorted(first.case_numbers()) == ["a1-rated", "b1-defaulted", "d1-new", "d1-old", "d5"]
    assert second.case_numbers() == ["d1-new", "d5"]


async def test_after_a_restart_the_last_moments_notices_go_again(database_url: str) -> None:
    clock = Clock()
    async with world(database_url):
        last = NOW + timedelta(hours=3)
        for number, pad, at in (
            ("long-ago", "pad-d1", NOW),
            ("just-before", "pad-a1", last - UNACKED_WINDOW + timedelta(seconds=1)),
            ("last", "pad-b1", last),
        ):
            await case(number, pad=pad)
            await ReviewCase.filter(case_number=number).update(notified_at=at)
        clock.now = last + timedelta(hours=1)  # the new process starts an hour later
        connection = RecordingConnection()
        sent = await CaseNotices(Downlink(connection), clock).publish_now()
    assert sent == 2
    assert sorted(connection.case_numbers()) == ["just-before", "last"]


async def test_a_connection_lost_midway_leaves_the_rest_for_the_next(database_url: str) -> None:
    clock = Clock()
    broken, fresh = RecordingConnection(), RecordingConnection()
    broken.broken_after = 1
    source = Downlink(broken)
    notices = CaseNotices(source, clock)
    async with world(database_url):
        await case("c1", ended_at=NOW - timedelta(minutes=2))
        await case("c2", pad="pad-a1", ended_at=NOW - timedelta(minutes=1))
        await case("c3", pad="pad-b1")
        sent = await notices.publish_now()
        states = await notified()
        source.downlink = fresh
        clock.now = NOW + timedelta(seconds=30)
        resent = await notices.publish_now()
        after = await notified()
    assert (sent, broken.case_numbers()) == (1, ["c1"])
    assert states == {"c1": NOW, "c2": None, "c3": None}
    assert (resent, fresh.case_numbers()) == (3, ["c1", "c2", "c3"])
    assert after == {"c1": NOW, "c2": clock.now, "c3": clock.now}


async def test_two_replicas_publish_each_case_once(database_url: str) -> None:
    ours, theirs = RecordingConnection(), RecordingConnection()
    clock_a, clock_b = Clock(), Clock()
    clock_b.now = NOW + timedelta(microseconds=1)
    numbers = [f"c{n:02}" for n in range(12)]
    async with world(database_url):
        for n, number in enumerate(numbers):
            await case(number, ended_at=NOW - timedelta(seconds=n))
        await asyncio.gather(
            CaseNotices(Downlink(ours), clock_a, batch=3).publish_now(),
            CaseNotices(Downlink(theirs), clock_b, batch=3).publish_now(),
        )
        states = await notified()
    assert sorted(ours.case_numbers() + theirs.case_numbers()) == numbers
    assert None not in states.values()


async def test_the_chore_publishes_what_is_recorded_while_it_runs(database_url: str) -> None:
    connection = RecordingConnection()
    async with world(database_url):
        task = asyncio.create_task(CaseNotices(Downlink(connection), tick_s=0.01).run())
        try:
            await case("c1", ended_at=datetime.now(UTC))
            async with asyncio.timeout(10):
                while not connection.sent:  # noqa: ASYNC110 - set by the chore, no event
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert connection.case_numbers() == ["c1"]


def test_a_pads_newest_case_is_the_one_that_ended_last() -> None:
    cases = [
        ReviewCase(case_number=number, device_id=pad, ended_at=NOW + timedelta(minutes=minutes))
        for number, pad, minutes in (("a", "p1", 1), ("b", "p1", 3), ("c", "p2", 2), ("d", "p1", 3))
    ]
    newest = newest_per_pad(cases)
    assert {pad: case.case_number for pad, case in newest.items()} == {"p1": "d", "p2": "c"}


# --- end to end, on a real Mosquitto -------------------------------------------------------------


@contextlib.asynccontextmanager
async def control_plane(
    database_url: str, broker: BrokerSettings, prefix: str
) -> AsyncIterator[tuple[str, str, World]]:
    """The ingest on the broker, the notices chore and the API: its URL, a token, the world."""
    address = mqtt.BrokerAddress(broker.host, broker.port)
    async with database(database_url):
        world_ = await load_world(prefix)
        secret = (await tokens.issue("bs", Role.ADMIN, actor=TEST_ACTOR)).secret
        fleet = FleetState(await registry.load_states())
        metrics = ControlPlaneMetrics(fleet)
        ingest = Ingest(fleet, metrics)
        notices = CaseNotices(ingest, tick_s=0.1)
        app = make_app(fleet, metrics, ingest)
        app[NOTICES] = notices
        running = [
            asyncio.create_task(ingest.run(address, f"cp-{prefix}", share_group=f"g{prefix}")),
            asyncio.create_task(notices.run()),
        ]
        try:
            async with asyncio.timeout(WAIT_S):
                while ingest.downlink is None:  # noqa: ASYNC110 - the ingest has no event
                    await asyncio.sleep(0.02)
            async with test_utils.TestServer(app) as server:
                yield str(server.make_url("")).rstrip("/"), secret, world_
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)


async def post_case(base: str, secret: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"{base}/api/v1/cases", json=body) as response,
    ):
        assert response.status == 201, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def test_a_posted_case_reaches_the_pads_case_topic(
    database_url: str, broker: BrokerSettings, device_prefix: str
) -> None:
    address = mqtt.BrokerAddress(broker.host, broker.port)
    received: asyncio.Queue[CaseNotice] = asyncio.Queue()
    async with control_plane(database_url, broker, device_prefix) as (base, secret, world_):
        options = mqtt.SessionOptions(client_id=f"pad-{device_prefix}")
        async with mqtt.connect(address, options) as pad:
            await pad.subscribe(wire.downlink(world_.pad_d1, Channel.CASE), qos=1)

            async def receive() -> None:
                async for message in pad.messages():
                    notice = decode(Channel.CASE, message.payload)
                    assert isinstance(notice, CaseNotice)
                    await received.put(notice)

            receiving = asyncio.create_task(receive())
            try:
                answer = await post_case(
                    base,
                    secret,
                    {"case_number": "4401170001", "device_id": world_.pad_d1,
                     "item_code": "11440100MB2C9", "staff_id": "A017"},
                )  # fmt: skip
                notice = await asyncio.wait_for(received.get(), WAIT_S)
            finally:
                receiving.cancel()
                await asyncio.gather(receiving, return_exceptions=True)
    assert answer["notified"] is True
    assert (notice.case_number, notice.item_code, notice.staff_id, notice.window) == (
        "4401170001",
        "11440100MB2C9",
        "A017",
        "W01",
    )


def review_pad_agent(device_id: str, broker: BrokerSettings) -> tuple[Agent, VirtualReviewPad]:
    config = AgentConfig(device_id=device_id, kind=DeviceKind.REVIEW_PAD, peripherals="simulated")
    bridge, simulated = simulated_bridge(config)
    pad = simulated.devices["keys0"]
    assert isinstance(pad, VirtualReviewPad)
    monitor = PeripheralMonitor(bridge, lambda: datetime.now(UTC))
    agent = Agent(
        AgentIdentity(device_id, DeviceKind.REVIEW_PAD),
        mqtt.BrokerAddress(broker.host, broker.port),
        SystemHealth(monitor.statuses),
        MemorySessionCounter(random.randrange(1, 2**31)),
        timing=AgentTiming(heartbeat_interval_s=0.5, keepalive_s=5),
        peripherals=monitor,
        review_pad=ReviewPadLink(bridge, "keys0", lambda: datetime.now(UTC)),
    )
    return agent, pad


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = WAIT_S) -> None:
    """Poll: the pad's display and the database tell nobody when they change."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110 - polled, see above
            await asyncio.sleep(0.05)


async def test_a_review_pad_prompts_for_the_case_and_its_rating_is_the_cases_review(
    database_url: str, broker: BrokerSettings, device_prefix: str
) -> None:
    async with control_plane(database_url, broker, device_prefix) as (base, secret, world_):
        agent, pad = review_pad_agent(world_.pad_d1, broker)
        async with connected_agent(agent, close=True):
            await post_case(
                base,
                secret,
                {"case_number": "4401170002", "site": "hall-d", "window": "W01",
                 "item_code": "11440100MB2C9", "department": "gongan", "staff_id": "A017"},
            )  # fmt: skip

            async def prompted() -> bool:
                return "4401170002" in pad.shown_text

            await until(prompted)
            pad.press(Rating.DISSATISFIED)

            async def reviewed() -> bool:
                return await ReviewRow.filter(case_number="4401170002").exists()

            await until(reviewed)
            review = await ReviewRow.get(case_number="4401170002")
    assert (review.source, review.device_id, review.rating) == (
        "terminal",
        world_.pad_d1,
        "dissatisfied",
    )
    assert (review.item_code, review.department, review.staff_id, review.window_number) == (
        "11440100MB2C9",
        "gongan",
        "A017",
        "W01",
    )
