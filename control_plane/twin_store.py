"""The device twin's layers in the database: checked, written with their audit entry, read back.

A layer arrives as ``LayerInput`` (the API's body, the CLI's options), is checked by the pure
core (``control_plane.twin.Layer``: id, priority and every value against ``edge.config_keys``)
and by the asker's scope, and is written in one transaction with the revision counter's raise
and its audit entry. Which devices then need a new desired config is ``twin_devices``' part.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from . import audit
from .admin_errors import InvalidFieldError, NotFoundError
from .auth import PermissionDeniedError, Principal, Refusal
from .db.models import Device, JurisdictionNode, Site
from .db.twin_models import ConfigLayer, ConfigRevision
from .jurisdiction import CODE as NODE_CODE
from .twin import DeviceScope, GlobalScope, LabelScope, Layer, LayerError, NodeScope, Scope
from .twin.layers import LAYER_ID, TwinErrorReason

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 255
REVISION_ROW = 1


class ScopeKind(enum.StrEnum):
    GLOBAL = "global"
    NODE = "node"
    LABELS = "labels"
    DEVICE = "device"


class LayerRefusedError(InvalidFieldError):
    """A layer the pure core refused; ``problems`` names each refused config key."""

    def __init__(
        self, field_name: str | None, problem: str, problems: tuple[Any, ...] = ()
    ) -> None:
        super().__init__(field_name, problem)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LayerInput:
    """A layer as asked for; ``scope``: ``{"kind": …}`` with its node, labels or device."""

    id: str
    scope: object
    values: object
    priority: object = 0
    description: object = ""
    """All but ``id`` are as they came (JSON): ``put_layer`` checks them."""


@dataclass(frozen=True, slots=True)
class StoredLayer:
    """A layer row with its pure form; ``layer`` is None when the layer reaches nobody.

    That is a node scope whose node is gone, and a row the pure core refuses as it stands now:
    its node moved under a parent whose code it does not extend, or a value the config keys of
    this version refuse. Either is shown as stored until an administrator replaces or deletes it.
    """

    row: ConfigLayer
    layer: Layer | None
    node_path: str | None = None


@dataclass(frozen=True, slots=True)
class LayerChange:
    """A layer written or deleted: the old and new pure forms, to find the devices it moves."""

    before: Layer | None
    after: Layer | None
    stored: StoredLayer | None
    created: bool = False


# --- reading ----------------------------------------------------------------------------------


async def load_layers(conn: BaseDBAsyncClient | None = None) -> list[StoredLayer]:
    """Every layer, by id, with node scopes resolved to the node's path as the tree has it now."""
    rows = await ConfigLayer.all().using_db(conn).order_by("id")
    codes = {str(row.scope.get("node")) for row in rows if row.scope_kind == ScopeKind.NODE}
    paths = dict(
        await JurisdictionNode.filter(code__in=codes).using_db(conn).values_list("code", "path")
    )
    return [_stored(row, paths) for row in rows]


def _stored(row: ConfigLayer, paths: Mapping[str, str]) -> StoredLayer:
    path = paths.get(str(row.scope.get("node"))) if row.scope_kind == ScopeKind.NODE else None
    if row.scope_kind == ScopeKind.NODE and path is None:
        return StoredLayer(row, None)  # its node was deleted: it reaches nobody
    try:
        scope = _scope(ScopeKind(row.scope_kind), row.scope, path)
        layer = Layer(row.id, scope, row.values, row.priority, row.revision)
    except LayerError as exc:
        # Stored when it was valid; the tree or the config keys changed under it since. Refusing
        # it here would stop every twin pass: it reaches nobody until it is replaced or deleted.
        log.warning(
            "config layer %s reaches no device until it is replaced or deleted: %s", row.id, exc
        )
        return StoredLayer(row, None, path)
    return StoredLayer(row, layer, path)


def _scope(kind: ScopeKind, scope: Mapping[str, Any], node_path: str | None) -> Scope:
    match kind:
        case ScopeKind.GLOBAL:
            return GlobalScope()
        case ScopeKind.NODE:
            return NodeScope.from_path(node_path or "")
        case ScopeKind.LABELS:
            return LabelScope.of(scope["labels"])
        case ScopeKind.DEVICE:
            return DeviceScope(scope["device"])


async def get_layer(layer_id: str) -> StoredLayer:
    row = await ConfigLayer.get_or_none(id=layer_id) if LAYER_ID.fullmatch(layer_id) else None
    if row is None:
        msg = f"no config layer {layer_id!r}"
        raise NotFoundError(msg)
    return (await _with_paths([row]))[0]


async def _with_paths(rows: list[ConfigLayer]) -> list[StoredLayer]:
    codes = {str(row.scope.get("node")) for row in rows if row.scope_kind == ScopeKind.NODE}
    paths = dict(await JurisdictionNode.filter(code__in=codes).values_list("code", "path"))
    return [_stored(row, paths) for row in rows]


