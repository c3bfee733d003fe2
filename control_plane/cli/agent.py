"""``termfleet agent``: the edge agent on a terminal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from edge.protocol import CLAIM_TIMEOUT_S, DeviceKind

from . import agent_packages, agent_peripherals, options


@click.group()
def agent() -> None:
    """The edge agent that runs on each terminal."""


@agent.command("run")
@options.agent_config
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


@agent.command("enroll")
@click.option(
    "--claim",
    required=True,
    metavar="CODE|LINK",
    help="The claim code (认领码) as typed, or the termfleet://enroll?… link of its QR code.",
)
@click.option(
    "--server",
    metavar="URL",
    help="The claim server, mqtt://host:port or mqtts://host:port; overrides the link's.",
)
@click.option(
    "--kind",
    type=click.Choice([k.value for k in DeviceKind if k is not DeviceKind.UNKNOWN]),
    required=True,
    help="What this terminal is.",
)
@click.option(
    "--serial",
    help="The terminal's serial number [default: the firmware's (DMI), else /etc/machine-id].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The agent config to write [default: /etc/termfleet/agent.toml].",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the agent keeps its outbox [default: /var/lib/termfleet-agent].",
)
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The CA certificate (PEM) of the broker's certificate, for mqtts://; kept in the config.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=CLAIM_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the claim service's answer.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing config, after an administrator's `termfleet provision reenroll`.",
)
@options.json_output
def enroll(  # noqa: PLR0913 - one parameter per option
    claim: str,
    server: str | None,
    kind: str,
    serial: str | None,
    config_path: Path | None,
    state_dir: Path | None,
    ca_file: Path | None,
    timeout_s: float,
    force: bool,
    as_json: bool,
) -> None:
    """Enroll this terminal with a claim code: receive its identity and write its config.

    The claim password comes from the enrollment link, else from TERMFLEET_CLAIM_PASSWORD; it is
    no option, because options show in `ps` to every user of the terminal.
    """
    from edge.agent.enroll import (
        DEFAULT_CONFIG_PATH,
        DEFAULT_STATE_DIR,
        EnrollError,
        EnrollOptions,
    )
    from edge.agent.enroll import enroll as run_enrollment

    enroll_options = EnrollOptions(
        claim=claim,
        kind=DeviceKind(kind),
        server=server,
        serial=serial,
        config_path=config_path or DEFAULT_CONFIG_PATH,
        state_dir=state_dir or DEFAULT_STATE_DIR,
        ca_file=ca_file,
        timeout_s=timeout_s,
        force=force,
    )
    try:
        enrolled = asyncio.run(run_enrollment(enroll_options))
    except EnrollError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        view = {
            "device_id": enrolled.device_id,
            "config": str(enrolled.config_path),
            "password_file": str(enrolled.password_file),
            "broker_url": enrolled.broker_url,
        }
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    click.echo(f"Enrolled as {enrolled.device_id}; the broker is {enrolled.broker_url}.")
    click.echo(f"Wrote {enrolled.config_path} and {enrolled.password_file} (both 0600).")
    click.echo("Next:")
    click.echo(f"  1. start the agent: termfleet agent run --config {enrolled.config_path}")
    click.echo("  2. the technician runs the self-test at the terminal")
    click.echo("  3. an administrator accepts the terminal into the fleet")


agent.add_command(agent_peripherals.peripherals)
agent.add_command(agent_peripherals.self_test)
agent.add_command(agent_packages.packages)
