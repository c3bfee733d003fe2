"""The compose stack's init scripts (deploy/init/), run for real with their folders pointed here.

`chown` is the one step stood in for: it needs root and the images' users, so a stand-in on
PATH records what would be handed to whom. The database step runs against a PostgreSQL of its
own that demands the password secrets-init made, through the pgpass file and a URL without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from control_plane.services.processes import ManagedProcess, free_port
from provisioning import ca
from tests.support.compose import DOCKERFILE, INIT_DIR, run

BROKER_HOST = "mqtt.hall.example"
UIDS = {"termfleet": "10001", "postgres": "999", "grafana": "472", "mosquitto": "1883"}
PG_USER = "termfleet"
STARTUP_TRIES = 100
STARTUP_POLL_S = 0.1


def init_env(tmp_path: Path) -> dict[str, str]:
    """The scripts' folders under tmp_path, a recording chown first on PATH."""
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    chown = stand_ins / "chown"
    chown.write_text('#!/bin/sh\necho "$*" >>"$CHOWN_LOG"\n')
    chown.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{stand_ins}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "CHOWN_LOG": str(tmp_path / "chown.log"),
        "TERMFLEET_BROKER_HOST": BROKER_HOST,
    }
    for name in ("SECRET", "POSTGRES_SECRET", "GRAFANA_SECRET", "CA", "BROKER_TLS", "CONTENT"):
        folder = tmp_path / name.lower()
        folder.mkdir()
        env[f"{name}_DIR"] = str(folder)
    return env


def secrets_and_tls(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["sh", str(INIT_DIR / "secrets-and-tls.sh")], env=env)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_and_tls_makes_each_secret_once(tmp_path: Path) -> None:
    env = init_env(tmp_path)
    first = secrets_and_tls(env)
    assert first.returncode == 0, first.stdout + first.stderr
    secret_dir, pg_dir = Path(env["SECRET_DIR"]), Path(env["POSTGRES_SECRET_DIR"])
    grafana_dir, ca_dir = Path(env["GRAFANA_SECRET_DIR"]), Path(env["CA_DIR"])
    tls_dir = Path(env["BROKER_TLS_DIR"])
    private = [secret_dir / "secret", pg_dir / "password", grafana_dir / "admin-password"]
    private += [secret_dir / "pgpass", ca_dir / "ca.key", tls_dir / "server.key"]
    for path in private:
        assert mode(path) & 0o077 == 0, path
    made = {p: p.read_bytes() for p in [*private, ca_dir / "ca.pem"]}
    password = (pg_dir / "password").read_text().strip()
    assert len(password) >= 40
    assert (secret_dir / "pgpass").read_text() == f"*:*:*:{PG_USER}:{password}\n"
    # The broker gets what it needs and never the CA's key.
    assert sorted(p.name for p in tls_dir.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    assert (ca_dir / "ca.key").is_file()
    assert BROKER_HOST in ca.describe(tls_dir / "server.pem")["names"]
    assert "broker" in ca.describe(tls_dir / "server.pem")["names"]
    handed = Path(env["CHOWN_LOG"]).read_text().splitlines()
    assert f"-R {UIDS['termfleet']}:{UIDS['termfleet']} {secret_dir}" in handed
    assert f"{UIDS['termfleet']}:{UIDS['termfleet']} {env['CONTENT_DIR']}" in handed
    assert f"-R {UIDS['postgres']}:{UIDS['postgres']} {pg_dir}" in handed
    assert f"-R {UIDS['grafana']}:{UIDS['grafana']} {grafana_dir}" in handed
    assert f"-R {UIDS['mosquitto']}:{UIDS['mosquitto']} {tls_dir}" in handed
    assert not [line for line in handed if str(ca_dir) in line], "the CA stays root's"

    again = secrets_and_tls(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p: p.read_bytes() for p in made} == made, "nothing made twice"
    assert "made" not in again.stdout


def test_the_control_plane_image_runs_as_the_uid_the_init_hands_volumes_to() -> None:
    assert f"--uid {UIDS['termfleet']} " in DOCKERFILE.read_text()
    assert f"TERMFLEET_UID={UIDS['termfleet']}" in (INIT_DIR / "secrets-and-tls.sh").read_text()


def test_secrets_and_tls_refuses_a_certificate_without_the_public_name(tmp_path: Path) -> None:
    env = init_env(tmp_path)
    assert secrets_and_tls(env).returncode == 0
    moved = secrets_and_tls({**env, "TERMFLEET_BROKER_HOST": "mqtt.other.example"})
    assert moved.returncode != 0
    assert "not TERMFLEET_BROKER_HOST=mqtt.other.example" in moved.stderr
    assert "renew the server certificate" in moved.stderr


def postgres_tool(name: str) -> str:
    installed = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    found = shutil.which(name) or (str(installed[-1]) if installed else None)
    if found is None:
        pytest.fail(f"{name} not found: run ./dev test, or apt-get install postgresql")
    return found


@contextlib.contextmanager
def password_postgres(password_file: Path) -> Iterator[int]:
    """A PostgreSQL of its own whose superuser ``termfleet`` logs in with the file's password.

    As the postgres image does with POSTGRES_PASSWORD_FILE; PostgreSQL refuses to run as root, so
    root runs it as the postgres user.
    """
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="termfleet-pg-"))
    try:
        pwfile = home / "pwfile"
        shutil.copyfile(password_file, pwfile)
        if as_user:
            shutil.chown(home, "postgres")
            shutil.chown(pwfile, "postgres")
        data = home / "data"
        argv = [postgres_tool("initdb"), "-D", str(data), "-U", PG_USER, "--no-sync"]
        made = run([*as_user, *argv, "--auth=scram-sha-256", f"--pwfile={pwfile}"])
        assert made.returncode == 0, made.stdout + made.stderr
        port = free_port()
        server = ManagedProcess(
            name="postgres",
            argv=[
                *as_user,
                *(postgres_tool("postgres"), "-D", str(data), "-p", str(port), "-k", str(home)),
                *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
            ],
            log_path=home / "log",
        ).start()
        try:
            server.wait_port("127.0.0.1", port)
            yield port
        finally:
            server.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def create_database(port: int, password: str) -> None:
    """The database the compose URL names, once the server takes connections."""
    for _ in range(STARTUP_TRIES):
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=port, user=PG_USER, password=password, database="postgres"
            )
            break
        except asyncpg.CannotConnectNowError:  # it listens before it has finished starting
            await asyncio.sleep(STARTUP_POLL_S)
    else:
        pytest.fail(f"PostgreSQL on port {port} did not finish starting")
    try:
        await conn.execute(f"CREATE DATABASE {PG_USER}")
    finally:
        await conn.close()


