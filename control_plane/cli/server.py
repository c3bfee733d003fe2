"""``termfleet server``: the control-plane process."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from control_plane.fleet import DEFAULT_HEARTBEAT_TIMEOUT_S
from edge.mqtt import BrokerAddress

from . import options

if TYPE_CHECKING:
    from control_plane.content_repo import ContentSettings
    from control_plane.reviews.score_rule import ScoreRule

MIB = 1024 * 1024
DEFAULT_MAX_UPLOAD_MIB = 2112
"""content_repo.DEFAULT_MAX_UPLOAD_BYTES in MiB (not imported: `--help` stays light)."""


@click.group()
def server() -> None:
    """The control plane: MQTT ingest, database, REST API and /metrics."""


@server.command("run")
@options.database_url
@options.mqtt_url
@click.option("--http-host", default="127.0.0.1", show_default=True, envvar="TERMFLEET_HTTP_HOST")
@click.option(
    "--http-port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    envvar="TERMFLEET_HTTP_PORT",
)
@click.option(
    "--client-id",
    default="",
    help="MQTT client id of the ingest; unique per replica (default: termfleet-cp-HOSTNAME).",
)
@click.option(
    "--heartbeat-timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_HEARTBEAT_TIMEOUT_S,
    show_default=True,
    help="Seconds of silence after which an online terminal counts as offline (silent).",
)
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TERMFLEET_SECRET_FILE",
    help="The provisioning secret (termfleet provision secret init): with it the control plane"
    " logs in to the broker as itself, answers enrolling terminals and keeps the broker's"
    " logins in step with the database [env TERMFLEET_SECRET_FILE].",
)
@click.option(
    "--rollouts/--no-rollouts",
    default=True,
    show_default=True,
    envvar="TERMFLEET_ROLLOUTS",
    help="Take part in driving the rollouts: the replica holding the database's rollout lock"
    " drives them, the others forward their rollouts API to it and take over when it is gone."
    " --no-rollouts never drives, and still forwards [env TERMFLEET_ROLLOUTS].",
)
@click.option(
    "--peer-url",
    envvar="TERMFLEET_PEER_URL",
    metavar="URL",
    help="The URL the other replicas reach this one's HTTP server at, to forward rollout"
    " requests to it while it drives them (at most 44 characters)"
    " [default: http://HTTP_HOST:HTTP_PORT, the host's name when listening on every address;"
    " env TERMFLEET_PEER_URL].",
)
@click.option(
    "--ingest-session-expiry",
    type=click.IntRange(min=0),
    default=600,
    show_default=True,
    envvar="TERMFLEET_INGEST_SESSION_EXPIRY",
    help="Seconds the broker keeps the ingest's session (and queues its share of the uplink)"
    " after this replica is gone. Keep the default for a single control plane, so that a restart"
    " resumes; use 0 when several replicas share the uplink, so that the others take a dead"
    " one's share at once [env TERMFLEET_INGEST_SESSION_EXPIRY].",
)
@click.option(
    "--public-url",
    envvar="TERMFLEET_PUBLIC_URL",
    help="The URL terminals reach this server's HTTP port at; package download URLs in"
    " rollouts start with it [default: http://HTTP-HOST:HTTP-PORT; env TERMFLEET_PUBLIC_URL].",
)
@click.option(
    "--public-broker-url",
    metavar="URL",
    envvar="TERMFLEET_PUBLIC_BROKER_URL",
    help="The broker as terminals reach it, told to each at enrollment [default: --mqtt-url]"
    " [env TERMFLEET_PUBLIC_BROKER_URL].",
)
@click.option(
    "--broker-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TERMFLEET_BROKER_FILE",
    help="The broker's dynamic-security file, if readable here: checked after each reconcile"
    " to catch a broker that cannot save it [env TERMFLEET_BROKER_FILE].",
)
@click.option(
    "--content-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="TERMFLEET_CONTENT_DIR",
    help="Where uploaded packages are kept, as SHA256.tfpkg [default: `content` beside the"
    " SQLite file, or in the current directory] [env TERMFLEET_CONTENT_DIR].",
)
@click.option(
    "--content-key",
    "content_keys",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    multiple=True,
    envvar="TERMFLEET_CONTENT_KEYS",
    help="A public key (NAME.pub, `termfleet content keygen`) whose packages uploads may be"
    " signed with; repeat it to trust several. Without one every upload is refused"
    " [env TERMFLEET_CONTENT_KEYS: files separated by colons].",
)
@click.option(
    "--content-max-mib",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_UPLOAD_MIB,
    show_default=True,
    envvar="TERMFLEET_CONTENT_MAX_MIB",
    help="The largest package upload taken, in MiB; a larger one is refused with 413.",
)
@options.calendar_files
@click.option(
    "--score-rule",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar="TERMFLEET_SCORE_RULE",
    help="A 好差评 score rule file (docs/scores.md): points per rating on the 10-point scale and"
    " the fewest reviews to be ranked [default: 10/8/6/4/2, ranked from 10 reviews]"
    " [env TERMFLEET_SCORE_RULE].",
)
def run(  # noqa: PLR0913 - one parameter per option
    database_url: str,
    broker: BrokerAddress,
    http_host: str,
    http_port: int,
    client_id: str,
    heartbeat_timeout: float,
    secret_file: Path | None,
    rollouts: bool,
    peer_url: str | None,
    ingest_session_expiry: int,
    public_url: str | None,
    public_broker_url: str | None,
    broker_file: Path | None,
    content_dir: Path | None,
    content_keys: tuple[Path, ...],
    content_max_mib: int,
    calendar_files: tuple[Path, ...],
    score_rule: Path | None,
) -> None:
    """Run the control plane until SIGINT or SIGTERM.

    Packages uploaded to /api/v1/packages are verified with the --content-key public keys and
    kept in --content-dir; terminals download them at URLs signed with a key derived from the
    provisioning secret, so downloads need --secret-file.
    """
    from control_plane.db import DatabaseError
    from control_plane.server import ServerError, ServerSettings
    from control_plane.server import run as run_server

    content = _content_settings(database_url, content_dir, content_keys, content_max_mib)
    provisioning = None
    if secret_file is not None:
        from edge.content.signing import public_key_text
        from provisioning.settings import provisioning_settings

        try:
            provisioning = provisioning_settings(
                secret_file,
                broker,
                public_broker_url=public_broker_url,
                dynsec_file=broker_file,
                # Terminals that enroll trust the keys uploads are checked with.
                content_keys=[public_key_text(key) for key in content.trusted.values()],
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        settings = ServerSettings(
            database_url,
            broker,
            http_host,
            http_port,
            client_id,
            heartbeat_timeout,
            provisioning=provisioning,
            content=content,
            public_url=(public_url or "").rstrip("/"),
            rollouts=rollouts,
            peer_url=(peer_url or "").rstrip("/"),
            ingest_session_expiry_s=ingest_session_expiry,
            calendar=options.load_calendar(calendar_files),
            score_rule=_score_rule(score_rule),
        )
        run_server(settings)
    except (DatabaseError, ServerError) as exc:
        raise click.ClickException(str(exc)) from None


def _content_settings(
    database_url: str, directory: Path | None, key_files: tuple[Path, ...], max_mib: int
) -> ContentSettings:
    from control_plane.content_repo import (
        ContentSettings,
        default_content_dir,
    )
    from edge.content.signing import ContentKeyError, read_trusted_keys

    directory = directory or default_content_dir(database_url)
    try:
        trusted = read_trusted_keys(key_files)
        directory.mkdir(parents=True, exist_ok=True)
    except (ContentKeyError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    return ContentSettings(directory, trusted, max_upload_bytes=max_mib * MIB)


def _score_rule(path: Path | None) -> ScoreRule:
    from control_plane.reviews.score_rule import DEFAULT_RULE, ScoreRuleError, load_score_rule

    if path is None:
        return DEFAULT_RULE
    try:
        return load_score_rule(path)
    except (ScoreRuleError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
