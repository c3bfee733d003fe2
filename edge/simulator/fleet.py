"""Run many simulated terminals in one process, each with its own MQTT connection."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

from edge import mqtt
from edge.agent.outbox import OUTBOX_FILE, Outbox
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter

from .activity import VisitGenerator, run_activity
from .district import SimulatedTerminal
from .health import SimulatedHealth

log = logging.getLogger(__name__)

CONNECT_SPREAD_S = 0.01
"""Pause between starting two terminals, so a big fleet does not connect in one burst."""


def build_agents(
    terminals: list[SimulatedTerminal],
    broker: mqtt.BrokerAddress,
    timing: AgentTiming,
    seed: int,
    state_dir: Path,
) -> list[Agent]:
    """One agent per terminal, each with its outbox in ``state_dir/<device_id>/``.

    The outboxes outlive the simulator, as a terminal's would: records a run left unacknowledged
    are delivered by the next. Close the agents (``close_agents``) when done.
    """
    # Sessions start from wall-clock milliseconds so that a restarted simulator's presence
    # outranks the retained messages of its previous run.
    session_base = int(time.time() * 1000)
    agents: list[Agent] = []
    try:
        for t in terminals:
            outbox = Outbox(state_dir / t.device_id / OUTBOX_FILE)
            agents.append(
                Agent(
                    AgentIdentity(t.device_id, t.kind),
                    broker,
                    SimulatedHealth(t.kind, random.Random(f"{seed}:{t.device_id}")),
                    MemorySessionCounter(session_base),
                    timing=timing,
                    outbox=outbox,
                )
            )
    except BaseException:
        close_agents(agents)
        raise
    return agents


def close_agents(agents: list[Agent]) -> None:
    for agent in agents:
        agent.close()


async def run_fleet(
    agents: list[Agent], stop: asyncio.Event, *, visits_per_minute: float = 0.0, seed: int = 7
) -> None:
    """Run every agent until ``stop`` is set; each publishes its offline presence on the way out.

    With ``visits_per_minute``, each terminal also records simulated citizen visits (usage
    records, reviews) at that mean rate, connected or not, as a real terminal would.
    """
    async with asyncio.TaskGroup() as tasks:
        for agent in agents:
            device_id = agent.identity.device_id
            tasks.create_task(agent.run(stop), name=f"agent-{device_id}")
            rng = random.Random(f"{seed}:visits:{device_id}")
            visits = VisitGenerator(device_id, agent.identity.kind, rng)
            tasks.create_task(
                run_activity(agent, visits, visits_per_minute, stop, rng),
                name=f"visits-{device_id}",
            )
            await asyncio.sleep(CONNECT_SPREAD_S)
        log.info("%d simulated terminals started", len(agents))
