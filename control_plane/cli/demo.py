"""``termfleet demo``: everything on one machine, with a simulated district."""

from __future__ import annotations

from pathlib import Path

import click

from . import options


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".termfleet/demo"),
    show_default=True,
    help="Where the provisioning secret, broker, database, Prometheus data and logs go.",
)
@options.district
@click.option("--mqtt-port", type=click.IntRange(1, 65535), default=18830, show_default=True)
@click.option("--http-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--prometheus-port", type=click.IntRange(1, 65535), default=9090, show_default=True)
@click.option("--no-prometheus", is_flag=True, help="Do not start Prometheus even if installed.")
@click.option(
    "--heartbeat-interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True
)
def demo(  # noqa: PLR0913 - one parameter per option
    workdir: Path,
    district: str,
    mqtt_port: int,
    http_port: int,
    prometheus_port: int,
    no_prometheus: bool,
    heartbeat_interval: float,
) -> None:
    """Start a broker, the control plane, Prometheus and a simulated district; Ctrl-C stops all.

    The broker refuses anonymous clients: the district's terminals are recorded as enrolled and
    each logs in as itself, with a password derived from the secret in the work directory.
    """
    from control_plane.demo import DemoSettings, run_demo
    from control_plane.services.processes import ProcessError

    settings = DemoSettings(
        workdir=workdir.resolve(),
        district=district,
        mqtt_port=mqtt_port,
        http_port=http_port,
        prometheus_port=prometheus_port,
        with_prometheus=not no_prometheus,
        heartbeat_interval_s=heartbeat_interval,
    )
    try:
        run_demo(settings, lambda text: click.echo(text, nl=False, err=True))
    except ProcessError as exc:
        raise click.ClickException(str(exc)) from None
