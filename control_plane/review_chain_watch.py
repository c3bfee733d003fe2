"""Checking each review pad's hash chain (防篡改) as its reviews arrive, and raising the alarm.

A pad's reviews can only be checked in order once every record before them has arrived:
reviews share the device's seq with usage and events, and the agent may still be resending an
earlier one. So each round takes the pads with unchecked reviews (or refused ratings, which are
links of the chain too), finds the pad's **watermark** — the highest seq up to which every seq
after its chain tip is stored (a record or a dead letter) — and checks the reviews up to it
with ``control_plane.reviews.chain_check``. A gap that stays open for ``GAP_GRACE`` while later
records arrived is a record the pad will never send (a wiped outbox, say); the walk passes it,
and if a review was lost there the next review's link shows it.

Every problem is stored (``review_chain_problem``), counted in
``termfleet_review_chain_problems_total{kind}`` and logged: that is the alarm. A pad checked
for the first time anchors on its first stored review's link, so a pad that rated before the
control plane kept reviews is not reported as broken. See docs/review-chain.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edge.protocol import Channel, Review, decode
from edge.protocol.review_chain import GENESIS

from .db import DATABASE_ERRORS
from .db.models import RejectedMessage, StoredRecord
from .db.review_models import ReviewChainProblem, ReviewChainTip, ReviewRefusal, ReviewRow
from .db.whole import whole
from .metrics import ControlPlaneMetrics
from .reviews.chain_check import ChainProblem, ChainTip, check, check_late

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 10.0
GAP_GRACE = timedelta(minutes=10)
"""How long a missing seq may stay missing, while later ones arrived, before the walk passes it."""
PADS_PER_ROUND = 200
RECORDS_PER_WALK = 10_000


def watermark(
    tip_seq: int | None, arrived: Sequence[tuple[int, datetime]], now: datetime
) -> int | None:
    """The highest seq every seq after ``tip_seq`` up to which is settled. Pure.

    ``arrived`` are the stored seqs after the tip with their receive times, rising. A gap is
    passed once the record after it has been stored for ``GAP_GRACE``. None: nothing settled.
    """
    last = tip_seq
    for seq, received_at in arrived:
        if last is not None and seq <= last:
            continue
        if last is None or seq == last + 1 or now - received_at >= GAP_GRACE:
            last = seq
            continue
        break
    return last


@dataclass(frozen=True, slots=True)
class _Link:
    seq: int
    review: Review
    _: KW_ONLY
    refused: bool


async def check_pad(device_id: str, now: datetime) -> list[ChainProblem]:
    """Check one pad's settled, unchecked reviews; store the problems and the new tip."""
    async with in_transaction() as conn:
        tip_row = (
            await ReviewChainTip.filter(device_id=device_id).using_db(conn).select_for_update()
        )
        tip = ChainTip(tip_row[0].seq, tip_row[0].hash) if tip_row else None
        mark = watermark(tip.seq if tip else None, await _arrived(conn, device_id, tip), now)
        if mark is None:
            return []
        links = await _unchecked(conn, device_id, mark)
        if not links:
            return []
        # A link at or below the tip arrived after the chain was checked past it.
        late = [link for link in links if tip is not None and link.seq <= tip.seq]
        problems = [problem for link in late for problem in check_late(link.review)]
        reviews = [link.review for link in links if tip is None or link.seq > tip.seq]
        new_tip = None
        if reviews:
            verdict = check(tip if tip is not None else _anchor(reviews[0]), reviews)
            problems += verdict.problems
            new_tip = verdict.tip
        await _store(conn, device_id, links, problems=problems, tip=new_tip, now=now)
        return problems


def _anchor(first: Review) -> ChainTip | None:
    """Where a pad seen for the first time starts: trust its first stored review's link."""
    if first.hash and first.prev_hash != GENESIS:
        return ChainTip(first.seq - 1, first.prev_hash)
    return None


async def _arrived(
    conn: BaseDBAsyncClient, device_id: str, tip: ChainTip | None
) -> list[tuple[int, datetime]]:
    after = -(2**63) if tip is None else tip.seq
    stored = (
        await StoredRecord.filter(device_id=device_id, seq__gt=after)
        .using_db(conn)
        .order_by("seq")
        .limit(RECORDS_PER_WALK)
        .values_list("seq", "received_at")
    )
    dead = (
        await RejectedMessage.filter(device_id=device_id, seq__gt=after)
        .using_db(conn)
        .limit(RECORDS_PER_WALK)
        .values_list("seq", "received_at")
    )
    return sorted([*stored, *dead])


