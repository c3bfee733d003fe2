"""The demo's sample rollout (``control_plane.demo_content``) against a real control plane.

The Conghua district is imported as the demo imports it; no terminal runs, so each rollout
stays at its first wave until the test cancels it. A demo started again carries on with an
unfinished rollout, or rolls out the next sample version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control_plane.content_repo import ContentSettings
from control_plane.db import database
from control_plane.demo_content import (
    DemoApi,
    DemoContentError,
    SampleContent,
    SampleRollout,
    roll_out_sample,
)
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.services.broker import BrokerSettings
from control_plane.services.processes import free_port
from edge import mqtt
from edge.content.signing import read_trusted_keys
from edge.protocol import Channel
from edge.protocol import topics as wire
from edge.simulator.district import district_file, terminals
from provisioning.credentials import create_secret
from provisioning.settings import provisioning_settings
from tests.support.control_plane import RunningControlPlane, running_control_plane

DISTRICT = "conghua"


def digests(sample: SampleContent) -> list[str]:
    return [hashlib.sha256(sample.package_file(v).read_bytes()).hexdigest() for v in (1, 2)]


def test_the_sample_is_packed_once_and_again_only_for_a_new_key(tmp_path: Path) -> None:
    sample = SampleContent(tmp_path / "sample")
    sample.prepare()
    first = digests(sample)
    public = sample.public_key_file.read_text()
    sample.prepare()
    assert digests(sample) == first, "kept, not packed again"
    # A lost package is packed again to the same bytes: its upload is the idempotent 200.
    sample.package_file(2).unlink()
    sample.prepare()
    assert digests(sample) == first
    # A new key pair signs new packages.
    sample.key_file.unlink()
    sample.prepare()
    assert sample.public_key_file.read_text() != public
    assert set(digests(sample)).isdisjoint(first)


def test_a_sample_directory_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sample").write_text("a file where the directory goes")
    with pytest.raises(DemoContentError, match="preparing the sample package"):
        SampleContent(tmp_path / "sample").prepare()


@contextlib.asynccontextmanager
async def control_plane_for(
    broker: BrokerSettings, database_url: str, workdir: Path, sample: SampleContent
) -> AsyncIterator[RunningControlPlane]:
    async with database(database_url):
        await import_inventory(read_json(district_file(DISTRICT).read_text(), "conghua.json"))
    secret = workdir / "secret"
    create_secret(secret)
    public = sample.public_key_file.read_text().strip()
    http_port = free_port()
    async with running_control_plane(
        broker,
        database_url,
        http_port=http_port,
        provisioning=provisioning_settings(
            secret, mqtt.BrokerAddress(broker.host, broker.port), content_keys=[public]
        ),
        content=ContentSettings(workdir / "repo", read_trusted_keys([sample.public_key_file])),
        public_url=f"http://127.0.0.1:{http_port}",
    ) as cp:
        try:
            yield cp
        finally:
            await clear_notices(broker)


async def clear_notices(broker: BrokerSettings) -> None:
    """The rollouts' retained notices to the district's kiosks, off the shared broker."""
    address = mqtt.BrokerAddress(broker.host, broker.port)
    options = mqtt.SessionOptions(client_id=f"clean-demo-content-{free_port()}")
    async with mqtt.connect(address, options) as conn:
        for terminal in terminals(DISTRICT):
            topic = wire.downlink(terminal.device_id, Channel.CONTENT)
            await conn.publish(mqtt.Outgoing(topic, b"", qos=1, retain=True))


async def test_each_start_rolls_out_the_next_version_or_carries_on(
    broker: BrokerSettings, sqlite_url: str, tmp_path: Path
) -> None:
    sample = SampleContent(tmp_path / "sample")
    sample.prepare()
    async with control_plane_for(broker, sqlite_url, tmp_path, sample) as cp:
        api = DemoApi(cp.url, cp.token)

        async def start() -> SampleRollout:
            # The demo's calls block; the control plane runs in this loop.
            return await asyncio.to_thread(roll_out_sample, sample, api, DISTRICT)

        first = await start()
        assert (first.version, first.devices, first.started) == (1, 15, True)
        view = await cp.get_json(f"/api/v1/rollouts/{first.id}")
        assert view["target"]["node"] == "440117"
        assert view["target"]["kinds"] == ["kiosk"]
        assert view["install_policy"] == "when_idle"

        again = await start()
        assert (again.id, again.started, again.final) == (first.id, False, False)

        async with cp.http.post(f"{cp.url}/api/v1/rollouts/{first.id}/cancel") as resp:
            assert resp.status == 200, await resp.text()
        second = await start()
        assert (second.version, second.started) == (2, True)

        async with cp.http.post(f"{cp.url}/api/v1/rollouts/{second.id}/cancel") as resp:
            assert resp.status == 200, await resp.text()
        done = await start()
        assert (done.id, done.started, done.final) == (second.id, False, True)
        assert "rolled out already" in done.headline()
        packages = await cp.get_json("/api/v1/packages?name=guide-cards")
        assert [p["version"] for p in packages["items"]] == [1, 2], "each uploaded once"


async def test_a_refused_call_is_a_demo_content_error_naming_the_answer(
    broker: BrokerSettings, sqlite_url: str, tmp_path: Path
) -> None:
    sample = SampleContent(tmp_path / "sample")
    sample.prepare()
    async with control_plane_for(broker, sqlite_url, tmp_path, sample) as cp:
        api = DemoApi(cp.url, "tf_not-a-token")
        with pytest.raises(DemoContentError, match="POST /api/v1/packages: 401"):
            await asyncio.to_thread(roll_out_sample, sample, api, DISTRICT)
        # A package signed by a key the control plane does not trust is refused by name.
        other = SampleContent(tmp_path / "other")
        other.prepare()
        with pytest.raises(DemoContentError, match="422 package_refused"):
            await asyncio.to_thread(roll_out_sample, other, DemoApi(cp.url, cp.token), DISTRICT)
        rollouts = await cp.get_json("/api/v1/rollouts")
        assert rollouts["items"] == [], "nothing rolled out"
