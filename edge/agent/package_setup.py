"""From the agent's config to its ``PackageManager``: keys, directories, the idle rule."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edge.content.signing import ContentKeyError, trusted_keys

from .citizen_activity import CitizenActivity
from .config import AgentConfig, ConfigError
from .package_target import FirmwareFlasher
from .package_work import FetchSettings
from .packages import PackageManager

log = logging.getLogger(__name__)

CONTENT_DIR = "content"
"""The content store's default place under state_dir (``[content] dir`` moves it)."""
DOWNLOADS_DIR = "downloads"
"""Package files on their way, under state_dir: ``<name>-<version>.tfpkg`` and ``.part``."""


def content_root(config: AgentConfig) -> Path:
    """Where the agent's content store lives."""
    return Path(config.content.dir or Path(config.state_dir) / CONTENT_DIR)


def build_package_manager(
    config: AgentConfig, flasher: FirmwareFlasher | None = None
) -> PackageManager:
    """The manager the config describes; ConfigError for a content key that is no key.

    Without any content key the agent verifies nothing, so it installs nothing: every target is
    reported ``failed`` with reason ``no_keys`` (the rollout sees why at once). Without a
    ``flasher`` (an agent without peripherals) every firmware target is ``incompatible``.
    """
    try:
        keys = trusted_keys(config.content_keys)
    except ContentKeyError as exc:
        msg = f"content_keys: {exc}"
        raise ConfigError(msg) from None
    if not keys:
        log.warning("no content_keys in the config: package targets will fail with no_keys")
    activity = CitizenActivity(time.monotonic, idle_after_s=config.content.idle_after_s)
    ca_file = config.content.ca_file or config.broker.ca_file or None
    return PackageManager(
        content_root(config),
        Path(config.state_dir) / DOWNLOADS_DIR,
        keys,
        activity,
        fetch=FetchSettings(ca_file=ca_file),
        flasher=flasher,
    )