@pytest.mark.slow
def test_database_and_logins_on_postgres_with_the_made_password(tmp_path: Path) -> None:
    env = init_env(tmp_path)
    assert secrets_and_tls(env).returncode == 0
    secret_dir, dynsec_dir = Path(env["SECRET_DIR"]), tmp_path / "dynsec"
    dynsec_dir.mkdir()
    password_file = Path(env["POSTGRES_SECRET_DIR"]) / "password"
    with password_postgres(password_file) as port:
        asyncio.run(create_database(port, password_file.read_text().strip()))
        env |= {
            "DYNSEC_DIR": str(dynsec_dir),
            # The compose URL with the service name swapped for this server: no password.
            "TERMFLEET_DATABASE_URL": f"postgres://{PG_USER}@127.0.0.1:{port}/{PG_USER}",
            "PGPASSFILE": str(secret_dir / "pgpass"),
            "TERMFLEET_SECRET_FILE": str(secret_dir / "secret"),
            "HOME": str(tmp_path),  # no ~/.pgpass of whoever runs the tests
        }
        script = ["sh", str(INIT_DIR / "database-and-logins.sh")]
        done = run(script, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        login_file = dynsec_dir / "dynamic-security.json"
        assert '"termfleet-control-plane"' in login_file.read_text()
        assert f"-R {UIDS['mosquitto']}:{UIDS['mosquitto']} {dynsec_dir}" in (
            Path(env["CHOWN_LOG"]).read_text().splitlines()
        )
        # The broker owns the file once it runs: a later start leaves it alone.
        login_file.write_text(login_file.read_text() + " ")
        again = run(script, env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert login_file.read_text().endswith(" ")

        without = run(script, env={k: v for k, v in env.items() if k != "PGPASSFILE"})
        assert without.returncode != 0
        assert "password" in without.stderr