def layer_view(stored: StoredLayer) -> dict[str, Any]:
    row = stored.row
    return {
        "id": row.id,
        "scope": {"kind": row.scope_kind, **row.scope},
        "node_path": stored.node_path,
        "priority": row.priority,
        "values": dict(row.values),
        "description": row.description,
        "revision": row.revision,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "updated_by": row.updated_by,
    }


# --- writing ----------------------------------------------------------------------------------


async def put_layer(principal: Principal | None, spec: LayerInput, now: datetime) -> LayerChange:
    """Create or replace the layer ``spec.id``; refusals name the field or config key at fault.

    ``principal`` None is someone at the database, whom no scope limits.
    """
    if not isinstance(spec.description, str) or len(spec.description) > MAX_DESCRIPTION:
        msg = f"text of up to {MAX_DESCRIPTION} characters"
        raise InvalidFieldError(field="description", problem=msg)
    kind, scope_doc, node_path = await _checked_scope(principal, spec.scope)
    layer = _checked_layer(spec, kind, scope_doc, node_path)
    actor = principal.actor if principal else audit.local_actor()
    async with in_transaction() as conn:
        old = await ConfigLayer.select_for_update().using_db(conn).get_or_none(id=spec.id)
        before = (await load_one(old, conn)) if old else None
        if before is not None and principal is not None:
            await _require_scope(principal, before)
        revision = await _next_revision(conn)
        values = {key: _jsonable(value) for key, value in layer.values.items()}
        fields = {
            "scope_kind": kind.value,
            "scope": scope_doc,
            "priority": layer.priority,
            "values": values,
            "description": spec.description,
            "revision": revision,
            "updated_at": now,
            "updated_by": actor.name,
        }
        if old is None:
            row = await ConfigLayer.create(id=spec.id, created_at=now, using_db=conn, **fields)
        else:
            await ConfigLayer.filter(id=spec.id).using_db(conn).update(**fields)
            row = await ConfigLayer.filter(id=spec.id).using_db(conn).get()
        stored = StoredLayer(row, _with_revision(layer, revision), node_path)
        await audit.record(
            "config.layer.create" if old is None else "config.layer.update",
            actor,
            "config_layer",
            spec.id,
            before=_audited(before) if before else None,
            after=_audited(stored),
            scope_path=node_path,
            at=now,
            using_db=conn,
        )
    return LayerChange(before.layer if before else None, stored.layer, stored, created=old is None)


async def delete_layer(principal: Principal | None, layer_id: str, now: datetime) -> LayerChange:
    actor = principal.actor if principal else audit.local_actor()
    async with in_transaction() as conn:
        row = None
        if LAYER_ID.fullmatch(layer_id):
            row = await ConfigLayer.select_for_update().using_db(conn).get_or_none(id=layer_id)
        if row is None:
            msg = f"no config layer {layer_id!r}"
            raise NotFoundError(msg)
        before = await load_one(row, conn)
        if principal is not None:
            await _require_scope(principal, before)
        await _next_revision(conn)
        await ConfigLayer.filter(id=layer_id).using_db(conn).delete()
        await audit.record(
            "config.layer.delete",
            actor,
            "config_layer",
            layer_id,
            before=_audited(before),
            scope_path=before.node_path,
            at=now,
            using_db=conn,
        )
    return LayerChange(before.layer, None, None)


async def load_one(row: ConfigLayer, conn: BaseDBAsyncClient) -> StoredLayer:
    code = str(row.scope.get("node")) if row.scope_kind == ScopeKind.NODE else None
    paths = {}
    if code is not None:
        paths = dict(
            await JurisdictionNode.filter(code=code).using_db(conn).values_list("code", "path")
        )
    return _stored(row, paths)


async def current_revision(conn: BaseDBAsyncClient | None = None) -> int:
    row = await ConfigRevision.filter(id=REVISION_ROW).using_db(conn).first()
    return int(row.revision) if row else 0


async def _next_revision(conn: BaseDBAsyncClient) -> int:
    """Raise the counter in the caller's transaction; the row lock orders concurrent changes."""
    row = await ConfigRevision.select_for_update().using_db(conn).get_or_none(id=REVISION_ROW)
    if row is None:
        await ConfigRevision.create(id=REVISION_ROW, revision=1, using_db=conn)
        return 1
    revision = int(row.revision) + 1
    await ConfigRevision.filter(id=REVISION_ROW).using_db(conn).update(revision=revision)
    return revision


def _with_revision(layer: Layer, revision: int) -> Layer:
    return Layer(layer.id, layer.scope, layer.values, layer.priority, revision)


