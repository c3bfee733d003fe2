"""``termfleet provision``: getting terminals into the fleet and out again.

Claim codes and pre-registration work on the database (``--database-url``) and need the
provisioning secret only to print the enrollment link, which carries the claim login's
password. Re-enrollment, retirement and reconcile change the broker as well, through its
admin login derived from the same secret.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from . import options, provision_broker, provision_ca, provision_devices
from .options import database_url
from .output import print_rows
from .provision_broker import run_provisioning, secret_file
from .provision_devices import through_api

T = TypeVar("T")
KINDS = ("kiosk", "review_pad", "station_pc", "booth")
API_MAX_EXPIRES_IN = 720
"""Hours: a code made through the API lives 30 days at most (``claim_store``, not imported)."""
TOKEN_COLUMNS = ["id", "prefix", "site", "batch", "kind", "uses", "max_uses", "expires_at", "state"]

public_broker_url = click.option(
    "--public-broker-url",
    metavar="URL",
    envvar="TERMFLEET_PUBLIC_BROKER_URL",
    required=True,
    help="The broker as terminals reach it: mqtts://host:8883 [env TERMFLEET_PUBLIC_BROKER_URL].",
)
expires_in = click.option(
    "--expires-in",
    type=click.IntRange(min=1),
    default=72,
    show_default=True,
    metavar="HOURS",
    help="How long the code can be used.",
)


@click.group()
def provision() -> None:
    """Enroll, commission, re-enroll and retire terminals; the broker's logins; TLS.

    A terminal enrolls with a claim code: `claims create` makes one for a site or a batch,
    `register` one per pre-registered serial. On the terminal, `termfleet agent enroll
    --claim CODE` exchanges it for the terminal's own broker login. The control plane must run
    with --secret-file to answer (termfleet server run).
    """


provision.add_command(provision_ca.ca)
provision.add_command(provision_broker.secret)
provision.add_command(provision_broker.broker_file)
provision.add_command(provision_broker.reconcile)
provision.add_command(provision_broker.retire)
provision.add_command(provision_broker.reenroll)
provision.add_command(provision_devices.status)
provision.add_command(provision_devices.selftest)
provision.add_command(provision_devices.accept)
provision.add_command(provision_devices.replace)


def claim_link(secret_path: Path, public_url: str, code: str) -> str:
    from edge.protocol import CLAIM_USERNAME
    from edge.protocol.claim_code import enroll_link
    from provisioning.credentials import SecretError, broker_password, load_secret

    try:
        password = broker_password(load_secret(secret_path), CLAIM_USERNAME)
        return enroll_link(code, public_url, password)
    except (SecretError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@provision.group()
def claims() -> None:
    """Claim codes for a site or a batch: several terminals until used up or expired."""


@claims.command("create")
@click.option("--site", metavar="CODE", help="Terminals enrolled with it are placed here.")
@click.option("--batch", default="", help="A name for a batch not bound to a site.")
@click.option("--kind", type=click.Choice(KINDS), help="Only terminals of this kind [any].")
@click.option("--uses", type=click.IntRange(1, 10_000), default=1, show_default=True)
@expires_in
@click.option("--note", default="", help="Why, for whom: kept with the code.")
@click.option(
    "--qr", type=click.Path(path_type=Path, dir_okay=False), help="Also write it as .png or .svg."
)
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TERMFLEET_SECRET_FILE",
    help="The provisioning secret, for the link [env TERMFLEET_SECRET_FILE]; not with --server.",
)
@click.option(
    "--public-broker-url",
    metavar="URL",
    envvar="TERMFLEET_PUBLIC_BROKER_URL",
    help="The broker as terminals reach it: mqtts://host:8883, for the link"
    " [env TERMFLEET_PUBLIC_BROKER_URL]; not with --server.",
)
@database_url
@through_api
@options.api_token
@options.json_output
def create(  # noqa: PLR0913 - one parameter per option
    site: str | None,
    batch: str,
    kind: str | None,
    uses: int,
    expires_in: int,
    note: str,
    qr: Path | None,
    secret_file: Path | None,
    public_broker_url: str | None,
    database_url: str,
    server: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Make a claim code and show it once, with its enrollment link as a QR code.

    With --server, for a site in the token's scope (batches: on the database only); the link
    comes from the server, if it runs with --secret-file.
    """
    if server is not None:
        if site is None or batch:
            msg = "through the API a claim code is for a --site (a batch's: on the database)"
            raise click.UsageError(msg)
        if expires_in > API_MAX_EXPIRES_IN:
            msg = f"through the API a code expires within {API_MAX_EXPIRES_IN} hours at most"
            raise click.UsageError(msg)
        wanted = {"kind": kind, "note": note or None}
        body = {"site": site, "uses": uses, "expires_in_hours": expires_in}
        body |= {name: value for name, value in wanted.items() if value}
        made = _through(server, token, "POST", "/api/v1/claims", body)
        _show_code(
            {"code": made["code"], "link": made["link"], **made["claim"]}, qr, as_json=as_json
        )
        return
    if secret_file is None or public_broker_url is None:
        msg = "--secret-file and --public-broker-url make the link: give both, or use --server"
        raise click.UsageError(msg)
    from control_plane.audit import local_actor
    from provisioning import claim_store, claim_views

    work = functools.partial(
        claim_store.create_token,
        local_actor(),
        site_code=site,
        batch=batch,
        kind=kind or "",
        max_uses=uses,
        expires_in=timedelta(hours=expires_in),
        note=note,
        now=datetime.now(UTC),
    )
    made = run_provisioning(database_url, work)
    link = claim_link(secret_file, public_broker_url, made.code)
    view = {"code": made.code, "link": link, **claim_views.token_view(made.token)}
    _show_code(view, qr, as_json=as_json)


