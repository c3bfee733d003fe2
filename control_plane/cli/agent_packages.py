"""``termfleet agent packages``: the packages a terminal has installed, read from its disk.

For a technician on site: it reads the agent's config and its content store, without the
control plane or the broker. The agent need not be stopped: the store is only read.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import options
from .output import print_rows

PACKAGE_COLUMNS = ("name", "installed", "previous", "downloaded")


@click.command("packages")
@options.agent_config
@options.json_output
def packages(config_path: Path, as_json: bool) -> None:
    """List the packages installed on this terminal: content, catalogs, firmware.

    Each with its installed version, the previous version kept for a rollback, and the
    versions downloaded and waiting to be installed (state_dir/downloads).
    """
    from edge.agent import package_work
    from edge.agent.config import ConfigError, load_config
    from edge.agent.package_setup import DOWNLOADS_DIR, content_root
    from edge.content.install import ContentStore

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    root = content_root(config)
    store = ContentStore(root)
    waiting = _downloaded(Path(config.state_dir) / DOWNLOADS_DIR)
    names = sorted(set(package_work.installed_names(root)) | set(waiting))
    rows = [
        {
            "name": name,
            "installed": store.installed_version(name),
            "previous": package_work.previous_version(root, name),
            "downloaded": waiting.get(name, []) if as_json else _versions(waiting.get(name)),
        }
        for name in names
    ]
    print_rows(rows, PACKAGE_COLUMNS, as_json=as_json)


def _downloaded(downloads: Path) -> dict[str, list[int]]:
    """Versions whose whole package file is in ``downloads`` (``<name>-<version>.tfpkg``)."""
    found: dict[str, list[int]] = {}
    if not downloads.is_dir():
        return found
    for entry in sorted(downloads.glob("*.tfpkg")):
        name, _, version = entry.stem.rpartition("-")
        if name and version.isdigit():
            found.setdefault(name, []).append(int(version))
    return found


def _versions(versions: list[int] | None) -> str | None:
    return ", ".join(str(v) for v in sorted(versions)) if versions else None
