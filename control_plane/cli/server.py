"""``termfleet server``: the control-plane process."""

from __future__ import annotations

from pathlib import Path

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
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TERMFLEET_SECRET_FILE",
    help="The provisioning secret (termfleet provision secret init): with it the control plane"
    " logs in to the broker as itself, answers enrolling terminals and keeps the broker's"
    " logins in step with the database [env TERMFLEET_SECRET_FILE].",
)
@click.option(
    "--public-broker-url",
    metavar="URL",
    envvar="TERMFLEET_PUBLIC_BROKER_URL",
    help="The broker as terminals reach it, told to each at enrollment [default: --mqtt-url]"
    " [env TERMFLEET_PUBLIC_BROKER_URL].",
)
@click.option(
    "--broker-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TERMFLEET_BROKER_FILE",
    help="The broker's dynamic-security file, if readable here: checked after each reconcile"
    " to catch a broker that cannot save it [env TERMFLEET_BROKER_FILE].",
)
def run(  # noqa: PLR0913 - one parameter per option
    database_url: str,
    broker: BrokerAddress,
    http_host: str,
    http_port: int,
    client_id: str,
    heartbeat_timeout: float,
    secret_file: Path | None,
    public_broker_url: str | None,
    broker_file: Path | None,
) -> None:
    """Run the control plane until SIGINT or SIGTERM."""
    from control_plane.db import DatabaseError
    from control_plane.server import ServerError, ServerSettings
    from control_plane.server import run as run_server

    provisioning = None
    if secret_file is not None:
        from provisioning.settings import provisioning_settings

        try:
            provisioning = provisioning_settings(
                secret_file, broker, public_broker_url=public_broker_url, dynsec_file=broker_file
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        settings = ServerSettings(
            database_url,
            broker,
            http_host,
            http_port,
            client_id,
            heartbeat_timeout,
            provisioning=provisioning,
        )
        run_server(settings)
    except (DatabaseError, ServerError) as exc:
        raise click.ClickException(str(exc)) from None
