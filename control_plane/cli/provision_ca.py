"""``termfleet provision ca``: a private CA for the broker's TLS listener, and client certificates.

The work is in ``provisioning.ca``, imported when a command runs: it loads ``cryptography``,
which ``--help`` and every other command can do without.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import click

from . import options

# Loopback for the demo and the tests, and the docker compose service name (docker-compose.yml's
# "broker"), by which the control plane and the simulator reach the broker inside compose.
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1", "broker")
DEFAULT_CA_NAME = "termfleet broker CA"
# As provisioning.ca's, spelled out so that `--help` imports no cryptography.
DEFAULT_SERVER_DAYS = 825
DEFAULT_CLIENT_DAYS = 825
TLS_PORT = 8883

ca_directory = click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The CA's directory: ca.pem, ca.key, server.pem, server.key.",
)
force = click.option("--force", is_flag=True, help="Replace files that already exist.")


@click.group()
def ca() -> None:
    """A private CA for the broker's TLS listener (MQTT over TLS on port 8883).

    `init` makes the CA and the broker's server certificate; `client` signs a certificate for
    one terminal, for a broker that asks for client certificates. Setting up Mosquitto and the
    agents: docs/tls.md.
    """


@ca.command("init")
@ca_directory
@click.option(
    "--name",
    "names",
    multiple=True,
    default=DEFAULT_SERVER_NAMES,
    show_default=True,
    metavar="NAME",
    help="A DNS name or IP address clients reach the broker by; repeat for each.",
)
@click.option("--ca-name", default=DEFAULT_CA_NAME, show_default=True, help="The CA's CN.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=DEFAULT_SERVER_DAYS,
    show_default=True,
    help="How long the server certificate is valid (the CA: ten years).",
)
@force
@options.json_output
def init(  # noqa: PLR0913 - one parameter per option
    directory: Path, names: tuple[str, ...], ca_name: str, days: int, force: bool, as_json: bool
) -> None:
    """Make a CA and a server certificate for the broker signed by it.

    Refuses to replace existing files without --force. The keys are written readable by their
    owner only; ca.key signs client certificates and belongs nowhere near the broker.
    """
    from provisioning import ca as ca_lib

    with _errors_as_click():
        files = ca_lib.init_ca(
            directory, common_name=ca_name, server_names=names, days_server=days, force=force
        )
        server = ca_lib.describe(files.server_cert)
        authority = ca_lib.describe(files.ca_cert)
    if as_json:
        click.echo(json.dumps({"files": files.to_dict(), "ca": authority, "server": server}))
        return
    click.echo(f"wrote {files.ca_cert} (the CA certificate: every client trusts it)")
    click.echo(f"wrote {files.ca_key} (the CA key, 0600: keep it off the broker)")
    click.echo(
        f"wrote {files.server_cert} (for {', '.join(server['names'])},"
        f" valid until {server['not_after']}; the CA follows it)"
    )
    click.echo(f"wrote {files.server_key} (the server key, 0600: readable by the broker's user)")
    click.echo("\nIn mosquitto.conf, with paths as the broker sees them (docs/tls.md):\n")
    for line in (
        f"listener {TLS_PORT}",
        f"cafile {files.ca_cert.resolve()}",
        f"certfile {files.server_cert.resolve()}",
        f"keyfile {files.server_key.resolve()}",
    ):
        click.echo(f"  {line}")
    click.echo(
        f'\nIn each agent\'s config: broker.url = "mqtts://HOST:{TLS_PORT}"'
        f' and broker.ca_file = "{files.ca_cert.resolve()}"'
    )


@ca.command("client")
@ca_directory
@click.option("--device-id", required=True, help="The terminal's device id: the certificate's CN.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write DEVICE_ID.pem and DEVICE_ID.key.",
)
@click.option("--days", type=click.IntRange(min=1), default=DEFAULT_CLIENT_DAYS, show_default=True)
@force
@options.json_output
def client(  # noqa: PLR0913 - one parameter per option
    directory: Path, device_id: str, out_dir: Path, days: int, force: bool, as_json: bool
) -> None:
    """Sign a client certificate (clientAuth) for one terminal with the CA in --dir.

    For a broker with `require_certificate true`; with `use_identity_as_username true` the
    device id in the certificate becomes the broker username. Retiring such a terminal must
    delete its broker client, not only disable it (docs/tls.md).
    """
    from provisioning import ca as ca_lib

    with _errors_as_click():
        files = ca_lib.issue_client_certificate(
            directory, device_id, out_dir, days=days, force=force
        )
        certificate = ca_lib.describe(files.cert)
    if as_json:
        click.echo(json.dumps({"files": files.to_dict(), "certificate": certificate}))
        return
    click.echo(f"wrote {files.cert} ({certificate['subject']}, until {certificate['not_after']})")
    click.echo(f"wrote {files.key} (0600: copy it to the terminal only)")


@contextlib.contextmanager
def _errors_as_click() -> Iterator[None]:
    """The library's errors as click's, which print the message without a traceback."""
    from provisioning.ca import CaError

    try:
        yield
    except CaError as exc:
        raise click.ClickException(str(exc)) from None
