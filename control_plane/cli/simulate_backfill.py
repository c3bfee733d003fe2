"""``termfleet simulate --backfill-days N``: the district's past days, through the real ingest."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edge.aio import cancel_and_wait

from .output import print_rows

if TYPE_CHECKING:
    from edge.agent.runner import Agent
    from edge.schedule import OpeningHours
    from edge.simulator.backfill import BackfillPlan, BackfillResult
    from edge.simulator.district import SimulatedTerminal

SUMMARY_COLUMNS = (
    "level",
    "target",
    "window_cases",
    "self_service_cases",
    "pages_printed",
    "id_card_reads",
    "help_calls",
    "bad_reviews",
)


@dataclass(frozen=True)
class BackfillRequest:
    """What the command line asked for, and the fleet it asked it of."""

    district: str
    days: int
    scale: float
    seed: int
    state_dir: Path
    terminals: Sequence[SimulatedTerminal]
    hours_by_site: Mapping[str, OpeningHours]

    def plan(self) -> BackfillPlan:
        """The days before today in the district's zone, and each level's rate; usage errors."""
        from edge.simulator.backfill import BackfillPlan
        from edge.simulator.backfill_plan import BackfillPlanError, backfill_days

        zone = next(iter(self.hours_by_site.values())).zone
        try:
            days = backfill_days(datetime.now(zone).date(), self.days)
            return BackfillPlan.make(
                self.terminals, self.hours_by_site, days, scale=self.scale, seed=self.seed
            )
        except BackfillPlanError as exc:
            raise click.UsageError(str(exc)) from None


async def backfill(
    request: BackfillRequest, plan: BackfillPlan, agents: list[Agent], *, agents_running: bool
) -> BackfillResult:
    """Run the backfill, progress on stderr; a refusal (days done before) as a ClickException."""
    from edge.simulator.backfill import run_backfill
    from edge.simulator.backfill_ledger import BackfillRefusedError
    from edge.simulator.backfill_progress import Progress

    click.echo(
        f"backfilling {len(plan.days)} days ({plan.days[0]} to {plan.days[-1]}) of"
        f" {request.district} through {len(agents)} terminals' outboxes",
        err=True,
    )
    try:
        return await run_backfill(
            agents,
            request.terminals,
            request.hours_by_site,
            plan,
            state_dir=request.state_dir,
            progress=Progress(sys.stderr),
            agents_running=agents_running,
        )
    except BackfillRefusedError as exc:
        raise click.ClickException(str(exc)) from None


async def alongside(
    fleet: Coroutine[Any, Any, None],
    request: BackfillRequest,
    plan: BackfillPlan,
    agents: list[Agent],
) -> None:
    """Run the live ``fleet`` and the backfill through its agents; then the fleet until it stops.

    A refused backfill is a warning: the live simulator carries on.
    """
    live = asyncio.create_task(fleet, name="fleet")
    filling = asyncio.create_task(
        backfill(request, plan, agents, agents_running=True), name="backfill"
    )
    await asyncio.wait({live, filling}, return_when=asyncio.FIRST_COMPLETED)
    if filling.done():
        try:
            report(plan, filling.result(), len(agents), as_json=False)
        except click.ClickException as exc:
            click.echo(f"WARNING: {exc.message}; carrying on live", err=True)
    else:
        await cancel_and_wait([filling])
    await live


def run_backfill_command(
    request: BackfillRequest,
    agents_of: Callable[[], list[Agent]],
    *,
    as_json: bool,
) -> None:
    """Plan, claim, write and deliver the backfill, then exit; a summary on stdout."""
    from edge.simulator.fleet import close_agents

    plan = request.plan()
    agents = agents_of()
    try:
        result = asyncio.run(backfill(request, plan, agents, agents_running=False))
    finally:
        close_agents(agents)
    report(plan, result, len(agents), as_json=as_json)


def report(plan: BackfillPlan, result: BackfillResult, terminals: int, *, as_json: bool) -> None:
    """What the backfill produced, by hall level beside its targets (or all of it as JSON)."""
    produced = result.produced
    if as_json:
        body: dict[str, Any] = {
            "days": [day.isoformat() for day in plan.days],
            "terminals": terminals,
            "targets": {level: round(p.target, 1) for level, p in plan.levels.items()},
            "seconds": round(result.seconds, 1),
            "write_seconds": round(result.write_seconds, 1),
            **produced.as_json(),
        }
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"backfilled {len(plan.days)} days ({plan.days[0]} to {plan.days[-1]}):"
        f" {produced.records:,} records of {produced.visits:,} visits from {terminals}"
        f" terminals, every one acknowledged, in {result.seconds:.0f}s (written in"
        f" {result.write_seconds:.0f}s)"
    )
    levels = [*plan.levels, *(level for level in produced.by_level if level not in plan.levels)]
    rows = []
    for level in levels:
        counts = produced.by_level[level]
        target = plan.levels.get(level)
        row: dict[str, Any] = {name: counts[name] for name in SUMMARY_COLUMNS[2:]}
        rows.append({"level": level, "target": round(target.target) if target else None, **row})
    print_rows(rows, SUMMARY_COLUMNS, as_json=False)
    click.echo(
        "The control plane's statistics show them once it rolls up (termfleet stats rollup)."
    )
