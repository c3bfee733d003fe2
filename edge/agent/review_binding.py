"""Binding a review pad's key press to the handled case (办件) it rates: one rating per case.

The window's business system (through the control plane) tells the pad's terminal that a case has
ended (``CaseNotice``); the pad then prompts the citizen, and the next press rates that case. Pure:
no clock, no pad, no IO; the agent passes in notices, presses and their times.

A case that ends while another awaits its rating replaces it; the earlier one stays unrated, and
the control plane counts it 基本满意 basic once the rating period has passed (Guangdong: 7 natural
days), so that default is never made here.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

from edge.protocol import CaseNotice, Rating, Review, ReviewChannel

PROMPT_TEMPLATE = "请评价 办件 {case_number}"
""""Please rate case …": what the pad shows when a case ends."""
REMEMBERED_RATINGS = 64
"""Rated case numbers kept to refuse a second rating; a window handles far fewer between repeats
of a notice (at-least-once delivery repeats within minutes)."""


class ReviewBinder:
    """Turns the presses of one window's pad into ``Review`` records of the cases they rate.

    ``expire_after``, when given, unbinds an awaited case once that long has passed since it
    ended (by ``ended_at``), so a passer-by's press much later rates nothing.
    """

    def __init__(
        self,
        *,
        remember: int = REMEMBERED_RATINGS,
        prompt_template: str = PROMPT_TEMPLATE,
        expire_after: timedelta | None = None,
    ) -> None:
        if remember < 1:
            msg = f"remember must be at least 1 rated case, not {remember}"
            raise ValueError(msg)
        self._remember = remember
        self._prompt_template = prompt_template
        self._expire_after = expire_after
        self._awaiting: CaseNotice | None = None
        self._last_rated: CaseNotice | None = None
        self._latest_end: datetime | None = None
        self._rated: OrderedDict[str, None] = OrderedDict()
        self.unbound_presses = 0
        """Presses with no case to rate: none was announced, or it expired."""
        self.repeat_ratings = 0
        """Presses after the last case was rated and before the next ended: a second rating."""
        self.ignored_notices = 0
        """Notices of a case already rated, or of one that ended before the latest announced."""

    @property
    def awaiting(self) -> CaseNotice | None:
        """The case the next press rates, if any."""
        return self._awaiting

    def case_ended(self, notice: CaseNotice) -> str | None:
        """Await a rating of ``notice``'s case; the prompt to show, or None to leave the pad as is.

        None for a case already rated here, or one that ended before the latest case announced
        here: both are late repeats of a notice, and prompting for them would bind the next
        citizen's rating to someone else's case.
        """
        if not notice.case_number:
            msg = "a case notice without a case number (办件编号) cannot be rated"
            raise ValueError(msg)
        if notice.case_number in self._rated or self._ended_before_latest(notice):
            self.ignored_notices += 1
            return None
        self._awaiting = notice
        self._last_rated = None
        if notice.ended_at is not None:
            self._latest_end = notice.ended_at
        return self._prompt_template.format(case_number=notice.case_number)

    def rated(self, rating: Rating, at: datetime) -> Review | None:
        """The review of the awaited case by a press at ``at``; None if the press rates nothing.

        ``seq`` stays unset: the agent's outbox numbers the record when it stores it.
        """
        if rating is Rating.UNKNOWN:
            msg = "a press rates one of the five levels, not UNKNOWN"
            raise ValueError(msg)
        if at.tzinfo is None:
            msg = f"press time {at} has no time zone; records carry RFC 3339 times"
            raise ValueError(msg)
        notice = self._awaiting
        if notice is None or self._expired(notice, at):
            self._awaiting = None
            last = self._last_rated
            if last is not None and not self._expired(last, at):
                self.repeat_ratings += 1
            else:
                self.unbound_presses += 1
            return None
        self._awaiting = None
        self._last_rated = notice
        self._remember_rated(notice.case_number)
        return Review(
            case_number=notice.case_number,
            item_code=notice.item_code,
            channel=ReviewChannel.WINDOW_PAD,
            rating=rating,
            institution=notice.institution,
            window=notice.window,
            staff_id=notice.staff_id,
            at=at,
        )

    def _ended_before_latest(self, notice: CaseNotice) -> bool:
        latest = self._latest_end
        return latest is not None and notice.ended_at is not None and notice.ended_at < latest

    def _expired(self, notice: CaseNotice, at: datetime) -> bool:
        if self._expire_after is None or notice.ended_at is None:
            return False
        return at - notice.ended_at > self._expire_after

    def _remember_rated(self, case_number: str) -> None:
        self._rated[case_number] = None
        while len(self._rated) > self._remember:
            self._rated.popitem(last=False)
