"""How statistics are kept: the days' time zone and how long records and roll-ups stay. Pure.

Each setting has an environment variable and a default (docs/statistics.md lists them):

| variable | default | |
|---|---|---|
| ``TERMFLEET_STATS_TIMEZONE`` | ``Asia/Shanghai`` | the zone of the statistics' days and months |
| ``TERMFLEET_RETAIN_RECORDS_DAYS`` | 90 | raw records, once rolled up |
| ``TERMFLEET_RETAIN_HOURLY_DAYS`` | 366 | hourly roll-ups |
| ``TERMFLEET_RETAIN_DAILY_DAYS`` | 1096 | daily roll-ups, which the statistics read: three years |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.schedule import DEFAULT_ZONE

ZONE_ENV = "TERMFLEET_STATS_TIMEZONE"
RECORDS_DAYS_ENV = "TERMFLEET_RETAIN_RECORDS_DAYS"
HOURLY_DAYS_ENV = "TERMFLEET_RETAIN_HOURLY_DAYS"
DAILY_DAYS_ENV = "TERMFLEET_RETAIN_DAILY_DAYS"
MAX_RETENTION_DAYS = 36_600
"""A century: beyond it a setting is a typo, not a policy."""


class SettingsError(ValueError):
    """A setting that cannot be used; the message names its variable."""


@dataclass(frozen=True)
class RollupSettings:
    """The statistics' time zone and retention, in days."""

    zone: ZoneInfo = DEFAULT_ZONE
    records_days: int = 90
    hourly_days: int = 366
    daily_days: int = 1096

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RollupSettings:
        """The settings of the environment, each variable checked; defaults for those unset."""
        env = os.environ if env is None else env
        default = cls()
        return cls(
            zone=_zone(env.get(ZONE_ENV)) if env.get(ZONE_ENV) else default.zone,
            records_days=_days(env, RECORDS_DAYS_ENV, default.records_days),
            hourly_days=_days(env, HOURLY_DAYS_ENV, default.hourly_days),
            daily_days=_days(env, DAILY_DAYS_ENV, default.daily_days),
        )


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"{ZONE_ENV}={name!r} is not a time zone (Asia/Shanghai, UTC, …)"
        raise SettingsError(msg) from None


def _days(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_RETENTION_DAYS:
        msg = f"{name}={raw!r} is not a number of days from 1 to {MAX_RETENTION_DAYS}"
        raise SettingsError(msg)
    return days
