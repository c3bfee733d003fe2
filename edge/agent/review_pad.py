"""The window's review pad (评价器) in the agent: a case ends, the pad asks, a key rates it.

The control plane (for the window's business system) sends a ``CaseNotice`` on the case
downlink; the pad shows the prompt; the citizen's key press becomes a ``Review`` record in the
outbox, bound by ``ReviewBinder`` to the case, item, window and staff member. Key reads block
on USB, so they run in a worker thread a short timeout at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from edge.protocol import CaseNotice, Review
from firmware_bridge.bridge import PeripheralBridge
from firmware_bridge.driver import PeripheralDriver
from firmware_bridge.drivers.review_pad import ReviewPadDriver
from firmware_bridge.errors import PeripheralError

from .review_binding import ReviewBinder

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_READ_TIMEOUT_MS = 500
"""One wait for a key; the status poll and prompts take their turn between two waits."""
ABSENT_RETRY_S = 2.0
"""How soon an absent or failing pad is tried again."""
SHORT_PROMPT = "请评价"
"""Shown when the case's own prompt does not fit the pad's display."""


class ReviewPadLink:
    """Binds one pad's key presses to the cases the agent is told about."""

    def __init__(
        self,
        bridge: PeripheralBridge,
        pad: str,
        clock: Callable[[], datetime],
        binder: ReviewBinder | None = None,
    ) -> None:
        self._bridge = bridge
        self._pad = pad
        self._clock = clock
        self.binder = binder or ReviewBinder()

    async def case_ended(self, notice: CaseNotice) -> None:
        """Make ``notice`` the case awaiting a rating and prompt the citizen on the pad."""
        text = self.binder.case_ended(notice)
        if text is None:
            return  # a late duplicate of a case already rated or replaced
        try:
            await self._on_pad(lambda pad: _prompt(pad, text))
        except PeripheralError as exc:
            # The case still waits: a press after the pad comes back rates it.
            log.warning("%s: cannot prompt for case %s: %s", self._pad, notice.case_number, exc)

    async def run(self, record: Callable[[Review], Awaitable[object]]) -> None:
        """Read keys until cancelled; each press that rates a case is recorded."""
        while True:
            try:
                await self.read_once(record)
            except PeripheralError:
                await asyncio.sleep(ABSENT_RETRY_S)

    async def read_once(
        self,
        record: Callable[[Review], Awaitable[object]],
        timeout_ms: int = KEY_READ_TIMEOUT_MS,
    ) -> Review | None:
        """Wait up to ``timeout_ms`` for a key; record and return the review it makes, if any.

        None when nobody pressed, or the press rates nothing (no case awaits, or it is rated
        already: the binder counts those). Raises PeripheralError when the pad cannot be read.
        """
        press = await self._on_pad(lambda pad: pad.read_key(timeout_ms))
        if press is None:
            return None
        review = self.binder.rated(press.rating, self._clock())
        if review is None:
            return None
        await record(review)
        try:
            await self._on_pad(lambda pad: pad.thank())
        except PeripheralError as exc:
            log.warning("%s: cannot thank: %s", self._pad, exc)
        return review

    async def _on_pad(self, work: Callable[[ReviewPadDriver], T]) -> T:
        def on_driver(driver: PeripheralDriver) -> T:
            if not isinstance(driver, ReviewPadDriver):
                msg = f"{self._pad} is not a review pad"
                raise PeripheralError(msg, reason="not_a_review_pad")
            return work(driver)

        return await asyncio.to_thread(self._bridge.use, self._pad, on_driver)


def _prompt(pad: ReviewPadDriver, text: str) -> None:
    try:
        pad.prompt(text)
    except ValueError:  # DisplayTextError: too long for this pad's display
        pad.prompt(SHORT_PROMPT)
