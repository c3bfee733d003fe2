"""The demo's rollout: a content key pair, the sample guide cards packed, uploaded, rolled out.

What an administrator does with ``termfleet content keygen``, ``content pack``, ``content
upload`` and ``rollout create``, done in the demo's supervisor so that it costs no extra
process start. Everything is kept in the work directory and reused by the next demo: the key
pair (the control plane and the terminals trust its public key), the packed versions, and the
rollouts in the database. Each start rolls out the next sample version no rollout has sent yet
(1, then 2), to the district's kiosks, installing when idle; a rollout a previous run left
unfinished carries on instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.atomic_file import write_atomic
from edge.content.manifest import ContentError, PackageKind
from edge.content.package import pack
from edge.content.signing import (
    new_signing_key,
    parse_signing_key,
    public_key_text,
    signing_key_text,
)
from edge.content.source import scan_directory
from edge.simulator.district import load_district

from .demo_sample import PACKED_AT, SAMPLE_DESCRIPTION, SAMPLE_NAME, SAMPLE_VERSIONS, sample_files

KEY_NAME = "demo-content-signing"
TARGET_KIND = "kiosk"
_API_TIMEOUT_S = 10.0


class DemoContentError(RuntimeError):
    """The sample could not be packed, uploaded or rolled out; the demo runs on without it."""


@dataclass(frozen=True)
class SampleRollout:
    """The rollout the demo started, or found under way, or last made when nothing was new."""

    id: str
    version: int
    devices: int
    started: bool
    """False when it was already there (unfinished, or every sample version was sent)."""
    final: bool

    def headline(self) -> str:
        what = f"guide cards version {self.version} to {self.devices} kiosks"
        if self.started:
            return f"rolling out {what}, installed when idle: {self.id}"
        if not self.final:
            return f"the rollout of {what} goes on: {self.id}"
        return f"every sample version was rolled out already; the latest: {self.id}"


class SampleContent:
    """The key pair and packages under ``directory`` (the demo's ``sample-content``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def key_file(self) -> Path:
        return self.directory / f"{KEY_NAME}.key"

    @property
    def public_key_file(self) -> Path:
        return self.directory / f"{KEY_NAME}.pub"

    def package_file(self, version: int) -> Path:
        return self.directory / f"{SAMPLE_NAME}-{version}.tfpkg"

    def prepare(self) -> None:
        """Make the key pair and pack each version, unless a previous demo did."""
        try:
            new_key = self._ensure_key_pair()
            for version in SAMPLE_VERSIONS:
                if new_key or not self.package_file(version).exists():
                    self._pack(version)
        except (OSError, ContentError) as exc:
            msg = f"preparing the sample package in {self.directory} failed: {exc}"
            raise DemoContentError(msg) from None

    def _ensure_key_pair(self) -> bool:
        """Make the key pair unless both files exist; whether it was made."""
        if self.key_file.exists() and self.public_key_file.exists():
            return False
        key = new_signing_key()
        write_atomic(self.key_file, signing_key_text(key), mode=0o600)
        write_atomic(
            self.public_key_file, f"{public_key_text(key.verify_key)}\n".encode(), mode=0o644
        )
        return True

    def _pack(self, version: int) -> None:
        source = self.directory / f"{SAMPLE_NAME}-{version}"
        for path, data in sample_files(version).items():
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(source / path, data, mode=0o644)
        pack(
            scan_directory(source),
            self.package_file(version),
            kind=PackageKind.CONTENT,
            name=SAMPLE_NAME,
            version=version,
            key=parse_signing_key(self.key_file.read_bytes()),
            description=SAMPLE_DESCRIPTION,
            created_at=PACKED_AT[version],
        )


class DemoApi:
    """The few control-plane API calls the demo makes, with its admin token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self._token = token

    def call(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> Any:  # noqa: ANN401 - JSON
        headers = {"Authorization": f"Bearer {self._token}"}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 - the demo's own localhost server
            self.base_url + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=_API_TIMEOUT_S) as resp:  # noqa: S310
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            msg = f"{method} {path}: {exc.code} {_error_text(exc)}"
            raise DemoContentError(msg) from None
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            msg = f"{method} {path}: {exc}"
            raise DemoContentError(msg) from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.load(exc)
        return f"{body['error']['code']}: {body['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return str(exc.reason)


def district_node(district: str) -> str | None:
    """The code of the district's own node in its jurisdiction tree, if it names one."""
    nodes = load_district(district).get("jurisdiction", [])
    return next((n["code"] for n in nodes if n.get("level") == "district"), None)


def roll_out_sample(sample: SampleContent, api: DemoApi, district: str) -> SampleRollout:
    """Upload every sample version, then start (or find) the demo's rollout; DemoContentError."""
    for packed in SAMPLE_VERSIONS:
        try:
            data = sample.package_file(packed).read_bytes()
        except OSError as exc:
            raise DemoContentError(str(exc)) from None
        api.call("POST", "/api/v1/packages", data, "application/octet-stream")
    query = urllib.parse.urlencode({"package": SAMPLE_NAME, "limit": 100})
    earlier = api.call("GET", f"/api/v1/rollouts?{query}")["items"]  # newest first
    unfinished = [r for r in earlier if not r["final"]]
    if unfinished:
        return _sample_rollout(unfinished[0], started=False)
    sent = {r["package"]["version"] for r in earlier}
    version = next((v for v in SAMPLE_VERSIONS if v not in sent), None)
    if version is None:
        return _sample_rollout(earlier[0], started=False)
    target: dict[str, Any] = {"kinds": [TARGET_KIND]}
    node = district_node(district)
    if node is not None:
        target["node"] = node
    body = {
        "package": {"name": SAMPLE_NAME, "version": version},
        "target": target,
        "install_policy": "when_idle",
    }
    made = api.call("POST", "/api/v1/rollouts", json.dumps(body).encode(), "application/json")
    return _sample_rollout(made, started=True)


def _sample_rollout(view: dict[str, Any], *, started: bool) -> SampleRollout:
    package, devices = view["package"], view["device_count"]
    return SampleRollout(view["id"], package["version"], devices, started, view["final"])


def rollout_hint(rollout: SampleRollout, cli: str, server: str, district: str) -> list[str]:
    """The summary's lines on the sample rollout: how to watch it, and what to try next."""
    r = rollout
    watch = "" if r.final else " --watch"
    lines = [f"  rollout     {r.headline()}", f"    {cli} show {r.id}{watch} {server}"]
    if r.version == SAMPLE_VERSIONS[0]:
        node = district_node(district)
        where = f"--node {node} " if node else ""
        package = f"{SAMPLE_NAME}:{SAMPLE_VERSIONS[1]}"
        create = f"create --package {package} {where}--kind {TARGET_KIND} --when-idle"
        lines += [
            "    once it completed, roll out version 2, then back to 1:",
            f"    {cli} {create} {server}",
            f"    {cli} rollback NEW-ID {server}",
        ]
    return lines
