"""The files enrollment writes: the agent's TOML config and its broker password.

Both let whoever reads them speak for this terminal, so each is created readable by its owner only
(never world-readable, not even for a moment), written whole under a temporary name, synced, and
renamed into place: a power cut leaves no file or the whole file, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from edge.atomic_file import write_atomic

from .config import AgentConfig

PASSWORD_FILE_NAME = "broker-password"  # noqa: S105 - a file name, not a secret
PRIVATE_MODE = 0o600
# TOML basic strings must escape the quote, the backslash and control characters other than tab
# (TOML 1.0, "String"); tab is escaped too, so that every value stays on one visible line.
_TOML_ESCAPES: dict[int, str] = {
    **{code: f"\\u{code:04X}" for code in (*range(0x20), 0x7F)},
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\b"): "\\b",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\f"): "\\f",
    ord("\r"): "\\r",
}


class EnrollFileError(RuntimeError):
    """The enrollment's files cannot be written, or a config is there already."""


def check_not_enrolled(config_path: Path, *, force: bool) -> None:
    """Refuse to enroll over an existing config unless forced; raises EnrollFileError."""
    if force or not (config_path.exists() or config_path.is_symlink()):
        return
    msg = (
        f"{config_path} exists: the terminal looks enrolled already. Re-enrollment needs an "
        "administrator's `termfleet provision reenroll` first, then enroll again with --force."
    )
    raise EnrollFileError(msg)


def check_writable(config_path: Path) -> None:
    """Refuse before claiming when the config could not be written: claim codes are single-use."""
    directory = config_path.absolute().parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        msg = f"cannot write {config_path}: {directory} is not a directory this user may write"
        raise EnrollFileError(msg)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string; ValueError for text that is not valid Unicode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate: no UTF-8 file and no TOML \u escape can hold it.
        msg = f"{value!r} is not valid Unicode text"
        raise ValueError(msg) from exc
    return f'"{value.translate(_TOML_ESCAPES)}"'


def render_config(config: AgentConfig) -> str:
    """The TOML of what enrollment sets in ``config``; ValueError unless it loads back equal.

    The other settings stay unwritten, so they keep the defaults of the agent that reads them.
    """
    lines = [
        f"device_id = {toml_string(config.device_id)}",
        f"kind = {toml_string(config.kind.value)}",
        f"state_dir = {toml_string(config.state_dir)}",
    ]
    if config.content_keys:
        lines.append(f"content_keys = [{', '.join(toml_string(k) for k in config.content_keys)}]")
    broker = config.broker
    lines += [
        "",
        "[broker]",
        f"url = {toml_string(broker.url)}",
        f"username = {toml_string(broker.username)}",
        f"password_file = {toml_string(broker.password_file)}",
    ]
    if broker.ca_file:
        lines.append(f"ca_file = {toml_string(broker.ca_file)}")
    if config.initial_config:
        lines += ["", "[initial_config]"]
        lines += [f"{toml_string(k)} = {toml_string(v)}" for k, v in config.initial_config.items()]
    text = "\n".join([*lines, ""])
    try:
        loaded = msgspec.toml.decode(text, type=AgentConfig)
    except msgspec.ValidationError as exc:
        msg = f"not a valid agent config: {exc}"
        raise ValueError(msg) from None
    if loaded != config:
        msg = "the config would not load back as written (a setting enrollment does not set?)"
        raise ValueError(msg)
    return text


def write_enrollment(
    config_path: Path, config_text: str, password_file: Path, password: str
) -> None:
    """Write the password file, then the config: a config on disk means enrollment finished."""
    try:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(password_file, f"{password}\n".encode(), mode=PRIVATE_MODE)
        write_atomic(config_path, config_text.encode(), mode=PRIVATE_MODE)
    except OSError as exc:
        msg = f"cannot write {exc.filename or config_path}: {exc.strerror or exc}"
        raise EnrollFileError(msg) from exc