def _audited(stored: StoredLayer) -> dict[str, Any]:
    row = stored.row
    return {
        "scope": {"kind": row.scope_kind, **row.scope},
        "priority": row.priority,
        "values": dict(row.values),
        "description": row.description,
    }


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _checked_layer(
    spec: LayerInput, kind: ScopeKind, scope_doc: Mapping[str, Any], node_path: str | None
) -> Layer:
    if not isinstance(spec.values, Mapping):
        raise InvalidFieldError(field="values", problem="an object of config keys and their values")
    if isinstance(spec.priority, bool) or not isinstance(spec.priority, int):
        raise InvalidFieldError(field="priority", problem=f"{spec.priority!r} is not an integer")
    try:
        return Layer(spec.id, _scope(kind, scope_doc, node_path), dict(spec.values), spec.priority)
    except LayerError as exc:
        field_name = {
            TwinErrorReason.BAD_ID: "id",
            TwinErrorReason.BAD_PRIORITY: "priority",
            TwinErrorReason.BAD_SCOPE: "scope",
        }.get(exc.reason)
        if exc.problems:  # the first refused key names the field; the message names them all
            field_name = f"values.{exc.problems[0].key}"
        raise LayerRefusedError(field_name, str(exc), exc.problems) from None


async def _checked_scope(
    principal: Principal | None, scope: object
) -> tuple[ScopeKind, dict[str, Any], str | None]:
    """The scope's kind, what is stored of it, and a node scope's path; the asker may use it."""
    if not isinstance(scope, Mapping):
        raise InvalidFieldError(
            field="scope", problem='an object such as {"kind": "node", "node": "440117"}'
        )
    try:
        kind = ScopeKind(str(scope.get("kind")))
    except ValueError:
        allowed = ", ".join(k.value for k in ScopeKind)
        raise InvalidFieldError(field="scope.kind", problem=f"one of {allowed}") from None
    needed = {ScopeKind.GLOBAL: set(), ScopeKind.NODE: {"node"}, ScopeKind.LABELS: {"labels"}}
    wanted = needed.get(kind, {"device"})
    if extra := set(scope) - {"kind"} - wanted:
        raise InvalidFieldError(
            field=f"scope.{min(extra)}", problem=f"not a field of a {kind} scope"
        )
    if missing := wanted - set(scope):
        raise InvalidFieldError(field=f"scope.{min(missing)}", problem=f"a {kind} scope needs it")
    doc = {name: scope[name] for name in wanted}
    match kind:
        case ScopeKind.GLOBAL | ScopeKind.LABELS:
            if kind is ScopeKind.LABELS and not isinstance(doc["labels"], Mapping):
                raise InvalidFieldError(
                    field="scope.labels", problem='an object such as {"hall": "main"}'
                )
            if principal is not None and principal.scope_path is not None:
                msg = f"a {kind} layer reaches the whole tree: it needs a token for the whole tree"
                raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg)
            return kind, doc, None
        case ScopeKind.NODE:
            return kind, doc, await _node_path(principal, doc["node"])
        case ScopeKind.DEVICE:
            await _device_path(principal, doc["device"])
            return kind, doc, None


async def _node_path(principal: Principal | None, code: object) -> str:
    node = None
    if isinstance(code, str) and NODE_CODE.fullmatch(code):
        node = await JurisdictionNode.get_or_none(code=code)
    if node is not None and (principal is None or principal.sees(node.path)):
        return node.path
    if principal is not None and principal.scope_path is not None:
        raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, f"node {code!r} is outside the scope")
    raise InvalidFieldError(field="scope.node", problem=f"no node has the code {code!r}")


async def _device_path(principal: Principal | None, device_id: object) -> str | None:
    rows = []
    if isinstance(device_id, str) and LAYER_ID.fullmatch(device_id):
        rows = await Device.filter(device_id=device_id).values("device_id", "site_id")
    path = None
    if rows and rows[0]["site_id"] is not None:
        site = await Site.filter(id=rows[0]["site_id"]).values_list("node__path", flat=True)
        path = str(site[0]) if site else None
    if rows and (principal is None or principal.sees(path)):
        return path
    if principal is not None and principal.scope_path is not None:
        msg = f"device {device_id!r} is outside the scope"
        raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg)
    raise InvalidFieldError(field="scope.device", problem=f"no device {device_id!r}")


async def _require_scope(principal: Principal, stored: StoredLayer) -> None:
    """A scoped token changes only layers that lie in its scope."""
    if principal.scope_path is None:
        return
    row = stored.row
    if row.scope_kind == ScopeKind.NODE and stored.node_path and principal.sees(stored.node_path):
        return
    if row.scope_kind == ScopeKind.DEVICE:
        await _device_path(principal, row.scope.get("device"))
        return
    msg = f"layer {row.id} lies outside this token's scope"
    raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg)
