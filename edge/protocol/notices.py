"""Catalog and content notifications: what the terminal should fetch over HTTP and install."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from .common import Payload, Timestamp

Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^([0-9a-f]{64})?$(?!\n)")]


class Artifact(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A downloadable, signed package: fetched with Range/resume, verified before install."""

    url: str = ""
    sha256: Sha256Hex = ""
    size: Annotated[int, msgspec.Meta(ge=0)] = 0
    signature: str = ""
    """Ed25519 signature of the manifest, base64."""
    key_id: str = ""


class CatalogNotice(Payload, frozen=True, kw_only=True):
    """The service-item catalog (事项清单) this terminal should hold."""

    catalog_id: str = ""
    version: int = 0
    artifact: Artifact = Artifact()
    effective_from: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("catalog_id", "version")


class ContentNotice(Payload, frozen=True, kw_only=True):
    """A content package (明白卡 guide cards, videos, notices) targeted at this terminal."""

    package_id: str = ""
    version: int = 0
    artifact: Artifact = Artifact()
    rollout_id: str = ""
    effective_from: Timestamp | None = None
    install_outside_opening_hours: bool = True

    required: ClassVar[tuple[str, ...]] = ("package_id", "version")
