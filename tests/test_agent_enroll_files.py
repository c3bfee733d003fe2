"""The files enrollment writes: TOML that reads back whatever it holds, private from the start."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.agent.config import AgentConfig, BrokerConfig, load_config
from edge.agent.enroll_files import (
    EnrollFileError,
    check_not_enrolled,
    check_writable,
    render_config,
    toml_string,
    write_enrollment,
)
from edge.protocol import DeviceKind

HOSTILE = [
    "",
    'a "quoted" value',
    "back\\slash\\",
    "new\nline\r\n",
    "tab\tand\x00nul\x1f\x7fdel",
    "政务服务一体机 ü é 🙂",
    '"""',
    "'''",
    "\\u0041 is not A",
    "key = value\n[table]",
    "\u2028\u2029\u0085",
]


def config(text: str, keys: list[str], settings: dict[str, str]) -> AgentConfig:
    return AgentConfig(
        device_id="kiosk-1",
        kind=DeviceKind.BOOTH,
        state_dir=text,
        broker=BrokerConfig(url=text, username=text, password_file=text, ca_file=text),
        content_keys=tuple(keys),
        initial_config=settings,
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_string_reads_back_unchanged(text: str) -> None:
    assert msgspec.toml.decode(f"v = {toml_string(text)}") == {"v": text}
    assert msgspec.toml.decode(f"{toml_string(text)} = 1") == {text: 1}


@given(
    st.text(),
    st.lists(st.text(), max_size=3),
    st.dictionaries(st.text(), st.text(), max_size=4),
)
def test_any_config_reads_back_as_written(
    text: str, keys: list[str], settings: dict[str, str]
) -> None:
    written = config(text, keys, settings)

    rendered = render_config(written)

    # Decoded here on its own, not only by render_config's own check.
    assert msgspec.toml.decode(rendered, type=AgentConfig) == written


def test_the_rendered_config_is_plain_to_read() -> None:
    rendered = render_config(config("/var/lib/x", ["k1"], {"a b": "1"}))

    assert rendered.splitlines() == [
        'device_id = "kiosk-1"',
        'kind = "booth"',
        'state_dir = "/var/lib/x"',
        'content_keys = ["k1"]',
        "",
        "[broker]",
        'url = "/var/lib/x"',
        'username = "/var/lib/x"',
        'password_file = "/var/lib/x"',
        'ca_file = "/var/lib/x"',
        "",
        "[initial_config]",
        '"a b" = "1"',
    ]


def test_text_no_utf8_file_can_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="not valid Unicode"):
        toml_string("lone \ud800 surrogate")


def test_a_device_id_the_agent_would_refuse_is_refused() -> None:
    bad = msgspec.structs.replace(config("x", [], {}), device_id="../../etc")

    with pytest.raises(ValueError, match="not a valid agent config"):
        render_config(bad)


@pytest.mark.usefixtures("open_umask")
def test_files_are_private_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    config_path = tmp_path / "etc" / "agent.toml"
    password_file = tmp_path / "etc" / "broker-password"

    write_enrollment(config_path, render_config(config("s", [], {})), password_file, "pw")

    assert sorted(p.name for p in config_path.parent.iterdir()) == ["agent.toml", "broker-password"]
    for path in (config_path, password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert password_file.read_text() == "pw\n"


def test_a_written_config_loads_with_the_agent_loader(tmp_path: Path) -> None:
    config_path = tmp_path / "agent.toml"
    written = msgspec.structs.replace(
        config("", ["k"], {"x": "y"}),
        state_dir=str(tmp_path / "state"),
        broker=BrokerConfig(url="mqtt://h:1", username="u", password_file=str(tmp_path / "pw")),
    )

    write_enrollment(config_path, render_config(written), tmp_path / "pw", "secret")

    assert load_config(config_path) == written


def test_an_existing_config_or_a_dangling_link_counts_as_enrolled(tmp_path: Path) -> None:
    config_path = tmp_path / "agent.toml"
    check_not_enrolled(config_path, force=False)
    config_path.symlink_to(tmp_path / "nowhere")

    with pytest.raises(EnrollFileError, match="looks enrolled already"):
        check_not_enrolled(config_path, force=False)
    check_not_enrolled(config_path, force=True)


def test_a_missing_directory_that_can_be_made_is_writable(tmp_path: Path) -> None:
    check_writable(tmp_path / "a" / "b" / "agent.toml")
    (tmp_path / "file").write_text("")

    with pytest.raises(EnrollFileError, match="not a directory this user may write"):
        check_writable(tmp_path / "file" / "b" / "agent.toml")