async def _unchecked(conn: BaseDBAsyncClient, device_id: str, mark: int) -> list[_Link]:
    accepted = (
        await ReviewRow.filter(device_id=device_id, chain_checked=False, seq__lte=mark)
        .using_db(conn)
        .values_list("seq", "payload")
    )
    refused = (
        await ReviewRefusal.filter(device_id=device_id, chain_checked=False, seq__lte=mark)
        .using_db(conn)
        .values_list("seq", "payload")
    )
    links = [_Link(seq, _review(payload), refused=False) for seq, payload in accepted]
    links += [_Link(seq, _review(payload), refused=True) for seq, payload in refused]
    return sorted(links, key=lambda link: link.seq)


def _review(payload: str) -> Review:
    review = decode(Channel.REVIEW, payload.encode())
    if not isinstance(review, Review):  # pragma: no cover - the ingest stored a Review
        msg = f"not a review: {payload[:80]!r}"
        raise TypeError(msg)
    return review


async def _store(  # noqa: PLR0913 - the pad, what was checked and what came of it
    conn: BaseDBAsyncClient,
    device_id: str,
    links: list[_Link],
    *,
    problems: Sequence[ChainProblem],
    tip: ChainTip | None,
    now: datetime,
) -> None:
    if problems:
        await ReviewChainProblem.bulk_create(
            [
                ReviewChainProblem(
                    device_id=device_id,
                    seq=problem.seq,
                    kind=problem.kind.value,
                    expected=problem.expected,
                    found=problem.found,
                    found_at=now,
                )
                for problem in problems
            ],
            ignore_conflicts=True,
            using_db=conn,
        )
    if tip is not None:
        await ReviewChainTip.update_or_create(
            {"seq": tip.seq, "hash": tip.hash, "checked_at": now},
            using_db=conn,
            device_id=device_id,
        )
    accepted = [link.seq for link in links if not link.refused]
    refused = [link.seq for link in links if link.refused]
    if accepted:
        await (
            ReviewRow.filter(device_id=device_id, seq__in=accepted)
            .using_db(conn)
            .update(chain_checked=True)
        )
    if refused:
        await (
            ReviewRefusal.filter(device_id=device_id, seq__in=refused)
            .using_db(conn)
            .update(chain_checked=True)
        )


async def pads_to_check() -> list[str]:
    """Pads with reviews or refused ratings not checked yet (a round's worth)."""
    accepted = (
        await ReviewRow.filter(chain_checked=False, source="terminal")
        .distinct()
        .limit(PADS_PER_ROUND)
        .values_list("device_id", flat=True)
    )
    refused = (
        await ReviewRefusal.filter(chain_checked=False)
        .distinct()
        .limit(PADS_PER_ROUND)
        .values_list("device_id", flat=True)
    )
    return sorted({*accepted, *refused})  # type: ignore[arg-type]


class ChainWatch:
    """The server's chore: a round every ``CHECK_INTERVAL_S``; problems become the alarm."""

    def __init__(self, metrics: ControlPlaneMetrics, clock: Callable[[], datetime]) -> None:
        self._metrics = metrics
        self._clock = clock

    async def round(self) -> list[tuple[str, ChainProblem]]:
        found = []
        for device_id in await pads_to_check():
            try:
                problems = await check_pad(device_id, self._clock())
            except DATABASE_ERRORS:
                raise
            except Exception:
                # A defect in one pad's check must not stop the others', nor the server.
                log.exception("review pad %s: hash chain check failed", device_id)
                continue
            for problem in problems:
                found.append((device_id, problem))
                self._metrics.review_chain_problems.labels(problem.kind.value).inc()
                log.warning(
                    "review pad %s: hash chain %s at seq %d (expected %r, found %r)",
                    device_id,
                    problem.kind.value,
                    problem.seq,
                    problem.expected,
                    problem.found,
                )
        return found

    async def run(self) -> None:
        while True:
            try:
                await whole(self.round())
            except DATABASE_ERRORS as exc:
                log.warning("review chain check failed, retrying: %s", exc)
            await asyncio.sleep(CHECK_INTERVAL_S)
