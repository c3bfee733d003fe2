"""API tokens for tests, issued into a test's database as `termfleet tokens create` does."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

from control_plane import tokens
from control_plane.auth import Actor, Role
from control_plane.db import database

TEST_ACTOR = Actor(None, "local:test")


async def issue_token(
    database_url: str,
    role: Role = Role.ADMIN,
    scope: str | None = None,
    *,
    name: str | None = None,
    expires_in: timedelta | None = None,
) -> str:
    """A new token's secret; opens (and migrates) the database for the purpose."""
    async with database(database_url):
        issued = await tokens.issue(
            name or f"test-{role}-{uuid.uuid4().hex[:8]}",
            role,
            actor=TEST_ACTOR,
            scope_code=scope,
            expires_in=expires_in,
        )
    return issued.secret


def issue_token_with_cli(database_url: str, role: str = "admin", name: str = "test-admin") -> str:
    """A token made by the real command, for tests that run termfleet as processes."""
    done = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "tokens", "create", "--name", name,
         "--role", role, "--json", "--database-url", database_url],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    secret: str = json.loads(done.stdout)["token"]
    return secret
