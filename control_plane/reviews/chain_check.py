"""Checking a review pad's hash chain (防篡改 tamper evidence) one batch at a time. Pure.

The caller passes the pad's reviews with ``last_verified.seq < seq <= watermark``, where the
watermark is the device's contiguous-committed seq: every record up to it has arrived, so which
review came before which is settled (reviews share the per-device seq with usage and events, so
their seqs have gaps). ``check`` re-hashes each review, follows the links and returns the problems
found and the tip to store; the next batch starts from that tip, so any split of a pad's reviews
into consecutive batches finds the same problems. The rule is in docs/review-chain.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from edge.protocol.review_chain import GENESIS, review_hash
from edge.protocol.reviews import Review

NO_HASH = ""
"""``hash`` of a review from a pad without chain support, and of the tip after one."""


class ProblemKind(StrEnum):
    HASH_MISMATCH = "hash_mismatch"
    """The review does not re-hash to its ``hash``: altered after it was sealed."""
    BROKEN_LINK = "broken_link"
    """``prev_hash`` is not the previous review's ``hash``: a review removed, inserted or moved."""
    RESTARTED = "restarted"
    """``prev_hash`` is GENESIS after a chained review: the pad's log was reset (or replaced)."""
    UNCHAINED = "unchained"
    """The pad sends no hashes; reported at its first review only, not as a break on each."""
    MISSING_HASH = "missing_hash"
    """A review without ``hash`` after a chained one: hashes stripped, or firmware downgraded."""


@dataclass(frozen=True, slots=True)
class ChainTip:
    """The last review checked: the next batch's first review must link to ``hash``.

    ``hash`` is NO_HASH when that review had none. To start checking a pad that already has
    reviews, anchor on its last stored review, ``ChainTip(review.seq, review.hash)``.
    """

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One problem at one review: what was expected there and what the review holds."""

    seq: int
    kind: ProblemKind
    expected: str
    found: str


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    problems: tuple[ChainProblem, ...]
    tip: ChainTip | None
    """What to store for the next batch; ``last_verified`` when the batch was empty."""

    @property
    def intact(self) -> bool:
        return not self.problems


def check(last_verified: ChainTip | None, reviews: Sequence[Review]) -> ChainVerdict:
    """The problems in ``reviews`` (the pad's own, by rising seq) following ``last_verified``.

    ``last_verified`` is None when ``reviews`` starts at the pad's first review. After a problem
    the chain goes on from the review that showed it: one alarm per break, not one per review
    after it.
    """
    _check_order(last_verified, reviews)
    problems: list[ChainProblem] = []
    tip = last_verified
    for review in reviews:
        problems += _problems_at(tip, review)
        tip = ChainTip(review.seq, review.hash)
    return ChainVerdict(tuple(problems), tip)


def check_late(review: Review) -> list[ChainProblem]:
    """A review that arrived after the chain was checked past its seq: its own seal only.

    Its place in the chain was judged when the chain passed it: the review after it showed a
    ``broken_link`` then, as it was missing (a dead letter stored again later, or a record the
    walk gave up waiting for). What is left to check is that it re-hashes to its ``hash``.
    """
    if review.hash == NO_HASH or (computed := review_hash(review)) == review.hash:
        return []
    return [ChainProblem(review.seq, ProblemKind.HASH_MISMATCH, computed, review.hash)]


def _problems_at(tip: ChainTip | None, review: Review) -> list[ChainProblem]:
    previous = NO_HASH if tip is None else tip.hash
    if review.hash == NO_HASH:
        # Only the change from chained (or from nothing) to unchained is news.
        if tip is None:
            return [ChainProblem(review.seq, ProblemKind.UNCHAINED, NO_HASH, NO_HASH)]
        if previous != NO_HASH:
            return [ChainProblem(review.seq, ProblemKind.MISSING_HASH, previous, NO_HASH)]
        return []
    problems = []
    if (computed := review_hash(review)) != review.hash:
        problems.append(ChainProblem(review.seq, ProblemKind.HASH_MISMATCH, computed, review.hash))
    if link := _link_problem(tip, review):
        problems.append(link)
    return problems


def _link_problem(tip: ChainTip | None, review: Review) -> ChainProblem | None:
    previous = NO_HASH if tip is None else tip.hash
    if previous == NO_HASH and review.prev_hash == GENESIS:
        return None  # the pad's first review, or a pad without a chain starting one
    if review.prev_hash == previous:
        return None
    if review.prev_hash == GENESIS:
        return ChainProblem(review.seq, ProblemKind.RESTARTED, previous, GENESIS)
    return ChainProblem(review.seq, ProblemKind.BROKEN_LINK, previous, review.prev_hash)


def _check_order(last_verified: ChainTip | None, reviews: Sequence[Review]) -> None:
    seqs = [review.seq for review in reviews]
    if last_verified is not None:
        seqs.insert(0, last_verified.seq)
    if any(later <= earlier for earlier, later in itertools.pairwise(seqs)):
        msg = "reviews must come by rising seq, each after the last verified one"
        raise ValueError(msg)
