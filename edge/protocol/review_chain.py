"""The hash chain of a review pad's log: each review's canonical form and its hash (wire contract).

A pad seals every review it records: ``hash`` is the lowercase hex sha256 of the review's
canonical form, which includes ``prev_hash`` (the ``hash`` of the pad's previous review, or
``GENESIS``). The control plane re-hashes what it stored and follows the links, so a review
altered, removed, inserted or reordered on the way shows. The rule is written out for pad firmware
in docs/review-chain.md; changing anything here breaks every pad in the field.
"""

from __future__ import annotations

import hashlib
import re

import msgspec

from .reviews import Indicators, Review

GENESIS = ""
"""``prev_hash`` of a pad's first review, and of the first after a reset of its log."""

HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
"""A review hash: sha256 as 64 lowercase hex digits."""

_NO_INDICATORS = Indicators()

# Keys sorted, compact, UTF-8 as is (no \u escapes), fields at their default left out: see
# docs/review-chain.md for why defaults are omitted rather than written.
_canonical_encoder = msgspec.json.Encoder(order="sorted")


def canonical(review: Review) -> bytes:
    """The bytes a review's hash is taken over: every field but ``hash``, in the canonical JSON.

    An indicators object with nothing rated counts as no indicators, so that a pad writing
    ``"indicators":{}`` and one leaving it out hash alike.
    """
    indicators = None if review.indicators == _NO_INDICATORS else review.indicators
    unhashed = msgspec.structs.replace(review, hash="", indicators=indicators)
    return _canonical_encoder.encode(unhashed)


def review_hash(review: Review) -> str:
    """Lowercase hex sha256 of ``canonical(review)``; ``prev_hash`` is inside it, not prepended."""
    return hashlib.sha256(canonical(review)).hexdigest()


def seal(review: Review, prev_hash: str) -> Review:
    """``review`` linked after ``prev_hash`` (``GENESIS`` for the first) and its ``hash`` set.

    Call it once ``seq`` and ``at`` are final: both are part of what is hashed.
    """
    if prev_hash != GENESIS and not HASH_PATTERN.fullmatch(prev_hash):
        msg = f"prev_hash must be empty or 64 lowercase hex digits, not {prev_hash!r}"
        raise ValueError(msg)
    linked = msgspec.structs.replace(review, prev_hash=prev_hash)
    return msgspec.structs.replace(linked, hash=review_hash(linked))
