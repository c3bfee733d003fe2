"""The package messages agree with the package format they speak of."""

from __future__ import annotations

from edge.content import manifest
from edge.protocol import Channel, ContentNotice, PackageKind, PackageTarget, decode, encode
from edge.protocol.packages import PACKAGE_NAME_PATTERN


def test_package_names_follow_the_manifest_rule() -> None:
    assert PACKAGE_NAME_PATTERN == manifest.NAME_PATTERN


def test_every_manifest_kind_has_a_wire_kind() -> None:
    wire = {kind.value for kind in PackageKind} - {PackageKind.UNKNOWN.value}
    assert wire == {kind.value for kind in manifest.PackageKind}


def test_a_target_without_name_or_version_decodes_and_is_recognisably_empty() -> None:
    notice = decode(Channel.CONTENT, b'{"targets":[{"kind":"content"},{"name":"cards"}]}')
    assert isinstance(notice, ContentNotice)
    assert [(t.name, t.version) for t in notice.targets] == [("", None), ("cards", None)]


def test_a_notice_round_trips_with_its_targets() -> None:
    notice = ContentNotice(targets=[PackageTarget(name="cards", version=3, allow_older=True)])
    assert decode(Channel.CONTENT, encode(notice)) == notice
