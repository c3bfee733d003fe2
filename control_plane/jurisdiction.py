"""The jurisdiction tree: levels, 行政区划 codes and materialized paths. Pure.

A node's path lists the codes from the root down to it, each followed by ``/``:
``/44/4401/440117/``. A subtree is then every path that starts with its root's path, which a
database answers from an index as one range, ``subtree_range``. The range is compared byte by
byte (SQLite's BINARY; on PostgreSQL the column is ``COLLATE "C"``, see migration 0002).
"""

from __future__ import annotations

import re
from enum import StrEnum

SEPARATOR = "/"
CODE = re.compile(r"[0-9]{2,12}")  # fullmatch; \d would take any Unicode digit
# The separator's successor: every path below a prefix sorts before prefix[:-1] + this.
_AFTER_SEPARATOR = chr(ord(SEPARATOR) + 1)


class JurisdictionError(ValueError):
    """A code, level or path that does not fit the tree; the message says which and why."""


class Level(StrEnum):
    """Levels of the tree, from the top. Streets sit with towns, communities with villages."""

    PROVINCE = "province"  # 省
    CITY = "city"  # 市
    DISTRICT = "district"  # 区/县
    TOWN = "town"  # 镇/街
    VILLAGE = "village"  # 村/居

    @property
    def depth(self) -> int:
        return list(Level).index(self)


def parse_level(text: str) -> Level:
    try:
        return Level(text.strip().lower())
    except ValueError:
        known = ", ".join(level.value for level in Level)
        msg = f"{text!r} is not a level ({known})"
        raise JurisdictionError(msg) from None


def check_code(code: str) -> str:
    """A 行政区划 code: 2 to 12 digits (44, 4401, 440117, 440117001, 440117001001)."""
    if not CODE.fullmatch(code):
        msg = f"{code!r} is not a 行政区划 code (2 to 12 digits)"
        raise JurisdictionError(msg)
    return code


def check_child(parent: Level, child: Level) -> None:
    """A child sits below its parent; levels may be skipped (省直辖县: county under province)."""
    if child.depth <= parent.depth:
        msg = f"a {child} cannot be below a {parent}"
        raise JurisdictionError(msg)


def check_child_code(parent_code: str, code: str) -> None:
    """A child's 行政区划 code extends its parent's: 440117 → 440117001 → 440117001001.

    The national codes are hierarchical by construction (2 digits for the province, 2 for the
    city, 2 for the district, 3 for the town, 3 for the village), so a child that does not start
    with its parent's code is a typo or a node hung off the wrong parent. The length per level is
    not enforced: demo and test data use illustrative codes below the district.
    """
    if not (code.startswith(parent_code) and len(code) > len(parent_code)):
        msg = f"{code!r} does not extend its parent's code {parent_code!r}"
        raise JurisdictionError(msg)


def path_of(parent_path: str | None, code: str) -> str:
    """The path of the node ``code`` whose parent has ``parent_path`` (None for a root)."""
    return f"{parent_path or SEPARATOR}{code}{SEPARATOR}"


def subtree_range(path: str) -> tuple[str, str]:
    """``(low, high)``: the subtree of ``path`` (itself included) is ``low <= p < high``."""
    if not path.endswith(SEPARATOR):
        msg = f"{path!r} is not a node path"
        raise JurisdictionError(msg)
    return path, path[:-1] + _AFTER_SEPARATOR


def is_within(path: str, ancestor_path: str) -> bool:
    """Whether the node at ``path`` is ``ancestor_path`` or below it."""
    return path.startswith(ancestor_path)


def codes(path: str) -> list[str]:
    """The codes along ``path``, root first."""
    return [code for code in path.split(SEPARATOR) if code]
