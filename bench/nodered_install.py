"""Node-RED for ``bench/nodered.py``: ``npm ci`` of ``bench/nodered/`` into a cache directory.

The versions are pinned by ``bench/nodered/package-lock.json``; the install lives outside the
repository, in ``$XDG_CACHE_HOME`` (or ``~/.cache``) under ``termfleet-bench/nodered-<hash of the
lock>``, and is made on first use, so a fresh machine needs only Node.js and npm. The SQLite node
(``node-red-node-sqlite``) needs the native ``sqlite3`` module, which is always built from source
here (its bundled SQLite, with the machine's compiler): its prebuilt binaries come from a host a
benchmark machine may not reach, and a build does not depend on one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLOW_DIR = Path(__file__).with_name("nodered")
"""package.json, package-lock.json, flows.json and settings.js."""
INSTALL_TIMEOUT_S = 30 * 60
"""npm ci compiles SQLite from source: about 5 minutes on two busy cores."""
DONE_MARKER = ".termfleet-installed"


class NodeRedUnavailableError(RuntimeError):
    """Node.js or npm is missing, or the install failed; the message says which and why."""


@dataclass(frozen=True)
class NodeRedInstall:
    root: Path
    """The directory holding node_modules."""
    node: str
    """The node binary."""

    @property
    def red_js(self) -> Path:
        return self.root / "node_modules" / "node-red" / "red.js"

    def versions(self) -> dict[str, str]:
        """Node.js, Node-RED, the SQLite node, the sqlite3 module and the SQLite library."""
        script = "process.stdout.write(require('sqlite3').VERSION)"
        sqlite = subprocess.run(  # noqa: S603 - argv built here, no shell
            [self.node, "-e", script], cwd=self.root, capture_output=True, text=True, check=False
        )
        node = subprocess.run(  # noqa: S603
            [self.node, "--version"], capture_output=True, text=True, check=False
        )
        return {
            "node": node.stdout.strip().removeprefix("v"),
            "node-red": self._package_version("node-red"),
            "node-red-node-sqlite": self._package_version("node-red-node-sqlite"),
            "sqlite3 (npm)": self._package_version("sqlite3"),
            "SQLite": sqlite.stdout.strip() or "?",
        }

    def _package_version(self, name: str) -> str:
        manifest = self.root / "node_modules" / name / "package.json"
        version: str = json.loads(manifest.read_text())["version"]
        return version


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "termfleet-bench"


def install_dir() -> Path:
    """Where this lock's install lives: a changed lock gets a fresh directory."""
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((FLOW_DIR / name).read_bytes())
    return cache_dir() / f"nodered-{digest.hexdigest()[:16]}"


def ensure_installed() -> NodeRedInstall:
    """The cached install, made now if missing; raises NodeRedUnavailableError if it cannot be."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        msg = "Node.js and npm are not installed (Debian: apt-get install nodejs npm)"
        raise NodeRedUnavailableError(msg)
    target = install_dir()
    if not (target / DONE_MARKER).exists():
        _npm_ci(npm, target)
    return NodeRedInstall(target, node)


def _npm_ci(npm: str, target: Path) -> None:
    """Install into a scratch directory beside ``target``, then move it into place whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(FLOW_DIR / name, scratch / name)
        # prebuild-install reads this and skips its download; node-gyp then builds sqlite3.
        env = {**os.environ, "npm_config_build_from_source": "true"}
        argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            done = subprocess.run(  # noqa: S603 - argv built here, no shell
                argv, cwd=scratch, env=env, capture_output=True, text=True,
                timeout=INSTALL_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            msg = f"npm ci of Node-RED did not finish within {INSTALL_TIMEOUT_S} s"
            raise NodeRedUnavailableError(msg) from exc
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            msg = f"npm ci of Node-RED failed ({done.returncode}):\n{tail}"
            raise NodeRedUnavailableError(msg)
        (scratch / DONE_MARKER).write_text("npm ci done\n")
        try:
            scratch.rename(target)
        except OSError:
            # Another run finished the same install first; theirs is as good as ours.
            if not (target / DONE_MARKER).exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    install = ensure_installed()
    print(install.root)
    print(install.versions())
