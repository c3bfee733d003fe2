"""Printing listings: an aligned table for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from wcwidth import wcswidth


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, as_json: bool) -> None:
    """Rows as a table aligned by display width (a Chinese character takes two columns)."""
    if as_json:
        click.echo(json.dumps(list(rows), ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("(none)")
        return
    lines = [
        [col.upper() for col in columns],
        *([cell(row.get(col)) for col in columns] for row in rows),
    ]
    widths = [max(_width(line[i]) for line in lines) for i in range(len(columns))]
    for line in lines:
        click.echo("  ".join(_pad(text, w) for text, w in zip(line, widths, strict=True)).rstrip())


def cell(value: object) -> str:
    """A value as a table cell: "-" for nothing."""
    return "-" if value is None or value == "" else str(value)


def _width(text: str) -> int:
    # wcswidth answers -1 for a control character; such a cell counts by characters.
    width = wcswidth(text)
    return width if width >= 0 else len(text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
