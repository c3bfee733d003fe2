"""The OpenAPI 3.1 document of the REST API, made from the routes' own declarations.

Nothing here is written twice: paths, methods, permissions and summaries are ``API_ROUTES``'; a
route's parameters are the fields of its query struct, its body and answer are structs, all
turned into JSON Schema by msgspec, whose output is the dialect OpenAPI 3.1 uses. Served at
``/api/v1/openapi.json`` without a token (like /healthz): the routes are no secret, the data is.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any

import msgspec
from aiohttp import web

from control_plane.auth import PERMISSION_MEANING
from edge.content.manifest import NAME_PATTERN
from edge.protocol.common import ID_PATTERN

from . import case_schemas, request_schemas, review_schemas, schemas, workorder_schemas
from .auth import ApiRoute

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{name}"
PATH_PARAMETER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
Json = dict[str, Any]

# Which object a path parameter names, by the collection it follows: /nodes/{code} is a 行政区划
# code, /sites/{code} a site's.
PATH_PARAMETERS: Mapping[tuple[str, str], Any] = {
    ("devices", "device_id"): request_schemas.DeviceId,
    ("nodes", "code"): request_schemas.NodeCode,
    ("sites", "code"): request_schemas.SiteCode,
    ("windows", "number"): request_schemas.WindowNumber,
    ("staff", "number"): request_schemas.StaffNumber,
    ("tokens", "id"): request_schemas.TokenId,
    ("claims", "id"): request_schemas.ClaimId,
    ("packages", "sha256"): Annotated[
        str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$", description="a package file's sha256")
    ],
    ("rollouts", "id"): Annotated[
        str, msgspec.Meta(pattern=rf"^{ID_PATTERN}$", description="a rollout's id")
    ],
    ("layers", "layer_id"): Annotated[
        str, msgspec.Meta(pattern=rf"^{ID_PATTERN}$", description="a config layer's id")
    ],
    ("catalogs", "name"): Annotated[
        str, msgspec.Meta(pattern=rf"^{NAME_PATTERN}$", description="a catalog's name")
    ],
    ("{name}", "version"): Annotated[  # /catalogs/{name}/{version}
        int, msgspec.Meta(ge=1, le=2**63 - 1, description="a version of the catalog")
    ],
    ("reviews", "case_number"): review_schemas.CaseNumber,
    ("review-policies", "node_code"): request_schemas.NodeCode,
    ("cases", "case_number"): case_schemas.CaseNumber,
    ("workorders", "id"): workorder_schemas.WorkOrderId,
}

ERRORS: Mapping[int, str] = {
    400: "a parameter or field is refused; `details` names it",
    401: "no token, or one that is unknown, expired or revoked",
    403: "the token's role lacks the permission, or the object is outside its scope",
    404: "no such object in the token's scope (one beyond it is not told apart)",
}
TOO_LARGE = "the body is larger than the server takes"


@dataclass(frozen=True)
class FileBody:
    """A route's body that is a file's bytes, not JSON (``ApiRoute.body``), and its answers.

    ``refused``: when the route answers 422, the file read but not accepted (``details.reason``
    says why); ``unchanged``: when it answers 200 instead of its status, the file was there.
    """

    media_type: str
    refused: str
    unchanged: str


@dataclass(frozen=True)
class CheckedBody:
    """A JSON body (``shape``) whose well-formed values the route may refuse with a 422.

    ``refused``: when it does; ``details.reason`` says why.
    """

    shape: Any
    refused: str


def _shape(body: Any) -> Any:  # noqa: ANN401 - a struct, or any type msgspec describes
    return body.shape if isinstance(body, CheckedBody) else body


DESCRIPTION = """\
The control plane of termfleet: the terminals, the jurisdiction tree (行政区划) with its sites and
windows, staff, API tokens, the audit log and the statistics of handled cases and 好差评 reviews.

Every route needs a bearer token (`Authorization: Bearer tf_…`, made by `termfleet tokens
create`); each token has a role and a scope, a subtree of the jurisdiction tree, and sees only
what lies in it. Errors are `{"error": {"code", "message", "details"}}` with the status that says
what went wrong. Listings are pages: pass the answer's `next_cursor` as `cursor`."""


def document(routes: Iterable[ApiRoute]) -> Json:
    """The OpenAPI document of ``routes``."""
    routes = tuple(routes)
    shapes: set[Any] = {schemas.Error}
    shapes |= {route.answer for route in routes if route.answer is not None}
    bodies = [route.body for route in routes if route.body is not None]
    bodies = [_shape(body) for body in bodies if not isinstance(body, FileBody)]
    queries = {route.query for route in routes if route.query is not None}
    types = [*shapes, *bodies, *queries]
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    # A tuple field's default comes as a Python tuple; the document is JSON, where it is a list.
    components = msgspec.json.decode(msgspec.json.encode(components))
    schema_of = dict(zip(map(_key, types), refs, strict=True))
    for query in queries:  # listed parameter by parameter, not as an object of their own
        del components[query.__name__]
    for component in components.values():
        if "description" in component:  # docstrings, as written in the source
            component["description"] = inspect.cleandoc(component["description"])
    paths: dict[str, Json] = {}
    for route in routes:
        operation = _operation(route, schema_of, _query_fields(route, components))
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "termfleet control plane",
            "version": _version(),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _key(shape: Any) -> str:  # noqa: ANN401 - a struct, or any type msgspec describes
    return repr(shape)


