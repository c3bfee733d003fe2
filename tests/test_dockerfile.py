"""The Dockerfile and .dockerignore, read (no Docker engine runs here to build them).

One file, two targets: the control plane (which docker-compose.yml builds) and the edge agent.
Both run as a user of their own, from a pinned base, with nothing of the build stage but the
installed package; the build context carries no keys and everything `pip install .` needs.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.support.compose import DOCKERFILE, ROOT

PINNED_PYTHON = re.compile(r"python:\d+\.\d+\.\d+-slim-\w+")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        found = [args for word, args in self.instructions if word == keyword]
        return found[-1] if found else None

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and ARGs expanded."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    joined = re.sub(r"\\\n", " ", text)
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            base, _, name = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], rest).partition(" AS ")
            stages.append(Stage(base.strip(), name.strip()))
        else:
            assert stages, f"{word} before the first FROM"
            stages[-1].instructions.append((word, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    return {stage.name: stage for stage in parsed}


def exec_form(args: str | None) -> list[str]:
    assert args is not None
    value = json.loads(args)
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_the_parser_reads_stages_args_and_continuations() -> None:
    args, parsed = parse_dockerfile(
        "ARG BASE=python:3.11.10-slim-bookworm\nFROM ${BASE} AS one\n"
        "RUN a \\\n    && b\nFROM one AS two\nUSER x\n"
    )
    assert args == {"BASE": "python:3.11.10-slim-bookworm"}
    assert [(s.base, s.name) for s in parsed] == [
        ("python:3.11.10-slim-bookworm", "one"),
        ("one", "two"),
    ]
    assert parsed[0].instructions == [("RUN", "a      && b")]


def test_one_file_builds_the_control_plane_and_the_agent(stages: dict[str, Stage]) -> None:
    assert {"control-plane", "agent"} <= set(stages)
    assert list(stages)[-1] == "control-plane", "a plain `docker build .` makes the control plane"
    for name in ("control-plane", "agent"):
        chain, stage = [], stages[name]
        while stage.base in stages:
            chain.append(stage.base)
            stage = stages[stage.base]
        assert PINNED_PYTHON.fullmatch(stage.base), f"{name} starts from {stage.base}"
        assert "build" not in chain, f"{name} must not carry the build stage"
    runtime = stages[stages["control-plane"].base]
    assert "--from=build /opt/termfleet /opt/termfleet" in runtime.all("COPY")


def test_both_targets_run_as_their_own_user(stages: dict[str, Stage]) -> None:
    for name in ("control-plane", "agent"):
        user = stages[name].last("USER")
        assert user is not None, name
        assert user not in {"root", "0"}, name
        assert any("--uid" in run and user in run for run in stages[name].all("RUN")), name


def test_the_control_plane_target_runs_the_server(stages: dict[str, Stage]) -> None:
    stage = stages["control-plane"]
    assert exec_form(stage.last("ENTRYPOINT")) == ["termfleet"]
    assert exec_form(stage.last("CMD"))[:2] == ["server", "run"]
    assert stage.last("EXPOSE") == "8080"
    assert stage.last("VOLUME") is None, "no anonymous volume per container"


def test_the_agent_target_runs_the_agent_with_libusb(stages: dict[str, Stage]) -> None:
    stage = stages["agent"]
    command = exec_form(stage.last("ENTRYPOINT")) + exec_form(stage.last("CMD"))
    assert command == ["termfleet", "agent", "run"]
    # `agent run --config` falls back to this variable; `agent enroll` writes the same path.
    assert "TERMFLEET_AGENT_CONFIG=/etc/termfleet/agent.toml" in stage.all("ENV")
    installs = " ".join(stage.all("RUN"))
    assert "libusb-1.0-0" in installs, "pyusb needs libusb for real peripherals"
    assert "--no-install-recommends" in installs
    assert "rm -rf /var/lib/apt/lists/*" in installs


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's patterns (no `!` in ours) leave ``path`` out of the context."""
    parts = path.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(parts[0], pattern):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
    return False


def test_the_build_context_has_the_package_and_no_keys() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")], "ignored() handles no exceptions"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", project["project"]["readme"], "LICENSE"]
    needed += [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed += ["control_plane/services/mosquitto.d/termfleet.conf"]
    for path in needed:
        assert not ignored(path, patterns), path
    for path in (".env", "tls/ca.key", "keys/content-signing.key", "x/server.pem", ".git/HEAD"):
        assert ignored(path, patterns), path
