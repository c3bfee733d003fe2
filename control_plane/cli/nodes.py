"""``termfleet nodes``: add, rename and delete nodes of the jurisdiction tree, through the API.

A group of its own, as ``/api/v1/nodes`` is a resource of its own; ``termfleet sites tree``
reads the tree. A node's code, level and parent never change through the API: restructuring
the tree is ``termfleet sites import``'s job (docs/site-import.md).
"""

from __future__ import annotations

from typing import Any

import click

from control_plane.auth import Permission

from . import options
from .admin import LEVELS, WHOLE_TREE, announce, api_path, deleted, needs, print_object
from .devices_calls import api_options, call

COLUMNS = ["code", "name", "level", "parent"]


@click.group()
def nodes() -> None:
    """Add, rename and delete nodes of the jurisdiction tree (行政区划); `sites tree` reads it."""


def _print_node(node: dict[str, Any], done: str, *, as_json: bool) -> None:
    print_object(node, COLUMNS, as_json=as_json)
    announce(f"{done} node {node['code']} ({' / '.join(node['path'])})", as_json=as_json)


@nodes.command("add", epilog=needs(Permission.SITES_WRITE, f"a new root needs {WHOLE_TREE}"))
@click.argument("code")
@click.option("--name", required=True, help="Its name, as people know it (温泉镇).")
@click.option("--level", type=click.Choice(LEVELS), required=True)
@click.option("--parent", metavar="CODE", help="The node it hangs off (a code it extends).")
@click.option("--root", is_flag=True, help="A new root of the tree, instead of a --parent.")
@api_options
def add(  # noqa: PLR0913 - one parameter per argument and option
    code: str,
    name: str,
    level: str,
    parent: str | None,
    root: bool,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Add a node CODE (a 行政区划 code extending its parent's) below --parent, or as a --root."""
    if root == (parent is not None):
        msg = "give the node's --parent, or --root for a new root (one of them)"
        raise click.UsageError(msg)
    body = {"code": code, "name": name, "level": level, "parent": parent}
    node = call(server, token, "POST", api_path("nodes"), body=body)
    _print_node(node, "added", as_json=as_json)


@nodes.command("rename", epilog=needs(Permission.SITES_WRITE))
@click.argument("code")
@click.argument("name")
@api_options
def rename(code: str, name: str, server: str, token: str | None, as_json: bool) -> None:
    """Rename the node CODE to NAME; its code, level and parent stay."""
    node = call(server, token, "PATCH", api_path("nodes", code), body={"name": name})
    _print_node(node, "renamed", as_json=as_json)


@nodes.command("rm", epilog=needs(Permission.SITES_WRITE))
@click.argument("code")
@click.confirmation_option(prompt="Deleting is final. Delete this node?")
@options.server_url
@options.api_token
def rm(code: str, server: str, token: str | None) -> None:
    """Delete a node with no children, sites or tokens (asks first; --yes does not)."""
    call(server, token, "DELETE", api_path("nodes", code))
    deleted(f"node {code}")
