"""What a rollout is asked to do (``RolloutSpec``) and where it stands (``RolloutState``). Pure.

Targeting by subtree, kind and labels is resolved before a spec is made: the spec holds the
resulting device ids. Thresholds are exact fractions (see ``waves.percent``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from fractions import Fraction

from .errors import RolloutError, RolloutSpecError
from .states import PauseReason, RolloutPhase
from .waves import DEFAULT_WAVES, WHOLE, check_shares, percent, split_waves

DEFAULT_SUCCESS_THRESHOLD = percent(95)
DEFAULT_FAILURE_THRESHOLD = percent(10)
# One failure is noise; five finished devices are the fewest whose failed share means something.
DEFAULT_MIN_FINISHED = 5
# Long enough for a 20 MB package over a village station's line, short enough to notice a
# terminal that went dark mid-install within one working day.
DEFAULT_DEVICE_TIMEOUT = timedelta(hours=2)


class InstallPolicy(StrEnum):
    OUTSIDE_OPENING_HOURS = "outside_opening_hours"
    """Install only while the terminal's site is closed."""
    WHEN_IDLE = "when_idle"
    """Also install during opening hours when the terminal reports itself idle."""


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """One rollout of ``target_version`` to ``device_ids``, with its waves and thresholds."""

    rollout_id: str
    target_version: str
    device_ids: tuple[str, ...]
    previous_version: str | None = None
    """The version a rollback returns to; None when there is none to return to."""
    waves: tuple[Fraction, ...] = DEFAULT_WAVES
    success_threshold: Fraction = DEFAULT_SUCCESS_THRESHOLD
    """A finished wave advances when at least this share of its judged devices succeeded."""
    failure_threshold: Fraction = DEFAULT_FAILURE_THRESHOLD
    """A wave pauses the rollout when more than this share of its judged devices failed."""
    min_finished: int = DEFAULT_MIN_FINISHED
    """Judged devices a wave needs before its failed share can pause (a smaller wave: all)."""
    device_timeout: timedelta = DEFAULT_DEVICE_TIMEOUT
    install_policy: InstallPolicy = InstallPolicy.OUTSIDE_OPENING_HOURS
    allow_older: bool = False
    """The rollback flag: agents accept a version older than the one they run."""

    def __post_init__(self) -> None:
        _check_identity(self)
        check_shares(self.waves)
        for name in ("success_threshold", "failure_threshold"):
            share = getattr(self, name)
            if not 0 <= share <= WHOLE:
                msg = f"{name} must be between 0 % and 100 %, not {float(share):.2%}"
                raise RolloutSpecError(msg, reason="threshold_out_of_range")
        if self.min_finished < 1:
            msg = f"min_finished must be at least 1, not {self.min_finished}"
            raise RolloutSpecError(msg, reason="min_finished_out_of_range")
        if self.device_timeout <= timedelta(0):
            msg = f"device_timeout must be positive, not {self.device_timeout}"
            raise RolloutSpecError(msg, reason="timeout_out_of_range")


def _check_identity(spec: RolloutSpec) -> None:
    if not spec.rollout_id or not spec.target_version:
        msg = "a rollout needs an id and a target version"
        raise RolloutSpecError(msg, reason="missing_field")
    if not spec.device_ids:
        msg = "a rollout needs at least one target device"
        raise RolloutSpecError(msg, reason="no_devices")
    if len(set(spec.device_ids)) != len(spec.device_ids):
        msg = "a device is targeted twice"
        raise RolloutSpecError(msg, reason="duplicate_device")
    if spec.previous_version == spec.target_version:
        msg = f"the previous version cannot be the target {spec.target_version!r} itself"
        raise RolloutSpecError(msg, reason="previous_is_target")


@dataclass(frozen=True, slots=True)
class RolloutState:
    """A rollout's own state: phase, current wave, and the fixed wave membership."""

    spec: RolloutSpec
    phase: RolloutPhase = RolloutPhase.RUNNING
    wave: int = 0
    """Index of the current wave; devices of waves 0..wave may be notified."""
    pause_reason: PauseReason | None = None
    waived_wave: int | None = None
    """A wave whose thresholds an operator waived on resume: it advances once all finished."""
    members: tuple[tuple[str, ...], ...] = field(default=(), compare=False)
    """The devices each wave adds, derived from the spec when not given (``waves.split_waves``)."""

    def __post_init__(self) -> None:
        if not self.members:
            members = split_waves(self.spec.rollout_id, self.spec.device_ids, self.spec.waves)
            # A derived cache on a frozen value: set once, here, before anyone can see it.
            object.__setattr__(self, "members", members)
        if not 0 <= self.wave < len(self.members):
            msg = f"wave {self.wave} does not exist: the rollout has {len(self.members)} waves"
            raise RolloutError(msg, reason="wave_out_of_range")

    @classmethod
    def start(cls, spec: RolloutSpec) -> RolloutState:
        """A new running rollout at its first wave."""
        return cls(spec=spec)

    @property
    def last_wave(self) -> int:
        return len(self.members) - 1

    @property
    def version(self) -> str:
        """The version devices are sent: the target, or the previous one once rolling back."""
        if self.phase in {RolloutPhase.ROLLING_BACK, RolloutPhase.ROLLED_BACK}:
            # rollback() refuses a spec without a previous version, so it is set here.
            return self.spec.previous_version or self.spec.target_version
        return self.spec.target_version

    def eligible(self) -> frozenset[str]:
        """Devices of the current and earlier waves: the only ones that may be notified."""
        return frozenset(device for wave in self.members[: self.wave + 1] for device in wave)
