"""``termfleet monitoring``: put the dashboards-as-code into a live Grafana.

``publish`` upserts the Prometheus datasource, the termfleet folder and every dashboard file
through Grafana's HTTP API (``monitoring.publish``; docs/grafana-publish.md), writing only what
differs. Its exit status tells scripts what went wrong (``EXIT_CODES``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from edge import __version__

# Standard library only; grafana-client (monitoring.publish_grafana) loads when publish runs,
# so `--help` stays fast.
from monitoring.publish import (
    Bundle,
    DashboardFileError,
    DatasourceSpec,
    GrafanaAuthError,
    GrafanaConflictError,
    GrafanaRefusedError,
    GrafanaUnreachableError,
    PublishError,
    Step,
    apply,
    counts,
    plan,
)
from monitoring.publish_files import DASHBOARDS_DIR, load_dashboards

from . import options
from .output import print_rows

if TYPE_CHECKING:
    from monitoring.publish_grafana import GrafanaHttp

TOKEN_ENV = "TERMFLEET_GRAFANA_TOKEN"  # noqa: S105 - the variable's name, not a token
EXIT_CODES: dict[type[PublishError], int] = {
    GrafanaRefusedError: 1,
    DashboardFileError: 3,
    GrafanaUnreachableError: 4,
    GrafanaAuthError: 5,
    GrafanaConflictError: 6,
}
"""Exit status per error; 0 is success and 2 a usage error (click's). docs/grafana-publish.md
lists them."""
COLUMNS = ["kind", "uid", "title", "action", "changes"]


@click.group()
def monitoring() -> None:
    """Grafana dashboards as code: publish them to a live Grafana."""


def _http_url(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{value!r} is not an http:// or https:// URL with a host"
        raise click.BadParameter(msg, param=param)
    return value


@monitoring.command("publish")
@click.option(
    "--grafana-url",
    required=True,
    metavar="URL",
    envvar="TERMFLEET_GRAFANA_URL",
    callback=_http_url,
    help="Grafana's base URL, e.g. https://grafana.example.org [env TERMFLEET_GRAFANA_URL].",
)
@click.option(
    "--token",
    metavar="TOKEN",
    envvar=TOKEN_ENV,
    help=f"A Grafana service-account token; prefer the environment or --token-file, which `ps`"
    f" does not show [env {TOKEN_ENV}].",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A file holding the token (it wins over the environment).",
)
@click.option(
    "--prometheus-url",
    metavar="URL",
    callback=_http_url,
    help="Where Grafana's server reaches Prometheus. Default: keep the live datasource's URL;"
    " a new datasource gets docker compose's http://prometheus:9090.",
)
@click.option(
    "--dashboards",
    "dashboards_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DASHBOARDS_DIR,
    show_default="monitoring/grafana/dashboards",
    help="The directory of dashboard JSON files to publish (every *.json).",
)
@click.option(
    "--no-datasource",
    is_flag=True,
    help="Leave datasources alone (an Editor token is then enough).",
)
@click.option("--dry-run", is_flag=True, help="Read Grafana and report what would change.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each answer from Grafana.",
)
@options.json_output
def publish(  # noqa: PLR0913 - one parameter per option
    grafana_url: str,
    token: str | None,
    token_file: Path | None,
    prometheus_url: str | None,
    dashboards_dir: Path,
    no_datasource: bool,
    dry_run: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Upsert the Prometheus datasource, the termfleet folder and the dashboards into Grafana.

    Every dashboard file is checked before anything is written. Each object is compared with
    what Grafana holds and written only when it differs, so a second run reports everything
    unchanged and writes nothing. Progress goes to stderr, the summary to stdout. Exit status:
    0 done (or nothing to do), 1 Grafana refused a request, 2 bad usage, 3 a dashboard file is
    unusable (nothing written), 4 Grafana unreachable, 5 token refused (401) or lacking a
    permission (403), 6 conflict (409/412). See docs/grafana-publish.md.
    """
    secret = _token(token, token_file)
    done: list[Step] = []
    try:
        bundle = Bundle(
            dashboards=load_dashboards(dashboards_dir),
            datasource=None if no_datasource else DatasourceSpec(),
            prometheus_url=prometheus_url,
            message=f"termfleet {__version__}: termfleet monitoring publish",
        )
        from monitoring.publish_grafana import GrafanaHttp

        grafana = GrafanaHttp(grafana_url, secret, timeout=timeout)
        result = _publish(grafana, bundle, dry_run=dry_run, done=done)
    except PublishError as exc:
        code = EXIT_CODES.get(type(exc), 1)
        if as_json:
            items = [step.to_dict() for step in done]
            click.echo(json.dumps({"error": str(exc), "exit_code": code, "items": items}))
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(code) from None
    _report(result, dry_run=dry_run, as_json=as_json)


def _token(token: str | None, token_file: Path | None) -> str:
    context = click.get_current_context()
    from_command_line = (
        context.get_parameter_source("token") == click.core.ParameterSource.COMMANDLINE
    )
    if token_file is not None:
        if from_command_line:
            msg = "give --token or --token-file, not both"
            raise click.UsageError(msg)
        try:
            token = token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"--token-file {token_file}: cannot read a token from it ({exc})"
            raise click.UsageError(msg) from None
    if token is None or not token.strip():
        msg = (
            f"no Grafana token: set {TOKEN_ENV} or pass --token-file F (a service-account"
            " token, docs/grafana-publish.md)"
        )
        raise click.UsageError(msg)
    return token.strip()


def _publish(
    grafana: GrafanaHttp, bundle: Bundle, *, dry_run: bool, done: list[Step]
) -> dict[str, Any]:
    version = grafana.version()
    click.echo(f"Grafana {version} at {grafana.url}", err=True)
    steps = plan(grafana, bundle)

    def progress(step: Step) -> None:
        done.append(step)
        action = f"would be {step.action}" if dry_run and step.body else str(step.action)
        changes = f" ({', '.join(step.changes)})" if step.changes else ""
        source = f" [{step.source}]" if step.source else ""
        click.echo(f"{step.kind} {step.uid}{source}: {action}{changes}", err=True)

    if dry_run:
        for step in steps:
            progress(step)
    else:
        apply(grafana, steps, progress)
    return {
        "grafana": {"url": grafana.url, "version": version},
        "dry_run": dry_run,
        "message": bundle.message,
        "items": [step.to_dict() for step in steps],
        "counts": counts(steps),
    }


def _report(result: dict[str, Any], *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    rows = [{**item, "changes": ", ".join(item["changes"]) or None} for item in result["items"]]
    print_rows(rows, COLUMNS, as_json=False)
    totals = dict.fromkeys(("created", "updated", "unchanged"), 0)
    for per_kind in result["counts"].values():
        for action, count in per_kind.items():
            totals[action] += count
    summary = ", ".join(f"{count} {action}" for action, count in totals.items())
    suffix = " (dry run: nothing was written)" if dry_run else ""
    click.echo(f"{summary}{suffix}", err=True)
