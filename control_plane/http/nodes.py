"""/api/v1/nodes: the jurisdiction tree, as far as the token's scope reaches (docs/api-sites.md)."""

from __future__ import annotations

from aiohttp import web

from control_plane import admin_bodies, tree_admin
from control_plane.auth import Permission

from . import request_schemas, schemas
from .admin import (
    Handler,
    by_method,
    created,
    cursor_after,
    json_object,
    no_content,
    only_parameters,
    page_response,
    refusals,
)
from .auth import PRINCIPAL, ApiRoute
from .params import limit_param

NODES = "/api/v1/nodes"
NODE = "/api/v1/nodes/{code}"
ROUTES = (
    ApiRoute(
        "GET",
        NODES,
        Permission.SITES_READ,
        "the children of `?parent=CODE`, or the top of the token's tree (the roots, or its"
        " scope), with their counts of children and sites",
        answer=schemas.NodePage,
        query=request_schemas.NodeListParameters,
    ),
    ApiRoute(
        "POST",
        NODES,
        Permission.SITES_WRITE,
        "create a node below a parent in scope",
        answer=schemas.Node,
        status=201,
        body=request_schemas.NewNode,
        conflict="a node with the code exists",
    ),
    ApiRoute(
        "GET",
        NODE,
        Permission.SITES_READ,
        "a node with its ancestors, and the counts of its sites and its subtree's devices",
        answer=schemas.NodeDetail,
    ),
    ApiRoute(
        "PATCH",
        NODE,
        Permission.SITES_WRITE,
        "rename a node",
        answer=schemas.Node,
        body=request_schemas.NodeRename,
    ),
    ApiRoute(
        "DELETE",
        NODE,
        Permission.SITES_WRITE,
        "delete a node without children, sites or tokens (409 otherwise)",
        status=204,
        conflict="the node has children, sites or tokens",
    ),
)


@refusals
async def list_nodes(request: web.Request) -> web.Response:
    only_parameters(request, {"parent"})
    page = await tree_admin.list_nodes(
        request[PRINCIPAL],
        request.query.get("parent"),
        after=cursor_after(request, str),
        limit=limit_param(request),
    )
    return page_response(page)


@refusals
async def create_node(request: web.Request) -> web.Response:
    spec = admin_bodies.node(await json_object(request))
    return created(await tree_admin.create_node(request[PRINCIPAL], spec))


@refusals
async def show_node(request: web.Request) -> web.Response:
    view = await tree_admin.node_detail(request[PRINCIPAL], request.match_info["code"])
    return web.json_response(view)


@refusals
async def rename_node(request: web.Request) -> web.Response:
    name = admin_bodies.node_name(await json_object(request))
    view = await tree_admin.rename_node(request[PRINCIPAL], request.match_info["code"], name)
    return web.json_response(view)


@refusals
async def delete_node(request: web.Request) -> web.Response:
    await tree_admin.delete_node(request[PRINCIPAL], request.match_info["code"])
    return no_content()


def handlers() -> dict[str, Handler]:
    return {
        NODES: by_method({"GET": list_nodes, "POST": create_node}),
        NODE: by_method({"GET": show_node, "PATCH": rename_node, "DELETE": delete_node}),
    }
