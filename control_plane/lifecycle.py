"""A terminal's lifecycle, from registration to retirement, and the moves it allows. Pure."""

from __future__ import annotations

from enum import StrEnum


class LifecycleError(ValueError):
    """A move the lifecycle does not allow."""


class Lifecycle(StrEnum):
    REGISTERED = "registered"
    """Known to the control plane (imported, or seen on the broker), not yet given credentials."""
    ENROLLED = "enrolled"
    """Has its own broker credentials and placement; waiting for commissioning."""
    COMMISSIONING = "commissioning"
    """On site, running its self-test of peripherals."""
    IN_SERVICE = "in_service"
    """Serving citizens."""
    RETIRED = "retired"
    """Taken out of the fleet for good; its credentials are revoked. Final."""


# Commissioning may fail back to enrolled; a terminal in service goes back to commissioning
# after a repair. Every state but retired may be retired.
ALLOWED: dict[Lifecycle, frozenset[Lifecycle]] = {
    Lifecycle.REGISTERED: frozenset({Lifecycle.ENROLLED, Lifecycle.RETIRED}),
    Lifecycle.ENROLLED: frozenset({Lifecycle.COMMISSIONING, Lifecycle.RETIRED}),
    Lifecycle.COMMISSIONING: frozenset(
        {Lifecycle.IN_SERVICE, Lifecycle.ENROLLED, Lifecycle.RETIRED}
    ),
    Lifecycle.IN_SERVICE: frozenset({Lifecycle.COMMISSIONING, Lifecycle.RETIRED}),
    Lifecycle.RETIRED: frozenset(),
}


def advance(current: Lifecycle, target: Lifecycle) -> Lifecycle:
    """``target``, if the lifecycle allows moving there from ``current``."""
    if target not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "nothing: it is final"
        msg = f"a {current} terminal cannot become {target} (allowed: {allowed})"
        raise LifecycleError(msg)
    return target
