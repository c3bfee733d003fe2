"""``termfleet provision`` commands that change the broker.

The secret, the broker's login file, reconcile, retire and re-enroll. Each works on the
database first and then on the broker, through the admin login derived from the secret.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from edge.mqtt import BrokerAddress

from . import options
from .db import run_with_database
from .options import database_url

if TYPE_CHECKING:
    from provisioning.broker_admin import BrokerAdmin
    from provisioning.settings import ProvisioningSettings

T = TypeVar("T")

secret_file = click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TERMFLEET_SECRET_FILE",
    required=True,
    help="The provisioning secret [env TERMFLEET_SECRET_FILE].",
)
note = click.option("--note", default="", help="Why: kept in the audit log.")


def run_provisioning(url: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on the database; refusals become clean errors."""
    from tortoise.exceptions import OperationalError

    from control_plane.admin_errors import AdminError

    try:
        return run_with_database(url, work)
    except AdminError as exc:
        raise click.ClickException(exc.message) from None
    except OperationalError as exc:
        raise click.ClickException(_database_trouble(exc)) from None


def _database_trouble(exc: Exception) -> str:
    """A database that could not do the work now, e.g. a SQLite file the server holds busy."""
    return f"the database could not do it now ({exc}); nothing was changed, try again"


def _settings(secret: Path, broker: BrokerAddress) -> ProvisioningSettings:
    from provisioning.settings import provisioning_settings

    try:
        return provisioning_settings(secret, broker)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _with_admin(
    url: str, settings: ProvisioningSettings, work: Callable[[BrokerAdmin], Awaitable[T]]
) -> T:
    """Run ``work`` on the database and the broker's admin login; failures become errors."""
    from tortoise.exceptions import OperationalError

    from control_plane.admin_errors import AdminError
    from edge.mqtt import MqttError
    from provisioning import dynsec
    from provisioning.broker_admin import DynsecError, open_admin

    async def main() -> T:
        async with open_admin(settings.login(dynsec.ADMIN_USERNAME)) as admin:
            return await work(admin)

    try:
        return run_with_database(url, main)
    except AdminError as exc:
        raise click.ClickException(exc.message) from None
    except OperationalError as exc:
        raise click.ClickException(_database_trouble(exc)) from None
    except (MqttError, DynsecError) as exc:
        msg = f"the broker: {exc}"
        raise click.ClickException(msg) from None


@click.group()
def secret() -> None:
    """The provisioning secret that every broker password is derived from."""


@secret.command("init")
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False), required=True)
def secret_init(path: Path) -> None:
    """Make a new secret (0600). Never replace one in use: every password would change."""
    from provisioning.credentials import SecretError, create_secret

    try:
        create_secret(path)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {path}; give it to the control plane as --secret-file", err=True)


@click.command("broker-file")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@secret_file
@database_url
def broker_file(out: Path, secret_file: Path, database_url: str) -> None:
    """Write the broker's dynamic-security file from the database, before the broker starts.

    Mosquitto reads it at start and rewrites it on every change; write it only while the
    broker is stopped. It holds password hashes, so it is written 0600.
    """
    from provisioning.broker_file import write_dynsec_file
    from provisioning.device_actions import desired_state

    settings = _settings(secret_file, BrokerAddress("localhost"))
    desired = run_with_database(database_url, lambda: desired_state(settings))
    write_dynsec_file(out, desired.clients, desired.roles)
    click.echo(f"wrote {out}: {len(desired.clients)} logins", err=True)


@click.command("reconcile")
@options.mqtt_url
@secret_file
@click.option(
    "--broker-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The broker's dynamic-security file, if readable here: checked against the broker.",
)
@database_url
@options.json_output
def reconcile(
    broker: BrokerAddress,
    secret_file: Path,
    broker_file: Path | None,
    database_url: str,
    as_json: bool,
) -> None:
    """Bring the broker's logins and roles in step with the database once, and report drift."""
    from provisioning import reconcile as reconciling
    from provisioning.device_actions import desired_state

    settings = _settings(secret_file, broker)

    async def work(admin: BrokerAdmin) -> reconciling.Report:
        return await reconciling.reconcile(
            admin, await desired_state(settings), dynsec_file=broker_file
        )

    report = _with_admin(database_url, settings, work)
    drift = {kind.value: count for kind, count in report.drift.items()}
    view = {
        "drift": drift,
        "commands_applied": report.commands_applied,
        "held_back": list(report.held_back),
        "file_ok": report.file_ok,
        "file_problem": report.file_problem,
        "save_failures": report.save_failures,
        "duration_s": round(report.duration_s, 3),
    }
    if as_json:
        click.echo(json.dumps(view, indent=2))
    else:
        found = {k: v for k, v in drift.items() if v} or "none"
        click.echo(f"drift found and repaired: {found}; {report.commands_applied} commands")
        if report.file_ok is False:
            click.echo(f"the broker's login file is NOT in step: {report.file_problem}")
    if report.file_ok is False or report.held_back:
        raise SystemExit(1)


@click.command("retire")
@click.argument("device_id")
@options.mqtt_url
@secret_file
@note
@database_url
@options.json_output
def retire(  # noqa: PLR0913 - one parameter per option
    device_id: str,
    broker: BrokerAddress,
    secret_file: Path,
    note: str,
    database_url: str,
    as_json: bool,
) -> None:
    """Retire a terminal for good: revoke its broker login (its session is kicked at once)."""
    from control_plane.audit import local_actor
    from edge import mqtt
    from provisioning import device_actions, dynsec

    settings = _settings(secret_file, broker)

    async def work(admin: BrokerAdmin) -> device_actions.Retired:
        session = mqtt.SessionOptions(client_id=f"termfleet-retire-{device_id}"[:64])
        async with mqtt.connect(settings.login(dynsec.CONTROL_PLANE_USERNAME), session) as cp:
            return await device_actions.retire(
                local_actor(),
                device_id,
                admin=admin,
                control_plane=cp,
                now=datetime.now(UTC),
                note=note,
            )

    done = _with_admin(database_url, settings, work)
    view = {"device_id": done.device_id, "kick_ms": round(done.kick_s * 1000, 1)}
    if as_json:
        click.echo(json.dumps(view))
    else:
        click.echo(f"retired {device_id}: its broker login was revoked in {view['kick_ms']} ms")


@click.command("reenroll")
@click.argument("device_id")
@click.option(
    "--within", type=click.IntRange(1, 24 * 30), default=24, show_default=True, metavar="HOURS"
)
@options.mqtt_url
@secret_file
@note
@database_url
def reenroll(  # noqa: PLR0913 - one parameter per option
    device_id: str,
    within: int,
    broker: BrokerAddress,
    secret_file: Path,
    note: str,
    database_url: str,
) -> None:
    """Allow a terminal to enroll again (factory reset, new disk); its old login stops now."""
    from control_plane.audit import local_actor
    from provisioning import device_actions

    settings = _settings(secret_file, broker)

    async def work(admin: BrokerAdmin) -> datetime:
        return await device_actions.allow_reenroll(
            local_actor(),
            device_id,
            admin=admin,
            now=datetime.now(UTC),
            window=timedelta(hours=within),
            note=note,
        )

    until = _with_admin(database_url, settings, work)
    click.echo(
        f"{device_id} may enroll again until {until.isoformat(timespec='minutes')}"
        " with a claim code for its site; its old broker login is deleted"
    )
