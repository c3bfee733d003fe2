"""The host's side of the DFU 1.1 state diagram: what to send next and what an answer means.

How an image is cut into DFU_DNLOAD blocks, what each DFU_GETSTATUS answer means after a block
and during manifestation, and which requests lead back to dfuIDLE. Pure: values in, values out;
``firmware_bridge.dfu`` sends what it decides. Sections cited are those of DFU 1.1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from firmware_bridge.codecs.dfu import (
    BLOCK_NUMBER_MODULO,
    BUSY_STATES,
    DfuRequest,
    DfuState,
    DfuStatus,
    DfuStatusCode,
)


@dataclass(frozen=True)
class Block:
    number: int
    """wValue of the DFU_DNLOAD: counts from 0 and wraps after 65,535 (§6.1.1)."""
    data: bytes
    done: int
    """Bytes of the payload sent once this block is accepted."""


def plan_blocks(payload: bytes, transfer_size: int) -> tuple[Block, ...]:
    """The payload cut into DFU_DNLOAD blocks of at most wTransferSize bytes."""
    return tuple(
        Block(index % BLOCK_NUMBER_MODULO, payload[start : start + transfer_size], end)
        for index, start in enumerate(range(0, len(payload), transfer_size))
        for end in (min(start + transfer_size, len(payload)),)
    )


class Verdict(enum.Enum):
    WAIT = "wait"
    """Still busy: ask DFU_GETSTATUS again after ``wait_ms`` (bwPollTimeout)."""
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Reaction:
    verdict: Verdict
    wait_ms: int = 0
    problem: str = ""


def after_block(status: DfuStatus) -> Reaction:
    """What a DFU_GETSTATUS answer after a DFU_DNLOAD means (§6.1.1, A.2.4-A.2.6)."""
    return _react(status, done={DfuState.DFU_DNLOAD_IDLE}, busy=BUSY_STATES)


def after_manifest(status: DfuStatus) -> Reaction:
    """What a DFU_GETSTATUS answer after the zero-length DFU_DNLOAD means (§7, A.2.7-A.2.9)."""
    done = {DfuState.DFU_IDLE, DfuState.DFU_MANIFEST_WAIT_RESET}
    return _react(status, done=done, busy={DfuState.DFU_MANIFEST_SYNC, DfuState.DFU_MANIFEST})


def _react(
    status: DfuStatus, *, done: set[DfuState], busy: frozenset[DfuState] | set[DfuState]
) -> Reaction:
    if status.status is not DfuStatusCode.OK:
        return Reaction(Verdict.FAILED, problem="the device reported an error")
    if status.state in done:
        return Reaction(Verdict.DONE)
    if status.state in busy:
        return Reaction(Verdict.WAIT, wait_ms=status.poll_timeout_ms)
    return Reaction(Verdict.FAILED, problem=f"the device went to {status.state.name}")


def requests_to_idle(state: DfuState) -> tuple[DfuRequest, ...] | None:
    """The requests that take a DFU-mode device back to dfuIDLE; None while it is busy.

    dfuERROR needs DFU_CLRSTATUS (§6.1.3); a transfer in progress needs DFU_ABORT (§6.1.5);
    dfuMANIFEST-WAIT-RESET needs nothing but the reset that follows anyway (A.2.9).
    """
    if state is DfuState.DFU_ERROR:
        return (DfuRequest.CLRSTATUS,)
    if state in {DfuState.DFU_DNLOAD_IDLE, DfuState.DFU_UPLOAD_IDLE}:
        return (DfuRequest.ABORT,)
    if state in BUSY_STATES:
        return None
    return ()
