"""``termfleet config``: the device twin's layers and a device's config, through the API.

``config layers set`` changes a layer key by key: it reads the layer (if there is one), sets and
unsets the keys given, and writes it whole (``PUT /api/v1/config/layers/ID``), so a value the
server refuses names its key and nothing changes. Values are typed by the key
(docs/config-keys.md): ``ui.idle_timeout_s=90`` is a number, ``ui.language=en`` text,
``ui.home_items=a,b`` a list. Not to be confused with ``config_file``, the CLI's own settings.
"""

from __future__ import annotations

import json
from typing import Any

import click

from control_plane.auth import Permission

from . import options
from .admin import api_path, deleted, needs, print_json
from .api_calls import ApiSession, run
from .devices_calls import api_options, call
from .output import print_rows

LAYER_COLUMNS = ["id", "scope", "priority", "keys", "targeted", "applied", "failed", "pending"]
DEVICE_COLUMNS = ["key", "desired", "layer", "reported", "effective"]


@click.group("config")
def config() -> None:
    """The device twin: config layers, and what each device is sent and runs with."""


@config.group("layers")
def layers() -> None:
    """Config layers: global, a node's subtree, devices with labels, one device."""


@layers.command("ls", epilog=needs(Permission.CONFIG_READ))
@api_options
def ls(server: str, token: str | None, as_json: bool) -> None:
    """Every layer with the devices it reaches: targeted, applied, failed, pending."""
    items = call(server, token, "GET", api_path("config", "layers"))["items"]
    if as_json:
        print_json(items)
        return
    print_rows([_row(item) for item in items], LAYER_COLUMNS, as_json=False)


@layers.command("show", epilog=needs(Permission.CONFIG_READ))
@click.argument("layer_id", metavar="ID")
@api_options
def show(layer_id: str, server: str, token: str | None, as_json: bool) -> None:
    """One layer: its scope, priority, values and device counts."""
    layer = call(server, token, "GET", api_path("config", "layers", layer_id))
    if as_json:
        print_json(layer)
        return
    print_rows([_row(layer)], LAYER_COLUMNS, as_json=False)
    values = [{"key": key, "value": _shown(value)} for key, value in layer["values"].items()]
    print_rows(values, ["key", "value"], as_json=False)


