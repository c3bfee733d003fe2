"""Run many simulated terminals in one process, each with its own MQTT connection."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from edge import mqtt
from edge.agent.outbox import OUTBOX_FILE, Outbox
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.content.signing import TrustedKeys
from edge.schedule import OpeningHours

from . import day
from .activity import VisitGenerator, run_activity
from .district import SimulatedTerminal
from .health import SimulatedHealth
from .packages import fleet_executor, package_manager
from .pad import SimulatedPadLink
from .peripherals import simulated_usb

log = logging.getLogger(__name__)

CONNECT_SPREAD_S = 0.01
"""Pause between starting two terminals, so a big fleet does not connect in one burst."""
POWER_CHECK_S = 30.0
"""How often a terminal looks whether it should be switched on or off."""


def build_agents(  # noqa: PLR0913 - the terminals, where they connect, and how
    terminals: list[SimulatedTerminal],
    broker: mqtt.BrokerAddress,
    timing: AgentTiming,
    seed: int,
    state_dir: Path,
    *,
    password_of: Callable[[str], str] | None = None,
    content_keys: TrustedKeys | None = None,
) -> list[Agent]:
    """One agent per terminal, each with its outbox in ``state_dir/<device_id>/``.

    With ``password_of`` (device id → its broker password), each terminal logs in as itself,
    as an enrolled terminal does; without, every terminal connects with ``broker``'s login, if
    any (an open broker, for tests of other parts). The outboxes outlive the simulator, as a
    terminal's would: records a run left unacknowledged are delivered by the next. Each
    terminal's USB peripherals are virtual devices its agent's drivers poll once a heartbeat
    (``edge.simulator.peripherals``). With ``content_keys``, each kiosk, station PC and booth
    takes part in rollouts with a package manager of its own, its content store and downloads
    beside its outbox (``edge.simulator.packages``); without, no terminal has one and content
    notices are ignored. Close the agents (``close_agents``) when done.
    """
    # Sessions start from wall-clock milliseconds so that a restarted simulator's presence
    # outranks the retained messages of its previous run.
    session_base = int(time.time() * 1000)
    agents: list[Agent] = []
    try:
        for t in terminals:
            device_dir = state_dir / t.device_id
            outbox = Outbox(device_dir / OUTBOX_FILE)
            login = (
                broker
                if password_of is None
                else broker.with_credentials(t.device_id, password_of(t.device_id))
            )
            usb = simulated_usb(
                t, random.Random(f"{seed}:usb:{t.device_id}"), _now, timing.heartbeat_interval_s
            )
            agents.append(
                Agent(
                    AgentIdentity(t.device_id, t.kind),
                    login,
                    SimulatedHealth(t.kind, random.Random(f"{seed}:{t.device_id}"), usb),
                    MemorySessionCounter(session_base),
                    timing=timing,
                    outbox=outbox,
                    peripherals=usb.monitor,
                    review_pad=usb.pad,
                    packages=package_manager(device_dir, t.kind, content_keys or {}),
                )
            )
    except BaseException:
        close_agents(agents)
        raise
    return agents


def _now() -> datetime:
    return datetime.now(UTC)


def close_agents(agents: list[Agent]) -> None:
    for agent in agents:
        agent.close()


async def run_fleet(  # noqa: PLR0913 - the fleet and what shapes its day
    agents: list[Agent],
    stop: asyncio.Event,
    *,
    visits_per_minute: float = 0.0,
    seed: int = 7,
    hours: Mapping[str, OpeningHours] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Run every agent until ``stop`` is set; each publishes its offline presence on the way out.

    With ``visits_per_minute``, each terminal also records simulated citizen visits (usage
    records, reviews) at that mean rate, connected or not, as a real terminal would. With
    ``hours`` (the opening hours by device id), a terminal is switched on and off around its
    site's hours and visited only while the site is open (``edge.simulator.day``); without,
    every terminal stays on and is visited around the clock. A terminal with a review pad has
    its visits rated on the pad, through its agent's review-pad link.

    The running loop's default executor is replaced by one sized for the fleet
    (``edge.simulator.packages.fleet_executor_size``): downloads, installs and peripheral polls
    of every terminal share it.
    """
    asyncio.get_running_loop().set_default_executor(fleet_executor(len(agents)))
    # Visits are numbered from 1 at every start; the start time keeps case numbers unique.
    case_prefix = f"{datetime.now(UTC):%Y%m%d%H%M%S}-"
    async with asyncio.TaskGroup() as tasks:
        for agent in agents:
            device_id = agent.identity.device_id
            site_hours = hours.get(device_id) if hours is not None else None
            tasks.create_task(_power_cycles(agent, site_hours, stop, clock), name=device_id)
            rng = random.Random(f"{seed}:visits:{device_id}")
            pad = _pad_of(agent)
            visits = VisitGenerator(
                device_id,
                agent.identity.kind,
                rng,
                window=pad.window if pad is not None else "",
                rates_on_pad=pad is not None,
                case_prefix=case_prefix,
            )
            if site_hours is None:
                activity = run_activity(agent, visits, visits_per_minute, stop, rng, pad=pad)
            else:
                busy = functools.partial(_busy, site_hours, clock)
                activity = run_activity(
                    agent, visits, visits_per_minute, stop, rng,
                    busy=busy, peak=day.MORNING_PEAK_FACTOR, pad=pad,
                )  # fmt: skip
            tasks.create_task(activity, name=f"visits-{device_id}")
            await asyncio.sleep(CONNECT_SPREAD_S)
        log.info("%d simulated terminals started", len(agents))


def _pad_of(agent: Agent) -> SimulatedPadLink | None:
    link = agent.review_pad
    return link if isinstance(link, SimulatedPadLink) else None


def _busy(hours: OpeningHours, clock: Callable[[], datetime]) -> float:
    return day.visit_factor(hours, clock())


async def _power_cycles(
    agent: Agent,
    hours: OpeningHours | None,
    stop: asyncio.Event,
    clock: Callable[[], datetime],
) -> None:
    """Run the agent while its site's terminals are switched on; a clean shutdown at closing."""
    if hours is None:
        await agent.run(stop)
        return
    while not stop.is_set():
        if not day.powered(hours, clock()):
            await _sleep_unless(stop, POWER_CHECK_S)
            continue
        switched_off = asyncio.Event()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(agent.run(switched_off))
            while not stop.is_set() and day.powered(hours, clock()):
                await _sleep_unless(stop, POWER_CHECK_S)
            switched_off.set()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
