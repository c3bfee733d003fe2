"""``termfleet rollout``: start rollouts of packages, watch them, pause, resume, cancel, roll back.

Every command goes through the control plane's API (``/api/v1/rollouts``, --server, --token);
the control plane's executor does the work (docs/rollouts.md). ``show --watch`` polls the API
and redraws one progress bar per wave (``rollout_draw``) until the rollout is final.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

import click

from . import options
from .api_calls import ApiSession, run
from .output import print_rows
from .rollout_draw import change_line, details, draw, parse_duration, redraw

ROLLOUTS = "/api/v1/rollouts"
PHASES = ("running", "paused", "completed", "cancelled", "rolling_back", "rolled_back")
KINDS = ("kiosk", "review_pad", "station_pc", "booth")
SHA256 = re.compile(r"[0-9a-f]{64}")
LIST_COLUMNS = ["id", "package", "version", "phase", "wave", "devices", "succeeded", "failed"]
DEFAULT_INTERVAL_S = 2.0


@click.group()
def rollout() -> None:
    """Rollouts of content, catalog and firmware packages to terminals, in waves.

    A rollout sends one package version (uploaded with `content upload`) to the devices it
    targets, wave after wave: a wave advances when enough of it succeeded and pauses the
    rollout when too many failed. Terminals download at any time and install while their site
    is closed (or when idle, with --when-idle). Needs --server and a token; creating and acting
    need an admin token for the whole tree.
    """


def _package(text: str) -> str | dict[str, Any]:
    if SHA256.fullmatch(text):
        return text
    name, sep, version = text.rpartition(":")
    if not sep or not name or not version.isdigit():
        msg = f"{text!r} is neither a sha256 (64 hex digits) nor NAME:VERSION"
        raise click.BadParameter(msg, param_hint="--package")
    return {"name": name, "version": int(version)}


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            msg = f"{pair!r} is not KEY=VALUE"
            raise click.BadParameter(msg, param_hint="--label")
        labels[key] = value
    return labels


def _waves(text: str) -> list[str]:
    return [share.strip() for share in text.split(",") if share.strip()]


def _timeout(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@rollout.command("create")
@click.option("--package", "package", required=True, help="SHA256 of the package, or NAME:VERSION.")
@click.option("--node", help="Only devices under this node of the jurisdiction tree.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Repeatable.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Repeatable; all.")
@click.option("--device", "devices", multiple=True, metavar="ID", help="Exactly these; repeatable.")
@click.option("--all", "everything", is_flag=True, help="Every device of the fleet.")
@click.option("--waves", help="Cumulative per cents [1,10,50,100].")
@click.option("--success", type=float, help="Per cent succeeded a wave needs to advance [95].")
@click.option("--failure", type=float, help="Per cent failed above which it pauses [10].")
@click.option("--min-finished", type=click.IntRange(min=1), help="Before failures pause [5].")
@click.option("--timeout", callback=_timeout, help="Per device, from its notice: 2h, 90m [2h].")
@click.option("--when-idle", is_flag=True, help="Also install in opening hours when idle.")
@click.option("--peripheral", help="Firmware: the peripheral to flash, such as pad0.")
@click.option("--id", "rollout_id", help="The rollout's id [NAME-VERSION-random].")
@options.server_url
@options.api_token
@options.json_output
def create(  # noqa: PLR0913 - one parameter per option
    package: str,
    node: str | None,
    kinds: tuple[str, ...],
    labels: tuple[str, ...],
    devices: tuple[str, ...],
    everything: bool,
    waves: str | None,
    success: float | None,
    failure: float | None,
    min_finished: int | None,
    timeout: int | None,
    when_idle: bool,
    peripheral: str | None,
    rollout_id: str | None,
    server: str,
    token: str | None,
    as_json: bool,
) -> None:
    """Start a rollout of a package to the targeted devices, in waves.

    Target by --node, --kind and --label (all must hold), or list --device ids; --all targets
    every device. The first wave is notified at once.
    """
    targeted = node or kinds or labels or devices
    if bool(targeted) == everything:
        msg = "give --node, --kind, --label or --device to choose devices, or --all for every one"
        raise click.UsageError(msg)
    target: dict[str, Any] = {"node": node, "kinds": list(kinds), "labels": _labels(labels)}
    if devices:
        target = {"device_ids": list(devices)}
    body: dict[str, Any] = {"package": _package(package), "target": target}
    optional = {
        "waves": _waves(waves) if waves is not None else None,
        "success_threshold": success,
        "failure_threshold": failure,
        "min_finished": min_finished,
        "device_timeout_s": timeout,
        "install_policy": "when_idle" if when_idle else None,
        "peripheral": peripheral,
        "id": rollout_id,
    }
    body |= {key: value for key, value in optional.items() if value is not None}
    view = run(server, token, lambda api: api.request("POST", ROLLOUTS, body=body))
    _print(view, as_json=as_json)


@rollout.command("ls")
@click.option("--phase", type=click.Choice(PHASES), help="Only rollouts in this phase.")
@click.option("--package", help="Only rollouts of this package name.")
@options.server_url
@options.api_token
@options.json_output
def ls(
    phase: str | None, package: str | None, server: str, token: str | None, as_json: bool
) -> None:
    """List the rollouts, newest first."""
    params = {key: value for key, value in (("phase", phase), ("package", package)) if value}
    views = run(server, token, lambda api: api.every_page(ROLLOUTS, params))
    if as_json:
        print_rows(views, [], as_json=True)
        return
    print_rows([_row(view) for view in views], LIST_COLUMNS, as_json=False)


def _row(view: dict[str, Any]) -> dict[str, Any]:
    waves = view["waves"]
    return {
        "id": view["id"],
        "package": view["package"]["name"],
        "version": view["package"]["version"],
        "phase": view["phase"] + (f" ({view['pause_reason']})" if view["pause_reason"] else ""),
        "wave": f"{view['wave']}/{view['wave_count']}",
        "devices": view["device_count"],
        "succeeded": sum(wave["succeeded"] for wave in waves),
        "failed": sum(wave["failed"] for wave in waves),
    }


@rollout.command("show")
@click.argument("rollout_id", metavar="ID")
@click.option("--watch", is_flag=True, help="Redraw until the rollout is final (Ctrl-C stops).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=DEFAULT_INTERVAL_S,
    show_default=True,
    help="Seconds between redraws with --watch.",
)
@options.server_url
@options.api_token
@options.json_output
def show(  # noqa: PLR0913 - one parameter per option
    rollout_id: str, watch: bool, interval: float, server: str, token: str | None, as_json: bool
) -> None:
    """One rollout: a progress bar per wave, its thresholds and targeting."""
    path = f"{ROLLOUTS}/{rollout_id}"
    if not watch:
        view = run(server, token, lambda api: api.request("GET", path))
        _print(view, as_json=as_json)
        return
    on_terminal = sys.stdout.isatty() and not as_json
    try:
        run(server, token, lambda api: _watch(api, path, interval, on_terminal, as_json=as_json))
    except KeyboardInterrupt:
        click.echo()


async def _watch(
    api: ApiSession, path: str, interval: float, on_terminal: bool, *, as_json: bool
) -> None:
    """Print the rollout as it changes until it is final: redrawn on a terminal, else a line."""
    drawn, last = 0, ""
    while True:
        view = await api.request("GET", path)
        if on_terminal:
            lines = draw(view)
            click.echo(redraw(drawn, lines))
            drawn = len(lines)
        else:
            line = json.dumps(view, ensure_ascii=False) if as_json else change_line(view)
            if line != last:
                click.echo(line)
                last = line
        if view["final"]:
            return
        await asyncio.sleep(interval)


def _action(action: str, summary: str) -> click.Command:
    @click.command(action, help=summary)
    @click.argument("rollout_id", metavar="ID")
    @options.server_url
    @options.api_token
    @options.json_output
    def command(
        rollout_id: str, server: str, token: str | None, as_json: bool, **flags: bool
    ) -> None:
        body = {"waive_thresholds": True} if flags.get("waive_thresholds") else None
        path = f"{ROLLOUTS}/{rollout_id}/{action}"
        view = run(server, token, lambda api: api.request("POST", path, body=body))
        _print(view, as_json=as_json)

    return command


def _print(view: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    for line in (*draw(view), *details(view)):
        click.echo(line)


ACTIONS = {
    "pause": "Pause a running rollout: nothing more is sent until it is resumed.",
    "resume": "Resume a paused rollout; --waive-thresholds lets the current wave advance once"
    " all of it finished, whatever its shares.",
    "cancel": "Cancel a rollout: devices not yet installing are cancelled, installs finish.",
    "rollback": "Roll a rollout back: succeeded devices swap back to the previous version, each"
    " in its window.",
    "retry": "Queue a rollout's failed devices again; a completed rollout runs again.",
}
for _name, _summary in ACTIONS.items():
    _command = _action(_name, _summary)
    if _name == "resume":
        _command = click.option(
            "--waive-thresholds", is_flag=True, help="Accept the current wave's failures."
        )(_command)
    rollout.add_command(_command)
