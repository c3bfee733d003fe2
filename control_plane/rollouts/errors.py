"""One tree of errors for the rollout planner. Pure.

Each error carries ``reason``, a stable machine-readable word for the API and the CLI; the
message is for people.
"""

from __future__ import annotations


class RolloutError(ValueError):
    """A rollout request that cannot be carried out; ``reason`` says why in one word."""

    reason = "invalid"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class RolloutSpecError(RolloutError):
    """A rollout spec that is refused before it starts (waves, thresholds, targets)."""

    reason = "invalid_spec"


class IllegalTransitionError(RolloutError):
    """A device or rollout asked to move to a state its transition table does not allow."""

    reason = "illegal_transition"


class OperationError(RolloutError):
    """An operator action (pause, resume, cancel, retry, roll back) the rollout's phase refuses."""

    reason = "operation_refused"
