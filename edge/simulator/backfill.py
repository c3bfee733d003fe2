"""A backfill: days of a demo district's past, delivered as live records are.

Each simulated terminal's visits of the days before today (``backfill_plan``) become records
dated in the past (``backfill_visits``), appended to the terminal's own outbox by its own agent
(so their sequence numbers and the review pad's hash chain continue where the terminal's are),
and then the agents connect and deliver them: outbox → MQTT → the control plane's ingest → its
database, each record deleted from its outbox only once acknowledged after the commit, exactly
as a terminal that was offline for those days would deliver its backlog. Nothing is written to
the database directly.

The ledger (``backfill_ledger``) refuses to backfill a day twice. Records not acknowledged when
a backfill is cut short stay in the outboxes; the next run of the simulator delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TypeVar

from edge.agent.runner import Agent
from edge.aio import cancel_and_wait
from edge.protocol import Record
from edge.schedule import OpeningHours

from .activity import VisitGenerator
from .backfill_ledger import claim_days
from .backfill_plan import RATING_YIELD, LevelPlan, plan_levels, targets, visit_starts
from .backfill_progress import Progress
from .backfill_visits import Produced, case_number, dated_records
from .district import SimulatedTerminal
from .packages import fleet_executor

POLL_S = 0.5
"""How often delivery looks at which backfilled records are still in their outboxes."""
WRITE_CHUNK = 100
"""Records written between two yields to the event loop: a few hundred ms of fsyncs at most on
a busy disk, short enough for running agents' keepalives and heartbeats, long enough for a
sender to pack them into few messages."""
CONNECT_WAIT_S = 60.0
"""Alongside the live simulator, how long the backfill waits for the terminals to come online
before it writes (writing starves the event loop of the connections being made)."""
T = TypeVar("T")


@dataclass(frozen=True)
class BackfillPlan:
    """The days to backfill and each hall level's target and rate."""

    days: list[date]
    levels: dict[str, LevelPlan]
    seed: int

    @classmethod
    def make(
        cls,
        terminals: Sequence[SimulatedTerminal],
        hours_by_site: Mapping[str, OpeningHours],
        days: list[date],
        *,
        scale: float = 1.0,
        seed: int = 7,
    ) -> BackfillPlan:
        wanted = targets(len(days), scale)
        return cls(days, plan_levels(terminals, hours_by_site, days, wanted), seed)

    def rate(self, level: str) -> float:
        plan = self.levels.get(level)
        return plan.rate if plan is not None else 0.0


@dataclass
class BackfillResult:
    produced: Produced
    seconds: float
    """From the first record written to the last acknowledged."""
    write_seconds: float
    """Writing the outboxes (while delivering already, when the agents run live)."""


def terminal_day(
    terminal: SimulatedTerminal, hours: OpeningHours, when: date, plan: BackfillPlan
) -> list[list[Record]]:
    """The terminal's visits on ``when``, each as its dated records.

    One random stream per (seed, terminal, day) draws the day's visit times and then their
    contents: a day comes out the same for the same seed and rate, whatever the order in which
    the terminals and days are written.
    """
    rng = random.Random(f"{plan.seed}:backfill:{terminal.device_id}:{when.isoformat()}")
    starts = visit_starts(hours, when, plan.rate(terminal.site_level), rng)
    visits = VisitGenerator(
        terminal.device_id,
        terminal.kind,
        rng,
        window=terminal.window,
        rates_on_pad=terminal.kind in RATING_YIELD,
    )
    return [
        dated_records(visits.next_visit(), start, case_number(terminal.device_id, when, n))
        for n, start in enumerate(starts, start=1)
    ]


