"""Write the dashboards' JSON: ``python -m monitoring.grafana.build [--check] [--out DIR]``.

The JSON in ``monitoring/grafana/dashboards/`` is committed and provisioned to Grafana as it
is; ``--check`` exits 1 naming every file that differs from what the code generates (CI and
``tests/test_dashboards.py`` fail on drift).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from .fleet import fleet_overview, site_drill_down
from .operations import control_plane_health, rollouts
from .usage import reviews, service_usage

DASHBOARDS_DIR = Path(__file__).parent / "dashboards"
DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "fleet-overview.json": fleet_overview,
    "site.json": site_drill_down,
    "service-usage.json": service_usage,
    "reviews.json": reviews,
    "rollouts.json": rollouts,
    "control-plane.json": control_plane_health,
}
"""Every dashboard by the file it is committed as."""


def render(make: Callable[[], dashboard.Dashboard]) -> str:
    """A dashboard's JSON as committed: sorted keys, Chinese kept readable, a final newline."""
    text = json.dumps(make().build(), cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False)
    return text + "\n"


def generated() -> dict[str, str]:
    """Every dashboard's file name and the JSON the code generates for it."""
    return {name: render(make) for name, make in DASHBOARDS.items()}


def models() -> dict[str, dict[str, Any]]:
    """Every dashboard as the JSON model Grafana reads, by file name."""
    return {name: json.loads(text) for name, text in generated().items()}


def differences(directory: Path) -> list[str]:
    """Files in ``directory`` that differ from the generated ones, are missing, or are extra."""
    wanted = generated()
    present = {p.name for p in directory.glob("*.json")}
    differ = [
        name
        for name, text in wanted.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted(differ + [f"{name} (not generated)" for name in present - wanted.keys()])


def write(directory: Path) -> list[str]:
    """Write every dashboard into ``directory``; the names of the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in generated().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.grafana.build", description=__doc__)
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="the dashboards directory")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file differs"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = differences(args.out)
        if stale:
            sys.stderr.write(
                f"dashboards out of date in {args.out}: {', '.join(stale)}\n"
                "regenerate with: python -m monitoring.grafana.build\n"
            )
            return 1
        sys.stdout.write(f"{len(DASHBOARDS)} dashboards up to date\n")
        return 0
    changed = write(args.out)
    sys.stdout.write(f"wrote {len(changed)} of {len(DASHBOARDS)} dashboards to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
