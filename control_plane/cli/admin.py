"""What the commands that change the tree, sites, windows, departments and staff share.

They are thin clients of the administration API (docs/api-sites.md), called as ``devices
label/move/retire`` are (``devices_calls``). Each prints the object the API answered: a table
(or a site's fields) on stdout and what was done on stderr, or with ``--json`` the API's JSON
alone. Each one's ``--help`` ends with the permission it needs, read off the role table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import click

from control_plane.auth import ROLE_PERMISSIONS, Permission, Role
from control_plane.jurisdiction import Level

from .output import print_rows

API = "/api/v1"
WHOLE_TREE = "a token for the whole tree (no scope)"
LEVELS = tuple(level.value for level in Level)


def needs(permission: Permission, also: str = "", *, whole_tree: bool = False) -> str:
    """The ``--help`` epilog naming the permission a command needs and the roles that have it."""
    roles = ", ".join(role for role in Role if permission in ROLE_PERMISSIONS[role])
    text = f"Needs the {permission} permission (role: {roles})"
    if whole_tree:
        return f"{text} and {WHOLE_TREE}."
    return f"{text}, within the token's scope{f'; {also}' if also else ''}."


def api_path(*parts: str) -> str:
    """``/api/v1/PART/…``, each part quoted whole: a code never reaches into another route."""
    return "/".join((API, *(quote(part, safe="") for part in parts)))


def print_object(
    answer: Mapping[str, Any],
    columns: Sequence[str],
    *,
    as_json: bool,
    row: Mapping[str, Any] | None = None,
) -> None:
    """The API's object: JSON as answered, or one table row (``row``: its cells for people)."""
    if as_json:
        print_json(answer)
        return
    print_rows([dict(row if row is not None else answer)], columns, as_json=False)


def print_json(answer: object) -> None:
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))


def announce(done: str, *, as_json: bool) -> None:
    """What a command did, for people: on stderr, so that stdout stays the object."""
    if not as_json:
        click.echo(done, err=True)


def deleted(what: str) -> None:
    """A delete answers nothing (204): say what is gone."""
    click.echo(f"deleted {what}")