def _through(
    server: str, token: str | None, method: str, path: str, body: dict[str, object] | None = None
) -> Any:  # noqa: ANN401 - the API's JSON
    from .api_calls import run

    return run(server, token, lambda api: api.request(method, path, body=body))


def _show_code(view: dict[str, Any], qr: Path | None, *, as_json: bool) -> None:
    from provisioning.qr import QrError, terminal_qr, write_qr

    if view["link"] is None and qr is not None:
        msg = "the server holds no provisioning secret, so there is no link to draw: give the code"
        raise click.ClickException(msg)
    if qr is not None:
        try:
            write_qr(view["link"], qr)
        except QrError as exc:
            raise click.ClickException(str(exc)) from None
        view["qr_file"] = str(qr)
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False, indent=2))
        return
    if view["link"] is not None:
        click.echo(terminal_qr(view["link"]))
    click.echo(f"claim code: {view['code']}")
    click.echo(f"link:       {view['link'] or '- (the server holds no provisioning secret)'}")
    if qr is not None:
        click.echo(f"QR code:    {qr}")
    click.echo(
        f"valid for {view['max_uses'] - view['uses']} terminal(s) until {view['expires_at']};"
        " shown once: the database keeps only its hash",
        err=True,
    )


@claims.command("list")
@database_url
@through_api
@options.api_token
@options.json_output
def list_(database_url: str, server: str | None, token: str | None, as_json: bool) -> None:
    """Claim codes, used, expired and revoked ones too (never the codes themselves).

    With --server: those of the sites in the token's scope.
    """
    if server is not None:
        from .api_calls import run

        found = run(server, token, lambda api: api.every_page("/api/v1/claims"))
        print_rows(found, TOKEN_COLUMNS, as_json=as_json)
        return
    from provisioning import claim_views

    rows = run_provisioning(database_url, claim_views.list_tokens)
    print_rows(rows, TOKEN_COLUMNS, as_json=as_json)


@claims.command("revoke")
@click.argument("token_id", type=int)
@database_url
@through_api
@options.api_token
def revoke(token_id: int, database_url: str, server: str | None, token: str | None) -> None:
    """Revoke a claim code by its id (from `claims list`); terminals enrolled stay enrolled."""
    if server is not None:
        _through(server, token, "POST", f"/api/v1/claims/{token_id}/revoke")
        click.echo(f"revoked claim token {token_id}", err=True)
        return
    from control_plane.audit import local_actor
    from provisioning import claim_store

    work = functools.partial(claim_store.revoke_token, local_actor(), token_id, datetime.now(UTC))
    run_provisioning(database_url, work)
    click.echo(f"revoked claim token {token_id}", err=True)


@provision.command("register")
@click.argument("csv_file", type=click.File(encoding="utf-8-sig"))
@expires_in
@click.option(
    "--qr-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write one QR code per terminal here, named by device id (.png).",
)
@secret_file
@public_broker_url
@database_url
@options.json_output
def register(  # noqa: PLR0913 - one parameter per option
    csv_file: TextIO,
    expires_in: int,
    qr_dir: Path | None,
    secret_file: Path,
    public_broker_url: str,
    database_url: str,
    as_json: bool,
) -> None:
    """Pre-register terminals from CSV (serial,kind,site[,window]); one code each, shown once.

    All rows or none: a row naming an unknown site or window, or a serial already known,
    refuses the file. The codes are printed as CSV (device_id,serial,code,link) or JSON.
    """
    from control_plane.audit import local_actor
    from provisioning import claim_store
    from provisioning.qr import write_qr

    rows = list(_registrations(csv_file))
    work = functools.partial(
        claim_store.pre_register,
        local_actor(),
        rows,
        expires_in=timedelta(hours=expires_in),
        now=datetime.now(UTC),
    )
    made = run_provisioning(database_url, work)
    out = []
    for (device_id, new), row in zip(made, rows, strict=True):
        link = claim_link(secret_file, public_broker_url, new.code)
        if qr_dir is not None:
            write_qr(link, qr_dir / f"{device_id}.png")
        out.append({"device_id": device_id, "serial": row.serial, "code": new.code, "link": link})
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    writer = csv.DictWriter(sys.stdout, ["device_id", "serial", "code", "link"])
    writer.writeheader()
    writer.writerows(out)
    click.echo(f"registered {len(out)} terminal(s); codes shown once", err=True)


def _registrations(csv_file: TextIO) -> list[Any]:
    from provisioning.claim_store import Registration

    reader = csv.DictReader(csv_file)
    missing = {"serial", "kind", "site"} - set(reader.fieldnames or ())
    if missing:
        msg = (
            f"the CSV needs the columns serial, kind, site (and window); missing: {sorted(missing)}"
        )
        raise click.ClickException(msg)
    rows = []
    for number, row in enumerate(reader, start=2):
        serial, kind, site = (row.get(k, "").strip() for k in ("serial", "kind", "site"))
        if not serial or not kind or not site:
            msg = f"line {number}: serial, kind and site must not be empty"
            raise click.ClickException(msg)
        if kind not in KINDS:
            msg = f"line {number}: kind {kind!r} is not one of {', '.join(KINDS)}"
            raise click.ClickException(msg)
        window = (row.get("window") or "").strip()
        rows.append(Registration(serial, kind, site, window))
    if len({r.serial for r in rows}) != len(rows):
        msg = "a serial appears twice in the CSV"
        raise click.ClickException(msg)
    return rows
