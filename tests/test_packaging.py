"""The wheel, as `pip install .` and the Docker image build it, holds what the code needs.

The wheel is built from a copy of the tree as git sees it (tracked files, and new files that are
not ignored), so the build leaves no build/ or *.egg-info behind in the repository.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_S = 240
"""pip wheel takes seconds, more when its build isolation first fetches setuptools."""
RUN_TIMEOUT_S = 60

# The data files the code reads with importlib.resources at run time, and who reads them.
RUNTIME_DATA = {
    "control_plane/services/mosquitto.d/termfleet.conf": "broker.write_config, for every broker",
    "edge/simulator/data/conghua.json": "the simulator's and the demo's district",
    "control_plane/reviews/data/cn-2026.toml": "the working-day calendar of work-order deadlines",
    "monitoring/prometheus/rules/fleet.yml": "the demo's Prometheus (services/prometheus.py)",
    "monitoring/grafana/dashboards/fleet-overview.json": "termfleet monitoring publish",
}
# The folders those readers list: every file in them must ship, not just the ones named above.
RESOURCE_DIRS = (
    "control_plane/services/mosquitto.d",
    "edge/simulator/data",
    "control_plane/reviews/data",
    "monitoring/prometheus/rules",
    "monitoring/grafana/dashboards",
)
CONSOLE_SCRIPT = ("termfleet", "control_plane.cli:main")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 2 * RUN_TIMEOUT_S)]


def source_files() -> list[str]:
    """The repository's files as git sees them, relative to the root."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=RUN_TIMEOUT_S,
    )
    if listed.returncode != 0:
        pytest.fail(
            f"git ls-files failed in {ROOT} (the test builds what git sees):\n{listed.stderr}"
        )
    return [name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    tree = tmp_path_factory.mktemp("tree")
    for name in source_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    dist = tmp_path_factory.mktemp("dist")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip_wheel, "--quiet", "--wheel-dir", str(dist), str(tree)],
        capture_output=True,
        text=True,
        check=False,
        timeout=BUILD_TIMEOUT_S,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = dist.glob("termfleet-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_holds_every_data_file_the_code_reads(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = {path: reader for path, reader in RUNTIME_DATA.items() if path not in names}
    assert not missing, f"the wheel lacks data files (see package-data in pyproject): {missing}"
    in_resource_dirs = {
        n for n in source_files() if n.startswith(tuple(f"{d}/" for d in RESOURCE_DIRS))
    }
    assert set(RUNTIME_DATA) <= in_resource_dirs, "RUNTIME_DATA names a file that does not exist"
    assert in_resource_dirs <= names, f"not in the wheel: {sorted(in_resource_dirs - names)}"


def test_wheel_declares_the_termfleet_command(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = (n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    name, target = CONSOLE_SCRIPT
    assert parser.has_section("console_scripts"), entry_points
    assert parser.get("console_scripts", name, fallback=None) == target


def test_code_installed_from_the_wheel_finds_its_data(
    wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    """The code paths `termfleet demo` takes first, importing only from the unpacked wheel."""
    site = tmp_path / "site"
    wheel.extractall(site)
    workdir = tmp_path / "broker"
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        import control_plane, edge
        from control_plane.services.broker import BrokerSettings, write_config
        from edge.simulator.district import available_districts, terminals
        from monitoring.publish_files import DASHBOARDS_DIR, load_dashboards
        from control_plane.services.prometheus import alert_rules_dir
        write_config(BrokerSettings(workdir=Path({str(workdir)!r}), port=1883))
        print(json.dumps({{
            "imported_from": [control_plane.__file__, edge.__file__],
            "districts": available_districts(),
            "terminals": len(terminals("conghua")),
            "dashboards": len(load_dashboards(DASHBOARDS_DIR)),
            "rule_files": len(list(alert_rules_dir().glob("*.yml"))),
        }}))
        """
    )
    # PYTHONPATH comes before site-packages, where the editable install of the repo would answer.
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=RUN_TIMEOUT_S,
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert all(Path(f).is_relative_to(site) for f in report["imported_from"]), report
    assert "conghua" in report["districts"]
    assert report["terminals"] > 0
    assert report["dashboards"] == len(list(ROOT.glob("monitoring/grafana/dashboards/*.json")))
    assert report["rule_files"] == len(list(ROOT.glob("monitoring/prometheus/rules/*.yml")))
    assert (workdir / "conf.d" / "termfleet.conf").is_file()
