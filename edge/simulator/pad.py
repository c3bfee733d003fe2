"""A simulated window's review pad: the citizen presses a key, the agent's real link binds it.

The pad is a ``VirtualReviewPad`` on the terminal's simulated bus, read by the real driver
through the bridge; the case is announced to the agent's ``ReviewPadLink`` (which prompts on the
pad) and the press becomes a ``Review`` through the link's binder, as on a real terminal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from edge.agent.review_pad import ReviewPadLink
from edge.protocol import Review
from firmware_bridge.bridge import PeripheralBridge
from firmware_bridge.errors import PeripheralError
from firmware_bridge.simulated.review_pad import VirtualReviewPad

from .activity import RatedCase

log = logging.getLogger(__name__)

PRESS_READ_TIMEOUT_MS = 50
"""The press is already queued on the pad when it is read; this bounds a pad that lost it."""


class SimulatedPadLink(ReviewPadLink):
    """A ``ReviewPadLink`` whose citizen is the simulator: the pad is read right after a press.

    ``ReviewPadLink.run`` waits for keys in blocking 500 ms reads, one worker thread per pad for
    as long as the agent runs; a district's 136 pads would hold every thread of asyncio's default
    executor and starve the peripheral polls. Here ``run`` waits for nothing, and ``rate`` reads
    the pad once, just after pressing, so a pad holds a thread only for a moment per review.
    """

    def __init__(
        self,
        bridge: PeripheralBridge,
        pad_name: str,
        pad: VirtualReviewPad,
        clock: Callable[[], datetime],
        *,
        window: str = "",
    ) -> None:
        super().__init__(bridge, pad_name, clock)
        self.pad = pad
        self.window = window
        """The counter the pad stands at, which the window's system names in its cases."""

    async def run(self, record: Callable[[Review], Awaitable[object]]) -> None:  # noqa: ARG002
        """Until cancelled: presses are read where they are made, in ``rate``."""
        await asyncio.Event().wait()

    async def rate(
        self, case: RatedCase, record: Callable[[Review], Awaitable[object]]
    ) -> Review | None:
        """Announce the case, press its rating, and record the review the link binds, if any.

        None when the pad did not take the press: a stuck key, or a pad off the bus.
        """
        await self.case_ended(case.notice)
        if self.pad.press(case.rating) is None:
            return None  # the key is stuck: the pad never reports it
        try:
            return await self.read_once(record, PRESS_READ_TIMEOUT_MS)
        except PeripheralError as exc:
            log.debug("press not read: %s", exc)
            return None
