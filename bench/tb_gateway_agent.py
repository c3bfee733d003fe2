"""The edge agent as ``python -m edge.agent`` runs it, plus a burst of records on SIGUSR1.

    python -m bench.tb_gateway_agent --config FILE --burst N

For ``bench/tb_gateway.py``: the same start-up (``build_agent``) and event loop as the lean
agent, so its idle footprint is the agent's; on SIGUSR1 it records N print jobs through
``Agent.record``, the path a peripheral's or the review pad's records take (validated, stored
in the outbox with its fsync, handed to the sender), one after another as fast as the agent
takes them. Nothing else is added: the burst is what this module is for.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from edge.agent.runner import Agent
from edge.agent.startup import build_agent
from edge.protocol import PrintJob

BURST_SIGNAL = signal.SIGUSR1


async def burst(agent: Agent, records: int) -> None:
    for _ in range(records):
        await agent.record(PrintJob(seq=0, pages=1, printer="printer0"))
        # Record() stores without awaiting anything; yielding lets the sender publish while
        # records keep coming, as it does when a peripheral records between its own awaits.
        await asyncio.sleep(0)


async def serve(agent: Agent, records: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bursts: set[asyncio.Task[None]] = set()

    def start_burst() -> None:
        task = loop.create_task(burst(agent, records))
        bursts.add(task)
        task.add_done_callback(bursts.discard)

    loop.add_signal_handler(BURST_SIGNAL, start_burst)
    await agent.run(stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--burst", type=int, required=True, metavar="N")
    args = parser.parse_args()
    # The lean agent's default level; the agent logs nothing per record at it.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    agent = build_agent(args.config)
    try:
        asyncio.run(serve(agent, args.burst))
    finally:
        agent.close()


if __name__ == "__main__":
    main()
