"""The agent's side of the device twin: a ``DesiredConfig`` checked, applied, kept and reported.

The control plane keeps each terminal's desired config retained on its downlink, so it arrives
by itself on every (re)connect. A version no newer than the one applied is ignored; a newer one
is checked against the same typed keys as the control plane's (``edge.config_keys``) and
applied whole or not at all:

- what the agent itself uses takes effect at once (``retimed``: heartbeat interval and full
  snapshots; ``agent.log_level`` on the agent's loggers);
- everything its kind has, over the defaults, goes to ``state_dir/config.json`` for the kiosk
  application, replaced atomically;
- the applied version and values go to ``state_dir/twin.json``, so a restarted agent keeps them
  and still ignores older versions.

The result is a ``ReportedConfig`` (applied, or failed with the reason) that the runner
publishes, retained, on the device's uplink. Keys this agent does not know (a newer control
plane's) are dropped with a warning, as config from the wire always is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edge.atomic_file import write_atomic
from edge.config_keys import (
    KEYS,
    ConfigValue,
    ConfigValueError,
    applies_to,
    validate,
    with_defaults,
)
from edge.protocol import DesiredConfig, DeviceKind, ReportedConfig
from edge.protocol.config import ApplyStatus

if TYPE_CHECKING:
    from .runner import AgentTiming

log = logging.getLogger(__name__)

APPLIED_FILE = "twin.json"
"""The version and values applied last: the agent's own memory of the twin."""
APP_CONFIG_FILE = "config.json"
"""What the kiosk application reads: every key of this kind, desired values over defaults."""
APP_CONFIG_MODE = 0o644
"""The kiosk application may run as another user; the file holds no secret."""
HEARTBEAT_KEY = "telemetry.heartbeat_interval_s"
SNAPSHOT_KEY = "telemetry.full_snapshot_every"
LOG_LEVEL_KEY = "agent.log_level"
AGENT_LOGGER = "edge"


def _now() -> datetime:
    return datetime.now(UTC)


class TwinApplier:
    """Applies desired config for one terminal of ``kind`` whose state lives in ``state_dir``."""

    def __init__(
        self, state_dir: Path, kind: DeviceKind, clock: Callable[[], datetime] = _now
    ) -> None:
        self._state_dir = state_dir
        self._kind = kind
        self._clock = clock
        self.version, self.values = _load(state_dir / APPLIED_FILE)
        self._apply_logging()

    @property
    def effective(self) -> dict[str, ConfigValue]:
        """What this terminal runs with: the applied values over its keys' defaults."""
        return with_defaults(self.values, self._kind)

    def receive(self, desired: DesiredConfig) -> ReportedConfig | None:
        """Apply ``desired`` if newer than what is applied; the report to publish, or None."""
        if desired.version <= self.version:
            log.debug("desired config %d ignored: %d applied", desired.version, self.version)
            return None
        ours = {k: v for k, v in desired.values.items() if applies_to(k, self._kind)}
        if dropped := sorted(set(desired.values) - set(ours)):
            log.warning("desired config %d: keys dropped (unknown here): %s", desired.version,
                        ", ".join(dropped))  # fmt: skip
        try:
            values = validate(ours)
            self._write(desired.version, values)
        except ConfigValueError as exc:
            return self._failed(desired.version, str(exc))
        except OSError as exc:
            return self._failed(desired.version, f"cannot write the config: {exc.strerror or exc}")
        self.version, self.values = desired.version, values
        self._apply_logging()
        log.info("desired config %d applied", desired.version)
        return self._report(desired.version, ApplyStatus.APPLIED)

    def retimed(self, timing: AgentTiming) -> AgentTiming:
        """``timing`` with what the applied config sets of it; what it leaves unset stays."""
        interval = self.values.get(HEARTBEAT_KEY)
        every = self.values.get(SNAPSHOT_KEY)
        return dataclasses.replace(
            timing,
            heartbeat_interval_s=(
                float(interval) if isinstance(interval, int) else timing.heartbeat_interval_s
            ),
            full_snapshot_every=every if isinstance(every, int) else timing.full_snapshot_every,
        )

    def _write(self, version: int, values: Mapping[str, ConfigValue]) -> None:
        # The application's file first: a crash before twin.json is written leaves the version
        # unapplied, and the retained desired config applies it again on the next start.
        effective = with_defaults(values, self._kind)
        write_atomic(
            self._state_dir / APP_CONFIG_FILE,
            _json({"version": version, "values": effective}),
            mode=APP_CONFIG_MODE,
        )
        write_atomic(self._state_dir / APPLIED_FILE, _json({"version": version, "values": values}))

    def _apply_logging(self) -> None:
        level = self.values.get(LOG_LEVEL_KEY)
        if isinstance(level, str):
            logging.getLogger(AGENT_LOGGER).setLevel(level.upper())

    def _failed(self, version: int, error: str) -> ReportedConfig:
        log.warning("desired config %d not applied: %s", version, error)
        return self._report(version, ApplyStatus.FAILED, error)

    def _report(self, version: int, status: ApplyStatus, error: str = "") -> ReportedConfig:
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in self.effective.items()}
        return ReportedConfig(
            version=version, status=status, error=error, values=values, at=self._clock()
        )


def _json(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode()


def _load(path: Path) -> tuple[int, dict[str, ConfigValue]]:
    """The applied version and values; nothing applied when the file is missing or unreadable."""
    try:
        document = json.loads(path.read_bytes())
        version = document["version"]
        values = validate({k: v for k, v in document["values"].items() if k in KEYS})
    except FileNotFoundError:
        return 0, {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # The retained desired config puts it right on the next connect.
        log.warning("%s unreadable, taken as nothing applied: %s", path, exc)
        return 0, {}
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        log.warning("%s: version %r unreadable, taken as nothing applied", path, version)
        return 0, {}
    return version, values
