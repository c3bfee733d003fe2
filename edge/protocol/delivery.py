"""The control plane's delivery acknowledgement, sent only after the records are committed."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .common import Payload, Seq, Timestamp


class Ack(Payload, frozen=True, kw_only=True):
    """Records the agent may now delete from its outbox.

    ``seqs`` lists every committed record, duplicates included (a duplicate is committed already,
    so acknowledging it again is what lets the agent stop resending it). ``rejected`` lists
    records that can never be stored as sent; the control plane has kept their raw bytes for an
    operator, so the agent deletes them too.
    """

    seqs: Annotated[tuple[Seq, ...], msgspec.Meta(max_length=10_000)] = ()
    rejected: tuple[Seq, ...] = ()
    committed_at: Timestamp | None = None
