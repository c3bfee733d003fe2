"""CLI tables: aligned by display width, so columns of Chinese text line up; JSON untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wcwidth import wcswidth

from control_plane.cli.output import cell, print_rows

ROWS: list[dict[str, Any]] = [
    {"code": "RS-0012", "name": "社会保障卡申领", "count": 1862},
    {"code": "GA-0003", "name": "居民身份证换领", "count": None},
    {"code": "X-1", "name": "ab", "count": ""},
]


def test_columns_line_up_by_display_width(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows(ROWS, ["code", "name", "count"], as_json=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CODE", "NAME", "COUNT"]
    # The third column starts at the same display column on every line.
    starts = [
        wcswidth(line[: line.rindex(word)])
        for line, word in zip(lines, ["COUNT", "1862", "-", "-"], strict=False)
    ]
    assert len(set(starts)) == 1, lines
    # 社会保障卡申领 is 7 characters but 14 columns wide: a character count would misalign it.
    assert starts[0] == len("RS-0012  ") + 14 + len("  ")


def test_nothing_prints_as_a_dash() -> None:
    assert cell(None) == "-"
    assert cell("") == "-"
    assert cell(0) == "0"


def test_a_control_character_counts_by_characters(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows([{"a": "x\x07y", "b": "z"}], ["a", "b"], as_json=False)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "x\x07y  z"


def test_json_keeps_the_values(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows(ROWS, ["code"], as_json=True)
    assert json.loads(capsys.readouterr().out) == ROWS


def test_no_rows(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows([], ["code"], as_json=False)
    assert capsys.readouterr().out == "(none)\n"
