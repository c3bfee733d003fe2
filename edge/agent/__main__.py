"""``python -m edge.agent --config FILE``: the edge agent alone, without the ``termfleet`` CLI.

The same agent as ``termfleet agent run`` (same start-up, options, environment variables, log
format and exit codes) in less memory: it loads neither click nor the control plane's commands,
which a terminal never uses.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .startup import StartError, build_agent, run_until_signalled

LOG_LEVELS = ("debug", "info", "warning", "error")
CONFIG_ENV = "TERMFLEET_AGENT_CONFIG"
LOG_LEVEL_ENV = "TERMFLEET_LOG_LEVEL"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_ERROR = 1
"""What ``termfleet`` exits with on an error it reports (click's ClickException)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m edge.agent",
        description="Run the termfleet edge agent until SIGINT or SIGTERM.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        default=os.environ.get(CONFIG_ENV),
        required=CONFIG_ENV not in os.environ,
        help=f"The agent's TOML config (written by provisioning) [env {CONFIG_ENV}].",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=os.environ.get(LOG_LEVEL_ENV, "info"),
        help=f"How much to log to stderr (default: info) [env {LOG_LEVEL_ENV}].",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        agent = build_agent(args.config)
    except StartError as exc:
        print(f"Error: {exc}", file=sys.stderr)  # noqa: T201 - the command's error report
        return EXIT_ERROR
    run_until_signalled(agent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