def _version() -> str:
    try:
        return metadata.version("termfleet")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def _query_fields(route: ApiRoute, components: Json) -> list[Json]:
    """The route's query parameters: one per field of its query struct."""
    if route.query is None:
        return []
    _, own = msgspec.json.schema_components([route.query], ref_template=REF)
    properties = own[route.query.__name__].get("properties", {})
    parameters = []
    for field in msgspec.structs.fields(route.query):
        schema = _present(properties[field.encode_name])
        parameter: Json = {"name": field.encode_name, "in": "query", "schema": schema}
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        if field.required:
            parameter["required"] = True
        parameters.append(parameter)
    for name, component in own.items():  # the enums and structs the parameters refer to
        if name != route.query.__name__:
            components.setdefault(name, component)
    return parameters


def _present(schema: Json) -> Json:
    """A query parameter's schema when it is given: absent is how a query says None."""
    schema = {key: value for key, value in schema.items() if key != "default" or value is not None}
    choices = [choice for choice in schema.pop("anyOf", ()) if choice != {"type": "null"}]
    if len(choices) == 1:
        schema = {**choices[0], **schema}
    elif choices:
        schema["anyOf"] = choices
    return schema


def _operation(route: ApiRoute, schema_of: Mapping[str, Json], query: list[Json]) -> Json:
    collection = route.path.removeprefix("/api/v1/").split("/")[0]
    permission = route.permission
    operation: Json = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "description": f"Needs `{permission}`: {PERMISSION_MEANING[permission]}.",
        "tags": [collection],
        "x-permission": permission.value,
        "parameters": [*_path_parameters(route.path), *query],
        "responses": dict(_responses(route, schema_of)),
    }
    if isinstance(route.body, FileBody):
        binary = {"schema": {"type": "string", "format": "binary"}}
        operation["requestBody"] = {"required": True, "content": {route.body.media_type: binary}}
    elif route.body is not None:
        shape = _shape(route.body)
        operation["requestBody"] = {
            "required": route.method != "POST" or not _all_optional(shape),
            "content": {"application/json": {"schema": schema_of[_key(shape)]}},
        }
    if not operation["parameters"]:
        del operation["parameters"]
    return operation


def _all_optional(body: Any) -> bool:  # noqa: ANN401 - a struct, or any type msgspec describes
    fields = msgspec.structs.fields(body) if isinstance(body, type) else ()
    return all(not field.required for field in fields)


def _operation_id(route: ApiRoute) -> str:
    words = [w for w in PATH_PARAMETER.sub(r"by_\1", route.path).split("/")[3:] if w]
    return "_".join([route.method.lower(), *words]).replace("-", "_")


def _path_parameters(path: str) -> Iterator[Json]:
    segments = path.split("/")
    for index, segment in enumerate(segments):
        found = PATH_PARAMETER.fullmatch(segment)
        if found is None:
            continue
        name = found.group(1)
        shape = PATH_PARAMETERS[segments[index - 1], name]
        schema = msgspec.json.schema(shape)
        parameter: Json = {"name": name, "in": "path", "required": True, "schema": schema}
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        yield parameter


def _responses(route: ApiRoute, schema_of: Mapping[str, Json]) -> Iterator[tuple[str, Json]]:
    if route.answer is None:
        yield str(route.status), {"description": "done; no body"}
    else:
        content = {"application/json": {"schema": schema_of[_key(route.answer)]}}
        yield str(route.status), {"description": route.summary, "content": content}
    error = {"application/json": {"schema": schema_of[_key(schemas.Error)]}}
    for status, meaning in ERRORS.items():
        yield str(status), {"description": meaning, "content": error}
    if route.conflict is not None:
        yield "409", {"description": route.conflict, "content": error}
    if route.body is not None:
        yield "413", {"description": TOO_LARGE, "content": error}
    if route.unavailable is not None:
        yield "503", {"description": route.unavailable, "content": error}
    if route.timeout is not None:
        yield "504", {"description": route.timeout, "content": error}
    if isinstance(route.body, FileBody | CheckedBody):
        yield "422", {"description": route.body.refused, "content": error}
    if isinstance(route.body, FileBody) and route.answer is not None:
        content = {"application/json": {"schema": schema_of[_key(route.answer)]}}
        yield "200", {"description": route.body.unchanged, "content": content}


def handler(routes: Iterable[ApiRoute]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler answering with the document of ``routes``, made once."""
    body = msgspec.json.encode(document(routes))

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return serve
