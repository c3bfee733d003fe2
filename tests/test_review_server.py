"""The control plane's 好差评 settings at start: a bad working-day calendar stops it clearly."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from control_plane.cli import cli


def test_a_calendar_file_that_does_not_parse_stops_the_server_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "cn-2027.toml"
    bad.write_text('year = 2027\n[[holiday]]\nname = "元旦"\noff = ["2027-13-01"]\n')
    result = CliRunner().invoke(
        cli,
        [
            "server",
            "run",
            "--database-url",
            f"sqlite://{tmp_path / 'db.sqlite3'}",
            "--calendar",
            str(bad),
        ],
    )
    assert result.exit_code == 1, result.output
    assert f"Error: working-day calendar: {bad}: source must name the notice" in result.output
    assert not (tmp_path / "db.sqlite3").exists()  # refused before anything was opened
