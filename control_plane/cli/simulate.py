"""``termfleet simulate``: a district of simulated terminals."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge.mqtt import BrokerAddress

from . import options

if TYPE_CHECKING:
    from edge.agent.runner import Agent
    from edge.content.signing import TrustedKeys


@click.command()
@options.district
@options.mqtt_url
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between heartbeats.",
)
@click.option(
    "--devices",
    type=click.IntRange(min=1),
    default=None,
    help="How many terminals: the district's first N, or more copies in its mix [default: all].",
)
@click.option(
    "--activity-rate",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Citizen visits per terminal per minute (usage records and reviews); 0 for none.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed for the simulated readings."
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".termfleet/simulator"),
    show_default=True,
    help="Where each simulated terminal keeps its outbox and content (a directory per device).",
)
@click.option(
    "--opening-hours/--always-on",
    "follow_hours",
    default=False,
    help="A realistic day: switch terminals on and off around their sites' opening hours "
    "(Asia/Shanghai), with visits only while open and a morning peak. By default every "
    "terminal stays on and is visited around the clock.",
)
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TERMFLEET_SECRET_FILE",
    help="The provisioning secret: each terminal logs in as itself with the password of its"
    " first enrollment (generation 1), as `termfleet demo` and docker compose enroll their"
    " district. A demo tool: a real terminal holds its own password only. Without it, the"
    " terminals connect without logins, to an open broker [env TERMFLEET_SECRET_FILE].",
)
@click.option(
    "--content-key",
    "content_keys",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    multiple=True,
    help="A public key (NAME.pub, `termfleet content keygen`) the terminals verify packages"
    " with; repeat it to trust several. With one, each kiosk, station PC and booth takes part"
    " in rollouts: it downloads, verifies and installs the packages its content notices name,"
    " its content store and downloads under --state-dir. Review pads hold no content and take"
    " none. Without any key no terminal has a package manager: content notices are ignored"
    " and rollouts to simulated terminals time out.",
)
@click.option(
    "--backfill-days",
    type=int,
    default=None,
    help="Instead of running live: the N whole days before today (1 to 29), their visits"
    " recorded with past device times in each terminal's outbox and delivered through the"
    " broker to the control plane's ingest; exits once every record is acknowledged. Scaled"
    " to the seeds' first quarter (N/90 of its handled cases by hall level). Refused for days"
    " this --state-dir has backfilled before (docs/demo-month.md).",
)
@click.option(
    "--backfill-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply the backfill's targets: 0.1 for a tenth of the seeds' figures.",
)
@click.option(
    "--keep-running",
    is_flag=True,
    help="With --backfill-days: run live as well, from the start (the backfill's records"
    " interleave with live ones in each outbox), and carry on once it is delivered; a refused"
    " backfill is a warning then. `termfleet demo` runs its simulator so on its first start.",
)
@click.option(
    "--list", "list_only", is_flag=True, help="List the terminals instead of running them."
)
@options.json_output
def simulate(  # noqa: PLR0913 - one parameter per option
    district: str,
    broker: BrokerAddress,
    heartbeat_interval: float,
    devices: int | None,
    activity_rate: float,
    seed: int,
    state_dir: Path,
    follow_hours: bool,
    secret_file: Path | None,
    content_keys: tuple[Path, ...],
    backfill_days: int | None,
    backfill_scale: float,
    keep_running: bool,
    list_only: bool,
    as_json: bool,
) -> None:
    """Run simulated terminals (kiosks, review pads, station PCs, booths) of a demo district.

    Each keeps its outbox (and, with --content-key, its content store) in a directory of its
    own under --state-dir, which outlives the run as a terminal's disk would.
    """
    from edge.agent.outbox import OutboxError
    from edge.agent.runner import AgentTiming
    from edge.simulator import day
    from edge.simulator.district import DistrictError, opening_hours, scaled, terminals
    from edge.simulator.fleet import build_agents, close_agents, run_fleet

    try:
        base = terminals(district)
        chosen = scaled(base, devices or len(base))
        sites = opening_hours(district)
    except DistrictError as exc:
        raise click.ClickException(str(exc)) from None
    hours = {t.device_id: sites[t.site_code] for t in chosen} if follow_hours else None
    if list_only:
        now = datetime.now(UTC)
        rows = [
            {
                "device_id": t.device_id,
                "kind": t.kind.value,
                "site": t.site_code,
                "level": t.site_level,
                "switched_on": hours is None or day.powered(hours[t.device_id], now),
            }
            for t in chosen
        ]
        from .output import print_rows

        print_rows(rows, ["device_id", "kind", "site", "level", "switched_on"], as_json=as_json)
        return
    password_of = _passwords(secret_file) if secret_file is not None else None
    backfill = None
    if backfill_days is not None:
        from .simulate_backfill import BackfillRequest

        request = BackfillRequest(
            district, backfill_days, backfill_scale, seed, state_dir, chosen, sites
        )
        backfill = (request, request.plan())  # a usage error before anything starts

    def make_agents(keys: TrustedKeys | None) -> list[Agent]:
        try:
            return build_agents(
                chosen,
                broker,
                AgentTiming(heartbeat_interval_s=heartbeat_interval),
                seed,
                state_dir,
                password_of=password_of,
                content_keys=keys,
            )
        except OutboxError as exc:
            raise click.ClickException(str(exc)) from None

    if backfill is not None and not keep_running:
        from .simulate_backfill import run_backfill_command

        run_backfill_command(backfill[0], lambda: make_agents(None), as_json=as_json)
        return
    agents = make_agents(_content_keys(content_keys))
    logins = "each with its own login" if password_of else "without logins"
    with_packages = sum(agent.packages is not None for agent in agents)
    click.echo(
        f"simulating {len(agents)} terminals of {district} against {broker}, {logins}, "
        f"{with_packages} taking part in rollouts",
        err=True,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        fleet = run_fleet(agents, stop, visits_per_minute=activity_rate, seed=seed, hours=hours)
        if backfill is None:
            await fleet
            return
        from .simulate_backfill import alongside

        await alongside(fleet, *backfill, agents)

    try:
        asyncio.run(main())
    finally:
        close_agents(agents)


def _content_keys(key_files: tuple[Path, ...]) -> TrustedKeys:
    """The public keys in ``key_files`` by key id; a usage error naming a file that holds none."""
    from edge.content.signing import ContentKeyError, read_trusted_keys

    try:
        return read_trusted_keys(key_files)
    except ContentKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--content-key") from None


def _passwords(secret_file: Path) -> Callable[[str], str]:
    """Device id → the password of its demo enrollment, derived from the secret."""
    from provisioning.credentials import SecretError, load_secret
    from provisioning.demo_logins import terminal_password

    try:
        secret = load_secret(secret_file)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from None
    return functools.partial(terminal_password, secret)
