"""The CLI's own config file: which control plane to talk to, and with which token.

``TERMFLEET_CONFIG`` names it; otherwise it is ``$XDG_CONFIG_HOME/termfleet/cli.toml``
(``~/.config/termfleet/cli.toml``), read only if it exists. Options and the environment win
over it (``options.server_url``, ``options.api_token``). Like the agent's config, it refuses
unknown keys by name, so a typo never falls back to a default silently, and a file holding a
token must be readable by its owner only (chmod 600)::

    server = "https://termfleet.example.gov.cn"
    token = "tf_..."
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import msgspec

CONFIG_ENV = "TERMFLEET_CONFIG"


class CliConfigError(ValueError):
    """The CLI's config file is unreadable, malformed or unsafe."""


class CliConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    server: str | None = None
    """Control-plane base URL, as ``--server``."""
    token: str | None = None
    """API token, as ``--token``."""


def config_path(environ: Mapping[str, str]) -> tuple[Path, bool]:
    """The config file's path, and whether it was named (a named file must exist)."""
    if named := environ.get(CONFIG_ENV):
        return Path(named).expanduser(), True
    base = environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "termfleet" / "cli.toml", False


def load(environ: Mapping[str, str] = os.environ) -> CliConfig:
    """The config file's settings; none when there is no file and none was named."""
    path, named = config_path(environ)
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        if named:
            msg = f"{CONFIG_ENV} names {path}, which does not exist"
            raise CliConfigError(msg) from None
        return CliConfig()
    except OSError as exc:
        msg = f"cannot read the CLI config {path}: {exc.strerror}"
        raise CliConfigError(msg) from exc
    try:
        config = msgspec.toml.decode(data, type=CliConfig)
    except msgspec.DecodeError as exc:
        msg = f"{path}: {exc} (it takes server and token)"
        raise CliConfigError(msg) from None
    if config.token and mode & (stat.S_IRWXG | stat.S_IRWXO):
        msg = (
            f"{path} holds a token, so it must be readable by its owner only (chmod 600);"
            f" it is {mode & 0o777:o}"
        )
        raise CliConfigError(msg)
    return config
