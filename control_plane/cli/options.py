"""Options shared by several commands, with their environment variables."""

from __future__ import annotations

import click

from edge.mqtt import BrokerAddress
from edge.simulator.district import available_districts

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

server_url = click.option(
    "--server",
    default=DEFAULT_SERVER_URL,
    show_default=True,
    envvar="TERMFLEET_SERVER",
    help="Control-plane base URL [env TERMFLEET_SERVER].",
)

json_output = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

district = click.option(
    "--district",
    type=click.Choice(available_districts()),
    default="conghua",
    show_default=True,
    help="Demo district dataset.",
)