@dataclass
class Backlog:
    """The backfill's records, generated up front, and the seqs each agent gave them."""

    visits: list[tuple[Agent, SimulatedTerminal, list[Record]]]
    total: int
    written: dict[str, list[int]] = field(default_factory=dict)
    """Device id → the sequence numbers of its backfilled records, as written so far."""
    written_at: float = 0.0
    """When the last record was written (monotonic clock)."""
    _delivered: set[str] = field(default_factory=set)

    @classmethod
    def generate(
        cls,
        agents: Sequence[Agent],
        terminals: Sequence[SimulatedTerminal],
        hours_by_site: Mapping[str, OpeningHours],
        plan: BackfillPlan,
    ) -> Backlog:
        """Every visit of every terminal; ``agents`` and ``terminals`` pair up by position."""
        visits = [
            (agent, terminal, records)
            for agent, terminal in zip(agents, terminals, strict=True)
            for when in plan.days
            for records in terminal_day(terminal, hours_by_site[terminal.site_code], when, plan)
        ]
        return cls(visits, sum(len(records) for _, _, records in visits))

    async def write(self, on_progress: Callable[[int], None] = lambda _n: None) -> Produced:
        """Append each record to its agent's outbox, a terminal at a time; what was written.

        Agents running meanwhile deliver the records as they are written, as live ones. A
        terminal's records go in one stretch, so that its sender finds them together and packs
        them into few messages (one at a time, each would be a message and an ingest batch),
        yielding to the event loop every ``WRITE_CHUNK`` records.
        """
        produced = Produced()
        previous, since_yield = "", 0
        for agent, terminal, records in self.visits:
            if terminal.device_id != previous or since_yield >= WRITE_CHUNK:
                on_progress(sum(len(seqs) for seqs in self.written.values()))
                # Each append waits for the disk without yielding: let the connections breathe.
                await asyncio.sleep(0)
                previous, since_yield = terminal.device_id, 0
            seqs = self.written.setdefault(terminal.device_id, [])
            for record in records:
                seqs.append(await agent.record(record))
            since_yield += len(records)
            produced.add(records, terminal.site_level, terminal.kind.value)
        self.written_at = time.monotonic()
        on_progress(self.total)
        return produced

    def unacknowledged(self, agents: Sequence[Agent]) -> int:
        """The written records still in their outboxes (not yet acknowledged).

        A terminal found with none left is not looked at again: its written records are all
        acknowledged, unless it is still being written to.
        """
        left = 0
        for agent in agents:
            device_id = agent.identity.device_id
            if device_id in self._delivered:
                continue
            pending = len(agent.outbox.records(self.written.get(device_id, ())))
            if pending == 0 and device_id in self.written and device_id != self._writing():
                self._delivered.add(device_id)
            left += pending
        return left

    def _writing(self) -> str:
        """The terminal being written to now (the last one started)."""
        return next(reversed(self.written), "")


async def deliver_backlog(
    agents: Sequence[Agent],
    backlog: Backlog,
    writing: asyncio.Task[Produced],
    on_progress: Callable[[int, int], None] = lambda _d, _t: None,
) -> Produced:
    """Wait until ``writing`` has written the backlog and every record is acknowledged.

    ``on_progress(acknowledged, total)`` as the acknowledgements come. Waits as long as it
    takes: a control plane that is down is waited for, as terminals wait for it.
    """
    try:
        while True:
            written = sum(len(seqs) for seqs in backlog.written.values())
            acknowledged = written - backlog.unacknowledged(agents)
            on_progress(acknowledged, backlog.total)
            if writing.done() and acknowledged == backlog.total:
                return writing.result()
            await asyncio.sleep(POLL_S)
    finally:
        await cancel_and_wait([writing])


async def run_agents_for(agents: Sequence[Agent], work: Awaitable[T]) -> T:
    """Run the agents (always on, no live visits) while ``work`` runs; then stop them."""
    asyncio.get_running_loop().set_default_executor(fleet_executor(len(agents)))
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        for agent in agents:
            tasks.create_task(agent.run(stop), name=f"backfill-{agent.identity.device_id}")
        try:
            return await work
        finally:
            stop.set()


async def run_backfill(  # noqa: PLR0913 - the fleet, its plan, where its state lives
    agents: Sequence[Agent],
    terminals: Sequence[SimulatedTerminal],
    hours_by_site: Mapping[str, OpeningHours],
    plan: BackfillPlan,
    *,
    state_dir: Path,
    progress: Progress,
    agents_running: bool = False,
) -> BackfillResult:
    """Claim the plan's days in the ledger, write the records, see each acknowledged.

    With ``agents_running``, the agents are run by the live simulator meanwhile (its visits
    interleave with the backfill's); otherwise they run here until the backfill is delivered.
    """
    claim_days(state_dir, plan.days)
    if agents_running:
        await _connected(agents, CONNECT_WAIT_S)
    backlog = Backlog.generate(agents, terminals, hours_by_site, plan)
    started = time.monotonic()

    def acknowledged(done: int, total: int) -> None:
        progress.update("backfilled records acknowledged", done, total, final=done == total)

    def written(done: int) -> None:
        progress.update("backfilled records written", done, backlog.total, final=done == total)

    total = backlog.total
    writing = asyncio.create_task(backlog.write(written), name="backfill-write")
    if agents_running:
        produced = await deliver_backlog(agents, backlog, writing, acknowledged)
    else:
        # Written before the agents connect, a terminal's backlog goes out packed in few
        # messages rather than trickling out record by record as it is written.
        await writing
        delivered = deliver_backlog(agents, backlog, writing, acknowledged)
        produced = await run_agents_for(agents, delivered)
    write_seconds = backlog.written_at - started
    return BackfillResult(produced, time.monotonic() - started, write_seconds)


async def _connected(agents: Sequence[Agent], timeout_s: float) -> None:
    """Wait until every agent is connected, or ``timeout_s``: the backfill goes on either way."""
    waits = [agent.connected.wait() for agent in agents]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*waits), timeout_s)
