"""``termfleet server``: the control-plane process."""

from __future__ import annotations

import click

from control_plane.fleet import DEFAULT_HEARTBEAT_TIMEOUT_S
from edge.mqtt import BrokerAddress

from . import options


@click.group()
def server() -> None:
    """The control plane: MQTT ingest, database, REST API and /metrics."""


@server.command("run")
@options.database_url
@options.mqtt_url
@click.option("--http-host", default="127.0.0.1", show_default=True, envvar="TERMFLEET_HTTP_HOST")
@click.option(
    "--http-port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    envvar="TERMFLEET_HTTP_PORT",
)
@click.option(
    "--client-id",
    default="",
    help="MQTT client id of the ingest; unique per replica (default: termfleet-cp-HOSTNAME).",
)
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_HEARTBEAT_TIMEOUT_S,
    show_default=True,
    help="Seconds of silence after which an online terminal counts as offline (silent).",
)
def run(  # noqa: PLR0913 - one parameter per option
    database_url: str,
    broker: BrokerAddress,
    http_host: str,
    http_port: int,
    client_id: str,
    heartbeat_timeout: float,
) -> None:
    """Run the control plane until SIGINT or SIGTERM."""
    from control_plane.db import DatabaseError
    from control_plane.server import ServerError, ServerSettings
    from control_plane.server import run as run_server

    try:
        settings = ServerSettings(
            database_url, broker, http_host, http_port, client_id, heartbeat_timeout
        )
        run_server(settings)
    except (DatabaseError, ServerError) as exc:
        raise click.ClickException(str(exc)) from None
