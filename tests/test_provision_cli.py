"""`termfleet provision` on a database it cannot write now: a clear error, nothing changed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from control_plane.cli import cli
from control_plane.db import database
from control_plane.db.provisioning_models import ClaimToken
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from provisioning.credentials import create_secret
from tests.support.provisioning_stand import INVENTORY, SITE


async def _prepare(url: str) -> None:
    async with database(url):
        await import_inventory(read_json(json.dumps(INVENTORY), "inventory.json"))


async def _tokens(url: str) -> int:
    async with database(url):
        return await ClaimToken.all().count()


def test_a_database_held_busy_is_a_clear_error_and_nothing_is_made(tmp_path: Path) -> None:
    db, secret = tmp_path / "cp.sqlite3", tmp_path / "secret"
    url = f"sqlite://{db}"
    asyncio.run(_prepare(url))
    create_secret(secret)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # as the server would while it writes a batch
    try:
        done = CliRunner().invoke(
            cli,
            [
                "provision", "claims", "create", "--site", SITE,
                "--secret-file", str(secret),
                "--public-broker-url", "mqtt://127.0.0.1:1883",
                "--database-url", url,
            ],
        )  # fmt: skip
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.exit_code == 1
    assert "the database could not do it now" in done.output
    assert "Traceback" not in done.output
    assert asyncio.run(_tokens(url)) == 0
