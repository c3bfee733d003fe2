"""``termfleet agent peripherals`` and ``agent self-test``: a technician's look at the USB side.

Both read the agent's config and drive the peripherals themselves, without the control plane:
on site, before or after enrolling. A running agent holds its peripherals, so on real hardware
stop it first (``systemctl stop termfleet-agent``); otherwise they show as ``no_access``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import options
from .output import print_rows

if TYPE_CHECKING:
    from firmware_bridge.bridge import PeripheralBridge

PERIPHERAL_COLUMNS = ("name", "kind", "state", "reason", "model", "firmware")


@click.command("peripherals")
@options.agent_config
@options.json_output
def peripherals(config_path: Path, as_json: bool) -> None:
    """List the peripherals the config names, as found on the USB bus now.

    Each is ok, degraded, fault or absent, with the reason (paper_out, not_found, …). The
    ids looked for are the config's [[usb_peripherals]], else the defaults for the kind.
    """
    bridge = _bridge(config_path)
    try:
        statuses = bridge.poll()
    finally:
        bridge.close()
    rows = [
        {
            "name": s.name,
            "kind": s.kind.value,
            "state": s.state.value,
            "reason": s.reason or None,
            "model": s.model or None,
            "firmware": s.firmware or None,
        }
        for s in statuses
    ]
    print_rows(rows, PERIPHERAL_COLUMNS, as_json=as_json)


@click.command("self-test")
@options.agent_config
@options.json_output
def self_test(config_path: Path, as_json: bool) -> None:
    """Run the commissioning checks here: a test print, a card read, the pad's keys and display.

    The same checks the agent reports after enrolling; place a test ID card on the reader
    first. Exits with status 1 when a check fails.
    """
    from edge.agent.peripherals import PeripheralMonitor
    from edge.protocol.commands import CHECK_PASSED

    bridge = _bridge(config_path)
    try:
        checks = PeripheralMonitor(bridge, lambda: datetime.now(UTC)).run_self_tests()
    finally:
        bridge.close()
    failed = sorted(check for check, outcome in checks.items() if outcome != CHECK_PASSED)
    if as_json:
        click.echo(json.dumps({"checks": checks, "failed": failed}, ensure_ascii=False, indent=2))
    else:
        for check, outcome in sorted(checks.items()):
            if outcome == CHECK_PASSED:
                click.echo(f"PASS  {check}")
            else:
                click.echo(f"FAIL  {check}  {outcome.removeprefix('fail: ')}")
        click.echo(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    if failed:
        raise SystemExit(1)


def _bridge(config_path: Path) -> PeripheralBridge:
    from edge.agent.config import ConfigError, load_config
    from edge.agent.peripheral_setup import build_bridge

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if config.peripherals == "none":
        msg = f'{config_path}: peripherals = "none"; set "usb" (or "simulated") to use any'
        raise click.ClickException(msg)
    try:
        return build_bridge(config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
