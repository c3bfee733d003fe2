"""A demo district's simulated terminals as enrolled terminals, each with its own broker login.

``termfleet demo`` and docker compose's ``broker-init`` run a broker with anonymous access off.
Rather than enrolling a district's terminals one claim code at a time, they record them as
enrolled and in service with password generation 1: ``desired_state`` then gives each its own
login and role, the broker's file is written from it before the broker starts, and
``termfleet simulate --secret-file`` derives the same passwords (``terminal_password``). A real
terminal holds only its own password; the simulator plays many that hold theirs.

Run ``python -m provisioning.demo_logins`` to prepare a broker that way (docker compose does).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from tortoise.transactions import in_transaction

from control_plane import audit
from control_plane.auth import Actor
from control_plane.cli.db import run_with_database
from control_plane.cli.options import database_url
from control_plane.db.models import Device
from control_plane.inventory import InventoryError
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.lifecycle import Lifecycle
from edge.mqtt import BrokerAddress
from edge.simulator.district import DistrictError, district_file, terminals
from edge.simulator.items import departments

from .broker_file import write_dynsec_file
from .credentials import SECRET_ENV, SecretError, broker_password, create_secret
from .device_actions import desired_state
from .settings import ProvisioningSettings, provisioning_settings

DEMO_GENERATION = 1
"""The password generation of a simulated terminal: its first enrollment."""
DEMO_ACTOR = Actor(None, "demo")
DEMO_NOTE = "a demo district's simulated terminal, enrolled without a claim code"


@dataclass(frozen=True)
class Prepared:
    imported: bool
    """Whether the district had to be imported (some of its terminals were missing)."""
    enrolled: int
    """Terminals recorded as enrolled by this run; 0 when they were already."""
    logins: int
    """Logins in the broker's file, termfleet's own services included."""


def terminal_password(secret: bytes, device_id: str) -> str:
    """The broker password a simulated terminal logs in with."""
    return broker_password(secret, device_id, DEMO_GENERATION)


def ensure_secret(path: Path) -> bool:
    """Make the secret unless it exists (a demo keeps its passwords across runs); True if made."""
    if path.exists():
        return False
    create_secret(path)
    return True


async def enroll_simulated(device_ids: Collection[str], *, now: datetime) -> int:
    """Record terminals as enrolled and in service with generation 1; how many moved.

    Only terminals that never had a login move (registered, generation 0). One re-enrolled,
    waiting to enroll again or retired keeps its state: the database stays the source of truth,
    and an administrator's action on a simulated terminal is not undone by the next start.
    """
    async with in_transaction() as conn:
        fresh = (
            await Device.select_for_update()
            .using_db(conn)
            .filter(
                device_id__in=list(device_ids),
                broker_generation=0,
                lifecycle=Lifecycle.REGISTERED.value,
            )
            .order_by("device_id")
        )
        for device in fresh:
            # Straight to in service, past the lifecycle's enrolled and commissioning: a
            # simulated terminal has no peripherals to commission.
            device.lifecycle = Lifecycle.IN_SERVICE.value
            device.broker_generation = DEMO_GENERATION
            device.enrolled_at = now
            await device.save(
                using_db=conn, update_fields=["lifecycle", "broker_generation", "enrolled_at"]
            )
            await audit.record(
                "device.enroll",
                DEMO_ACTOR,
                "device",
                device.device_id,
                after={"generation": DEMO_GENERATION, "lifecycle": Lifecycle.IN_SERVICE.value},
                note=DEMO_NOTE,
                at=now,
                using_db=conn,
            )
    return len(fresh)


async def prepare(
    district: str, settings: ProvisioningSettings, broker_file: Path, *, now: datetime
) -> Prepared:
    """Import the district if needed, enroll its terminals, write the broker's login file.

    Write the file only while the broker is stopped: a running broker rewrites it on changes.
    """
    device_ids = [t.device_id for t in terminals(district)]
    missing = len(device_ids) - await Device.filter(device_id__in=device_ids).count()
    if missing:
        name = f"{district}.json"
        await import_inventory(read_json(district_file(district).read_text(), name))
        # The simulated items' departments, so that statistics and the transactions metric
        # name them (the metric counts unregistered departments as "other").
        catalog = json.dumps({"departments": departments()}, ensure_ascii=False)
        await import_inventory(read_json(catalog, "items.json"))
    enrolled = await enroll_simulated(device_ids, now=now)
    desired = await desired_state(settings)
    write_dynsec_file(broker_file, desired.clients, desired.roles)
    return Prepared(imported=missing > 0, enrolled=enrolled, logins=len(desired.clients))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--district", default="conghua", show_default=True, help="The demo district.")
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=SECRET_ENV,
    required=True,
    help="The provisioning secret; made (0600) if missing [env TERMFLEET_SECRET_FILE].",
)
@click.option(
    "--broker-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The broker's dynamic-security file to write (0600).",
)
@database_url
def main(district: str, secret_file: Path, broker_file: Path, database_url: str) -> None:
    """Prepare a demo broker: the district's terminals enrolled, the broker's file written."""
    try:
        if ensure_secret(secret_file):
            click.echo(f"made the provisioning secret {secret_file}", err=True)
        settings = provisioning_settings(secret_file, BrokerAddress("localhost"))
        now = datetime.now(UTC)
        done = run_with_database(
            database_url, lambda: prepare(district, settings, broker_file, now=now)
        )
    except (SecretError, DistrictError, InventoryError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        msg = f"cannot write the broker's file {broker_file}: {exc.strerror}"
        raise click.ClickException(msg) from None
    imported = f"imported the {district} district; " if done.imported else ""
    click.echo(
        f"{imported}{done.enrolled} terminals enrolled now (generation {DEMO_GENERATION});"
        f" wrote {broker_file}: {done.logins} logins",
        err=True,
    )


if __name__ == "__main__":
    main()