@layers.command(
    "set",
    epilog=needs(
        Permission.CONFIG_WRITE, "global and label layers need a token for the whole tree"
    ),
)
@click.argument("layer_id", metavar="ID")
@click.argument("assignments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--unset", "unset", multiple=True, metavar="KEY", help="Remove a key from the layer.")
@click.option("--global", "global_", is_flag=True, help="Scope: every device.")
@click.option("--node", metavar="CODE", help="Scope: the devices in a node's subtree.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Scope: devices with all.")
@click.option("--device", metavar="ID", help="Scope: one device.")
@click.option("--priority", type=int, help="Breaks ties within a tier (0-9999; default 0).")
@click.option("--description", help="What the layer is for.")
@api_options
def set_layer(  # noqa: PLR0913 - one parameter per argument and option
    layer_id: str,
    assignments: tuple[str, ...],
    unset: tuple[str, ...],
    global_: bool,
    node: str | None,
    labels: tuple[str, ...],
    device: str | None,
    priority: int | None,
    description: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Create layer ID, or change its keys, scope, priority or description.

    A new layer needs its scope (--global, --node, --label…, --device); an existing one keeps
    its own unless one is given.
    """
    scope = _scope(global_=global_, node=node, labels=labels, device=device)
    values = dict(_assignment(text) for text in assignments)

    async def work(api: ApiSession) -> Any:  # noqa: ANN401 - the API's JSON
        listed = await api.request("GET", api_path("config", "layers"))
        old = next((item for item in listed["items"] if item["id"] == layer_id), None)
        if old is None and scope is None:
            msg = f"layer {layer_id} is new: give its scope (--global, --node, --label, --device)"
            raise click.UsageError(msg)
        merged = {**(old["values"] if old else {}), **values}
        for key in unset:
            merged.pop(key, None)
        kept = old or {"scope": scope, "priority": 0, "description": ""}
        body = {
            "scope": scope or kept["scope"],
            "values": merged,
            "priority": kept["priority"] if priority is None else priority,
            "description": kept["description"] if description is None else description,
        }
        return await api.request("PUT", api_path("config", "layers", layer_id), body=body)

    layer = run(server, options.require_token(token, server), work)
    if as_json:
        print_json(layer)
        return
    print_rows([_row(layer)], LAYER_COLUMNS, as_json=False)


@layers.command("delete", epilog=needs(Permission.CONFIG_WRITE))
@click.argument("layer_id", metavar="ID")
@options.server_url
@options.api_token
def delete(layer_id: str, server: str, token: str | None) -> None:
    """Delete layer ID: its devices fall back to the layers below, or the keys' defaults."""
    call(server, token, "DELETE", api_path("config", "layers", layer_id))
    deleted(f"config layer {layer_id}")


@config.command("device", epilog=needs(Permission.CONFIG_READ))
@click.argument("device_id", metavar="ID")
@api_options
def device(device_id: str, server: str, token: str | None, as_json: bool) -> None:
    """A device's desired config with each key's layer, its report, and what it runs with."""
    view = call(server, token, "GET", api_path("devices", device_id, "config"))
    if as_json:
        print_json(view)
        return
    desired, reported = view["desired"], view["reported"]
    click.echo(
        f"{view['device_id']} ({view['kind']}): {view['state']}; desired version"
        f" {desired['version']}, reported version {reported['version']} ({reported['status']})"
    )
    if reported["error"]:
        click.echo(f"error: {reported['error']}")
    rows = [
        {
            "key": key,
            "desired": _shown(desired["values"].get(key)),
            "layer": desired["sources"].get(key),
            "reported": _shown(reported["values"].get(key)),
            "effective": _shown(value),
        }
        for key, value in view["effective"].items()
    ]
    print_rows(rows, DEVICE_COLUMNS, as_json=False)


def _row(layer: dict[str, Any]) -> dict[str, Any]:
    scope = layer["scope"]
    where = {key: value for key, value in scope.items() if key != "kind"}
    shown = scope["kind"] if not where else f"{scope['kind']} {_shown(next(iter(where.values())))}"
    return {
        "id": layer["id"],
        "scope": shown,
        "priority": layer["priority"],
        "keys": len(layer["values"]),
        **layer["devices"],
    }


def _shown(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _scope(
    *, global_: bool, node: str | None, labels: tuple[str, ...], device: str | None
) -> dict[str, Any] | None:
    given = [name for name, value in (("--global", global_), ("--node", node),
             ("--label", labels), ("--device", device)) if value]  # fmt: skip
    if len(given) > 1:
        msg = f"one scope at a time, not {' and '.join(given)}"
        raise click.UsageError(msg)
    if global_:
        return {"kind": "global"}
    if node:
        return {"kind": "node", "node": node}
    if labels:
        return {"kind": "labels", "labels": dict(_pair(text, "--label") for text in labels)}
    if device:
        return {"kind": "device", "device": device}
    return None


def _pair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        msg = f"{what} {text!r}: write it as KEY=VALUE"
        raise click.UsageError(msg)
    return key, value


def _assignment(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with the value typed as the key wants (the server checks it)."""
    from edge.config_keys import KEYS, KeyType

    key, value = _pair(text, "value")
    known = KEYS.get(key)
    if known is not None and known.type in {KeyType.STR, KeyType.ENUM}:
        return key, value
    if known is not None and known.type is KeyType.STR_LIST and not value.startswith("["):
        return key, [item.strip() for item in value.split(",") if item.strip()]
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value  # the server says what is wrong with it, naming the key
