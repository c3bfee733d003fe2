"""``termfleet agent``: the edge agent on a terminal."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def agent() -> None:
    """The edge agent that runs on each terminal."""


@agent.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    envvar="TERMFLEET_AGENT_CONFIG",
    help="The agent's TOML config (written by provisioning).",
)
def run(config_path: Path) -> None:
    """Connect, report presence, health and records, follow the downlink until SIGINT or SIGTERM.

    Records wait in ``state_dir/outbox.sqlite3`` until the control plane acknowledges them.
    ``python -m edge.agent --config FILE`` runs the same agent without the rest of the
    ``termfleet`` command around it, in less memory.
    """
    from edge.agent.startup import StartError, build_agent, run_until_signalled

    try:
        the_agent = build_agent(config_path)
    except StartError as exc:
        raise click.ClickException(str(exc)) from None
    run_until_signalled(the_agent)
