"""Packages on terminals: what the control plane wants installed, and where the agent stands.

Content (明白卡 guide cards, videos, notices), service-item catalogs (事项清单) and peripheral
firmware all travel as signed packages over HTTP (docs/content.md); MQTT carries only these
small messages about them.

Down, retained, ``content``: a ``ContentNotice`` listing every package the terminal should
converge to, one ``PackageTarget`` per package name. The control plane republishes the whole
list whenever one target changes, so a terminal that was away reads its complete orders on
reconnecting. A package name missing from the list is left as it is installed.

Up, retained, ``packages``: a ``PackageReport`` with one ``PackageState`` per package name the
agent holds or works on. It is republished on every change (and while downloading, at most every
few seconds), so the retained message is the terminal's current package state.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from .common import OpenEnum, Payload, Timestamp

PACKAGE_NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
"""The manifest's name rule (``edge.content.manifest.NAME_PATTERN``; a test keeps them equal)."""

Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^([0-9a-f]{64})?$(?!\n)")]
PackageName = Annotated[
    str,
    # Empty (the default) is allowed by the pattern so that an absent name reads as "" and the
    # element is ignored; a nested struct has no "required" check of its own.
    msgspec.Meta(pattern=rf"^({PACKAGE_NAME_PATTERN})?$(?!\n)", description="manifest name"),
]
Version = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
ByteCount = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

MAX_PACKAGES = 32
"""Packages per terminal in one notice or report (guide cards, a catalog, a few firmwares)."""


class Artifact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A downloadable, signed package: fetched with Range/resume, verified before install."""

    url: str = ""
    sha256: Sha256Hex = ""
    size: ByteCount = 0
    signature: str = ""
    """Ed25519 signature of the manifest, base64."""
    key_id: str = ""


class PackageKind(OpenEnum):
    CONTENT = "content"
    CATALOG = "catalog"
    FIRMWARE = "firmware"
    UNKNOWN = "unknown"


class InstallWhen(OpenEnum):
    """When the agent may swap a staged package in. Never while a citizen session is under way."""

    NOT_YET = "not_yet"
    """Download and verify in the background, stage, and wait to be told."""
    NOW = "now"
    """The site is closed: install once no citizen session is under way, until ``install_until``."""
    WHEN_IDLE = "when_idle"
    """Install by itself once the terminal has had no citizen session for a while."""
    UNKNOWN = "unknown"


class PackageTarget(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One package the terminal should run at ``version``; without a name or version, ignored."""

    name: PackageName = ""
    version: Version | None = None
    kind: PackageKind = PackageKind.CONTENT
    artifact: Artifact = Artifact()
    rollout_id: str = ""
    allow_older: bool = False
    """A rollback: accept a version older than the one installed."""
    install: InstallWhen = InstallWhen.NOT_YET
    install_until: Timestamp | None = None
    """With ``now``: the end of the window (the site opens again); later, the agent waits."""
    peripheral: str = ""
    """Firmware only: the peripheral (its name on the terminal, e.g. pad0) to flash."""


class ContentNotice(Payload, frozen=True, kw_only=True):
    """Retained on the device's downlink: every package it should converge to."""

    targets: Annotated[list[PackageTarget], msgspec.Meta(max_length=MAX_PACKAGES)] = []
    issued_at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ()
    """An empty list is meaningful: nothing to change (the last rollout was cancelled)."""


class PackagePhase(OpenEnum):
    """Where the agent stands with a package's target version."""

    DOWNLOADING = "downloading"
    STAGED = "staged"
    """Downloaded, signature and every hash verified, waiting for its install permission."""
    INSTALLING = "installing"
    INSTALLED = "installed"
    """``installed`` is the target version."""
    FAILED = "failed"
    """The target could not be downloaded, verified or installed; ``installed`` is unchanged."""
    INCOMPATIBLE = "incompatible"
    """The package does not fit this terminal (e.g. firmware for a peripheral it lacks)."""
    UNKNOWN = "unknown"


class PackageState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One package on the terminal: what it runs, what it keeps, what it works on."""

    name: PackageName = ""
    installed: Version | None = None
    previous: Version | None = None
    """The version kept for a rollback (swapped back without a download)."""
    target: Version | None = None
    rollout_id: str = ""
    phase: PackagePhase = PackagePhase.UNKNOWN
    bytes_done: ByteCount = 0
    bytes_total: ByteCount = 0
    reason: str = ""
    """Machine-readable cause of a failure: bad_signature, hash_mismatch, older_version, …"""
    detail: str = ""
    at: Timestamp | None = None


class PackageReport(Payload, frozen=True, kw_only=True):
    """Retained on the device's uplink: every package the agent holds or works on."""

    packages: Annotated[list[PackageState], msgspec.Meta(max_length=MAX_PACKAGES)] = []
    at: Timestamp | None = None
