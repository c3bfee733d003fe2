"""The ``termfleet`` command. Each group lives in its own module and imports its work lazily."""

from __future__ import annotations

import logging

import click

from edge import __version__

from . import (
    agent,
    audit,
    cases,
    catalog,
    config_cmd,
    content,
    db,
    dead_letters,
    demo,
    departments,
    devices,
    monitoring,
    nodes,
    provision,
    reviews,
    rollout,
    server,
    simulate,
    sites,
    staff,
    stats,
    tokens,
    windows,
    workorders,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="termfleet")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    envvar="TERMFLEET_LOG_LEVEL",
    help="How much to log to stderr.",
)
def cli(log_level: str) -> None:
    """Run and inspect a fleet of government service terminals.

    Kiosks (一体机), review pads (评价器), village station PCs and guidance booths report over
    MQTT to a control plane that stores their state, exposes Prometheus metrics and serves the
    REST API.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


cli.add_command(demo.demo)
cli.add_command(server.server)
cli.add_command(agent.agent)
cli.add_command(content.content)
cli.add_command(config_cmd.config)
cli.add_command(catalog.catalog)
cli.add_command(simulate.simulate)
cli.add_command(devices.devices)
cli.add_command(db.db)
cli.add_command(dead_letters.dead_letters)
cli.add_command(nodes.nodes)
cli.add_command(sites.sites)
cli.add_command(windows.windows)
cli.add_command(departments.departments)
cli.add_command(staff.staff)
cli.add_command(tokens.tokens)
cli.add_command(audit.audit)
cli.add_command(stats.stats)
cli.add_command(provision.provision)
cli.add_command(rollout.rollout)
cli.add_command(cases.cases)
cli.add_command(workorders.workorders)
cli.add_command(reviews.reviews)
cli.add_command(monitoring.monitoring)


def main() -> None:
    cli()
