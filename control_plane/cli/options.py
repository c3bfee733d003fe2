"""Options shared by several commands, with their environment variables."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge.mqtt import BrokerAddress

from .config_file import CliConfig, CliConfigError
from .config_file import load as load_cli_config

if TYPE_CHECKING:
    from control_plane.reviews.working_days import WorkingCalendar

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_SERVER_URL = "http://127.0.0.1:8080"


def parse_broker(_ctx: click.Context, _param: click.Parameter, value: str) -> BrokerAddress:
    try:
        return BrokerAddress.from_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


mqtt_url = click.option(
    "--mqtt-url",
    "broker",
    default=DEFAULT_MQTT_URL,
    show_default=True,
    envvar="TERMFLEET_MQTT_URL",
    callback=parse_broker,
    help="mqtt://[user:password@]host:port, or mqtts:// for TLS [env TERMFLEET_MQTT_URL].",
)

DEFAULT_DATABASE_URL = "sqlite://termfleet.sqlite3"
"""As control_plane.db's, which is not imported here: it would load tortoise for every command."""

database_url = click.option(
    "--database-url",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    envvar="TERMFLEET_DATABASE_URL",
    help="sqlite://PATH or postgres://user@host:port/db [env TERMFLEET_DATABASE_URL].",
)


def cli_config() -> CliConfig:
    """The CLI's config file (``config_file``), read when a value is not given otherwise."""
    try:
        return load_cli_config()
    except CliConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _server_or_configured(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    if value:
        return value
    return cli_config().server or DEFAULT_SERVER_URL


server_url = click.option(
    "--server",
    metavar="URL",
    callback=_server_or_configured,
    envvar="TERMFLEET_SERVER",
    help=f"Control-plane base URL [env TERMFLEET_SERVER; else `server` in the CLI config file;"
    f" else {DEFAULT_SERVER_URL}].",
)

api_token = click.option(
    "--token",
    envvar="TERMFLEET_TOKEN",
    metavar="TOKEN",
    help="API token (`termfleet tokens create`); prefer the environment or the CLI config file,"
    " which `ps` does not show [env TERMFLEET_TOKEN; else `token` in the CLI config file].",
)

HOW_TO_AUTHENTICATE = (
    "Set TERMFLEET_TOKEN (or pass --token, or put `token` in the CLI config file, see"
    " docs/api-devices.md) to a token of this control plane; an administrator creates one with"
    " `termfleet tokens create --name NAME --role ROLE` on its database."
)


def require_token(token: str | None, server: str | None = None) -> str:
    """The API token given, else the config file's, or a clear error saying how to get one.

    The file's token is sent only to the file's server (to the default server when the file
    names none): ``--server`` pointing elsewhere must not carry it away. ``server`` defaults to
    the running command's ``--server``.
    """
    if server is None:
        context = click.get_current_context(silent=True)
        server = context.params.get("server") if context is not None else None
    if token is None or not token.strip():
        config = cli_config()
        meant_for = config.server or DEFAULT_SERVER_URL
        if server is None or server.rstrip("/") == meant_for.rstrip("/"):
            token = config.token
    if token is None or not token.strip():
        msg = f"no API token. {HOW_TO_AUTHENTICATE}"
        raise click.UsageError(msg)
    return token.strip()


signing_key_file = click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The private key file (`content keygen`), mode 0600.",
)
"""The key a package is signed with, where it is packed: never on the server."""
json_output = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
agent_config = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    envvar="TERMFLEET_AGENT_CONFIG",
    help="The agent's TOML config (written by provisioning).",
)


class DistrictChoice(click.Choice[str]):
    """The demo districts, listed from the simulator's data only when a command needs them.

    Every command imports this module, ``termfleet agent run`` on a terminal too, which has no
    use for the simulator.
    """

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from edge.simulator.district import available_districts

        return tuple(available_districts())

    @choices.setter
    def choices(self, _choices: Iterable[str]) -> None:
        """Ignored: click's ``__init__`` sets the choices, which come from the data instead."""


district = click.option(
    "--district",
    type=DistrictChoice(),
    default="conghua",
    show_default=True,
    help="Demo district dataset.",
)


calendar_files = click.option(
    "--calendar",
    "calendar_files",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    multiple=True,
    envvar="TERMFLEET_CALENDARS",
    help="A working-day calendar file (docs/working-days.md) over the shipped official years:"
    " a year not shipped yet, or a local arrangement. Repeatable; bad-review work orders are"
    " due in working days on it [env TERMFLEET_CALENDARS: files separated by colons].",
)


def load_calendar(files: tuple[Path, ...]) -> WorkingCalendar:
    """The working days of ``--calendar``'s files over the shipped years; a bad file: an error."""
    from control_plane.reviews.working_days import CalendarDataError
    from control_plane.reviews.working_days import load_calendar as load

    try:
        return load(files)
    except (CalendarDataError, OSError) as exc:
        msg = f"working-day calendar: {exc}"
        raise click.ClickException(msg) from None
