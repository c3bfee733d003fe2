"""``python -m edge.agent``: the lean way to run the agent, with the options of ``termfleet``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.agent import __main__ as entry

REPO = Path(__file__).resolve().parents[1]


def test_config_and_log_level_come_from_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(entry.CONFIG_ENV, raising=False)
    monkeypatch.delenv(entry.LOG_LEVEL_ENV, raising=False)

    args = entry.parse_args(["--config", "agent.toml", "--log-level", "warning"])

    assert (args.config, args.log_level) == (Path("agent.toml"), "warning")


def test_config_and_log_level_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(entry.CONFIG_ENV, "/etc/termfleet/agent.toml")
    monkeypatch.setenv(entry.LOG_LEVEL_ENV, "debug")

    args = entry.parse_args([])

    assert (args.config, args.log_level) == (Path("/etc/termfleet/agent.toml"), "debug")


def test_without_a_config_it_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(entry.CONFIG_ENV, raising=False)

    with pytest.raises(SystemExit) as exited:
        entry.parse_args([])

    assert exited.value.code == 2  # argparse's, like click's, for a usage error


def test_a_bad_config_is_reported_in_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_id = "kiosk-1"\nkind = "kiosk"\nheartbeat = 5\n')

    assert entry.main(["--config", str(config)]) == entry.EXIT_ERROR

    err = capsys.readouterr().err
    assert err.startswith("Error: ")
    assert "heartbeat" in err
    assert "Traceback" not in err


def test_it_loads_neither_click_nor_the_control_plane_nor_the_simulator() -> None:
    code = (
        "import sys, edge.agent.__main__; "
        "print(sorted(n for n in sys.modules if n == 'click' or n.startswith(('click.', "
        "'control_plane', 'edge.simulator'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )

    assert out.stdout.strip() == "[]"
