"""Enrollment end to end on a real broker and control plane (issue 5).

A terminal enrolls with a site's claim code and reports with its own login; forged, expired
and used codes are refused and counted; a retired terminal is kicked and cannot come back; a
terminal enrolls again only after an administrator allows it, and its old login dies; an
enrollment survives a broker restart; reconcile repairs a deleted broker client. Each figure
the issue asks for is printed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nacl.public import PrivateKey

from control_plane.db import database
from control_plane.db.models import AuditEntry, Device
from control_plane.db.provisioning_models import ClaimToken
from edge.agent.config import load_config
from edge.mqtt import BrokerAddress
from edge.protocol import (
    Channel,
    ClaimRequest,
    ClaimResponse,
    ClaimStatus,
    DeviceKind,
    decode,
    encode,
    topics,
)
from edge.protocol.claim_code import new_code, parse_claim
from provisioning import dynsec
from provisioning.broker_admin import open_admin
from tests.support.fleet_run import eventually
from tests.support.mqtt_probe import NOT_AUTHORIZED, allowed
from tests.support.provisioning_stand import (
    SITE,
    WINDOW,
    ProvisioningStand,
    agent_password,
)
from tests.support.tokens import issue_token

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisioningStand]:
    workdir = tmp_path_factory.mktemp("provisioning")
    running = ProvisioningStand(workdir, f"sqlite://{workdir / 'cp.sqlite3'}")
    running.write_broker_file()
    running.start_broker()
    running.start_server()
    yield running
    running.close()


def enrolled(stand: ProvisioningStand, serial: str, claim: str | None = None) -> dict[str, str]:
    done = stand.enroll(claim or stand.claim_link(), serial)
    assert done.exit_code == 0, done.output
    return dict(json.loads(done.stdout))


def device_row(stand: ProvisioningStand, device_id: str) -> Device:
    async def read() -> Device:
        async with database(stand.database_url):
            return await Device.get(device_id=device_id)

    return asyncio.run(read())


def counted(stand: ProvisioningStand, outcome: str) -> float:
    line = rf'^termfleet_enrollments_total{{outcome="{outcome}"}} (\S+)$'
    found = re.search(line, stand.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_terminal_enrolls_with_a_site_code_and_reports_with_its_own_login(
    stand: ProvisioningStand,
) -> None:
    answer = enrolled(stand, "SN-E2E-1")
    device_id = answer["device_id"]
    assert device_id == "kiosk-sn-e2e-1"
    config = Path(answer["config"])
    assert config.stat().st_mode & 0o777 == 0o600
    content_key = stand.content_key_file.read_text().strip()
    assert load_config(config).content_keys == (content_key,), "the server's content key"
    row = device_row(stand, device_id)
    assert (row.lifecycle, row.broker_generation, row.serial) == ("enrolled", 1, "SN-E2E-1")
    assert row.site_id is not None
    # Its own login works, bound to its client id, and can do only its own things.
    probe = stand.device_probe(device_id, agent_password(config))
    assert probe.connect() == 0
    assert allowed(probe.publish(topics.uplink(device_id, Channel.HEALTH)))
    assert probe.publish(topics.uplink("kiosk-other", Channel.HEALTH)) == NOT_AUTHORIZED
    probe.close()
    agent = stand.run_agent("SN-E2E-1")
    eventually(lambda: device_row(stand, device_id).presence == "online", 20, "online")
    assert agent.alive()


def test_forged_expired_and_used_codes_are_refused_and_counted(stand: ProvisioningStand) -> None:
    before = {k: counted(stand, k) for k in ("unknown", "expired", "used")}
    forged = stand.enroll(new_code(), "SN-FORGED", "kiosk", "--server", stand.mqtt_url)
    assert forged.exit_code == 1
    assert "does not know this claim code" in forged.output
    once = stand.claim_link()
    enrolled(stand, "SN-ONCE-1", once)
    used = stand.enroll(once, "SN-ONCE-2")
    assert used.exit_code == 1
    assert "used" in used.output
    expiring = stand.claim_link()

    async def expire() -> None:
        async with database(stand.database_url):
            past = datetime.now(UTC) - timedelta(minutes=1)
            await ClaimToken.filter(uses=0).update(expires_at=past)

    asyncio.run(expire())
    expired = stand.enroll(expiring, "SN-LATE")
    assert expired.exit_code == 1
    assert "expired" in expired.output
    eventually(
        lambda: all(counted(stand, k) == before[k] + 1 for k in before), 5, "refusals counted"
    )
    assert not stand.config_path("SN-ONCE-2").exists()
    assert not stand.config_path("SN-LATE").exists()


def test_a_retired_terminal_is_kicked_at_once_and_cannot_reconnect(
    stand: ProvisioningStand,
) -> None:
    answer = enrolled(stand, "SN-RETIRE")
    device_id, password = answer["device_id"], agent_password(Path(answer["config"]))
    session = stand.device_probe(device_id, password)
    assert session.connect() == 0
    assert allowed(session.publish(topics.uplink(device_id, Channel.PRESENCE), b"{}", retain=True))
    started = time.monotonic()
    done = stand.termfleet("provision", "retire", device_id, "--note", "stolen", "--json")
    assert done.exit_code == 0, done.output
    assert session.disconnected.wait(5)
    kicked_ms = (time.monotonic() - started) * 1000
    assert session.disconnect_reason == 0x98  # Administrative action
    print(  # noqa: T201 - the issue asks for the time from retire to kick
        f"\nretire → kick: {kicked_ms:.0f} ms including the command's start-up;"
        f" broker revoke answered in {json.loads(done.stdout)['kick_ms']} ms"
    )
    again = stand.device_probe(device_id, password)
    assert again.connect() == NOT_AUTHORIZED
    assert device_row(stand, device_id).lifecycle == "retired"
    twice = stand.termfleet("provision", "retire", device_id)
    assert twice.exit_code == 1
    assert "it is final" in twice.output
    # Its retained presence was cleared: a new subscriber reads nothing for it.
    watcher = stand.control_plane_probe()
    assert watcher.connect() == 0
    assert allowed(watcher.subscribe(topics.uplink(device_id, Channel.PRESENCE)))
    assert watcher.received(0.5) == []
    watcher.close()
    refused = stand.enroll(stand.claim_link(), "SN-RETIRE", "kiosk", "--force")
    assert refused.exit_code == 1
    assert "retired terminal" in refused.output


def test_reenrollment_needs_an_administrator_and_kills_the_old_login(
    stand: ProvisioningStand,
) -> None:
    first = enrolled(stand, "SN-RESET")
    device_id, old_password = first["device_id"], agent_password(Path(first["config"]))
    stand.config_path("SN-RESET").unlink()  # a factory reset
    refused = stand.enroll(stand.claim_link(), "SN-RESET")
    assert refused.exit_code == 1
    assert "enrolled already" in refused.output
    allowed_again = stand.termfleet("provision", "reenroll", device_id, "--note", "new disk")
    assert allowed_again.exit_code == 0, allowed_again.output
    assert stand.device_probe(device_id, old_password).connect() == NOT_AUTHORIZED
    second = enrolled(stand, "SN-RESET")
    assert second["device_id"] == device_id
    new_password = agent_password(Path(second["config"]))
    assert new_password != old_password
    assert stand.device_probe(device_id, old_password).connect() == NOT_AUTHORIZED
    fresh = stand.device_probe(device_id, new_password)
    assert fresh.connect() == 0
    fresh.close()
    # 1 at first; 2 when re-enrollment was allowed (a password nobody holds); 3 now.
    assert device_row(stand, device_id).broker_generation == 3

    async def actions() -> list[str]:
        async with database(stand.database_url):
            entries = AuditEntry.filter(target_id=device_id).order_by("id")
            return [str(a) for a in await entries.values_list("action", flat=True)]

    assert asyncio.run(actions()) == ["device.enroll", "device.reenroll_allow", "device.reenroll"]


def test_a_preregistered_terminal_enrolls_once_with_its_own_serial(
    stand: ProvisioningStand, tmp_path: Path
) -> None:
    sheet = tmp_path / "terminals.csv"
    sheet.write_text(f"serial,kind,site,window\nSN-PAD-7,review_pad,{SITE},{WINDOW}\n")
    done = stand.termfleet("provision", "register", str(sheet), "--json")
    assert done.exit_code == 0, done.output
    [row] = json.loads(done.stdout)
    assert row["device_id"] == "review_pad-sn-pad-7"
    impostor = stand.enroll(row["link"], "SN-NOT-THE-PAD", "review_pad")
    assert impostor.exit_code == 1
    assert "another serial" in impostor.output
    good = stand.enroll(row["link"], "SN-PAD-7", "review_pad")
    assert good.exit_code == 0, good.output
    pad = device_row(stand, row["device_id"])
    assert (pad.lifecycle, pad.window_id is not None) == ("enrolled", True)
    used = stand.enroll(row["link"], "SN-PAD-7", "review_pad", "--force")
    assert used.exit_code == 1


def test_an_enrollment_survives_a_broker_restart(stand: ProvisioningStand) -> None:
    answer = enrolled(stand, "SN-RESTART")
    device_id, password = answer["device_id"], agent_password(Path(answer["config"]))
    assert stand.broker is not None
    stand.broker.stop()
    stand.start_broker()  # from the file the broker saved, not one rendered anew
    probe = stand.device_probe(device_id, password)
    assert probe.connect() == 0
    probe.close()
    eventually(stand.ingest_connected, 30, "the ingest back with its own login")


def test_reconcile_repairs_a_client_deleted_behind_its_back(stand: ProvisioningStand) -> None:
    answer = enrolled(stand, "SN-REPAIR")
    device_id, password = answer["device_id"], agent_password(Path(answer["config"]))
    admin_address = BrokerAddress(
        "127.0.0.1",
        stand.broker_settings.port,
        username=dynsec.ADMIN_USERNAME,
        password=stand.admin_password(),
    )

    async def delete() -> None:
        async with open_admin(admin_address) as admin:
            await admin.run([{"command": "deleteClient", "username": device_id}])

    asyncio.run(delete())
    assert stand.device_probe(device_id, password).connect() == NOT_AUTHORIZED
    done = stand.termfleet("provision", "reconcile", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["drift"]["missing_client"] == 1
    probe = stand.device_probe(device_id, password)
    assert probe.connect() == 0
    probe.close()
    again = json.loads(stand.termfleet("provision", "reconcile", "--json").stdout)
    assert sum(again["drift"].values()) == 0


def test_claims_from_one_serial_are_rate_limited(stand: ProvisioningStand) -> None:
    outcomes = []
    for _ in range(7):
        done = stand.enroll(new_code(), "SN-HAMMER", "kiosk", "--server", stand.mqtt_url)
        outcomes.append("too many claim attempts" in done.output)
    assert outcomes[:5] == [False] * 5
    assert outcomes[5:] == [True, True]


def test_a_repeated_request_gets_the_same_answer_and_enrolls_once(
    stand: ProvisioningStand,
) -> None:
    key = PrivateKey.generate()
    link = stand.claim_link("--uses", "5")
    request = ClaimRequest(
        claim_code=parse_claim(link).code,
        serial="SN-TWICE",
        kind=DeviceKind.KIOSK,
        agent_public_key=base64.b64encode(bytes(key.public_key)).decode(),
    )
    claimant = stand.claim_probe()
    assert claimant.connect() == 0
    assert allowed(claimant.subscribe(topics.claim("twice01", Channel.RESPONSE)))
    for _ in range(2):
        assert allowed(claimant.publish(topics.claim("twice01", Channel.REQUEST), encode(request)))
    answers = [decode(Channel.RESPONSE, m.payload) for m in claimant.received(2.0)]
    claimant.close()
    assert len(answers) == 2
    assert answers[0] == answers[1]
    assert isinstance(answers[0], ClaimResponse)
    assert answers[0].status == ClaimStatus.ACCEPTED

    async def uses() -> list[int]:
        async with database(stand.database_url):
            rows = await ClaimToken.filter(device_id=None).order_by("-id").limit(1)
            return [t.uses for t in rows]

    assert asyncio.run(uses()) == [1]


def test_an_unreadable_request_is_counted_and_not_answered(stand: ProvisioningStand) -> None:
    before = counted(stand, "invalid")
    claimant = stand.claim_probe()
    assert claimant.connect() == 0
    assert allowed(claimant.subscribe(topics.claim("garbage1", Channel.RESPONSE)))
    assert allowed(claimant.publish(topics.claim("garbage1", Channel.REQUEST), b"\xff{not json"))
    assert claimant.received(1.0) == []
    claimant.close()
    eventually(lambda: counted(stand, "invalid") == before + 1, 5, "counted as invalid")


def test_retiring_through_the_api_kicks_the_terminal_too(stand: ProvisioningStand) -> None:
    answer = enrolled(stand, "SN-API-RETIRE")
    device_id, password = answer["device_id"], agent_password(Path(answer["config"]))
    session = stand.device_probe(device_id, password)
    assert session.connect() == 0
    token = asyncio.run(issue_token(stand.database_url))
    request = urllib.request.Request(
        f"http://127.0.0.1:{stand.http_port}/api/v1/devices/{device_id}/retire",
        data=b'{"note": "broken screen"}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        assert json.load(resp)["lifecycle"] == "retired"
    assert session.disconnected.wait(5)
    assert session.disconnect_reason == 0x98
    assert stand.device_probe(device_id, password).connect() == NOT_AUTHORIZED


def provision_status(stand: ProvisioningStand, device_id: str) -> dict[str, Any]:
    done = stand.termfleet("provision", "status", device_id, "--json")
    assert done.exit_code == 0, done.output
    return dict(json.loads(done.stdout))


def test_a_terminal_passes_its_self_test_and_goes_in_service_on_sign_off(
    stand: ProvisioningStand,
) -> None:
    device_id = enrolled(stand, "SN-COMMISSION")["device_id"]
    not_yet = stand.termfleet("provision", "accept", device_id)
    assert not_yet.exit_code == 1
    assert "no self-test" in not_yet.output
    stand.run_agent("SN-COMMISSION", peripherals="simulated")
    eventually(
        lambda: provision_status(stand, device_id)["lifecycle"] == "commissioning", 20, "tested"
    )
    view = provision_status(stand, device_id)
    assert view["self_test"]["status"] == "succeeded"
    assert view["self_test"]["checks"]["printer0.test_print"] == "pass"
    assert view["self_test"]["checks"]["idreader0.card_read"] == "pass"
    assert view["failed_checks"] == []
    human = stand.termfleet("provision", "status", device_id)
    assert "PASS  printer0.test_print" in human.output
    first_test = view["self_test"]["command_id"]
    again = stand.termfleet("provision", "selftest", device_id)
    assert again.exit_code == 0, again.output
    eventually(
        lambda: provision_status(stand, device_id)["self_test"]["command_id"] != first_test,
        20,
        "a second self-test on demand",
    )
    accepted = stand.termfleet("provision", "accept", device_id, "--note", "checked on site")
    assert accepted.exit_code == 0, accepted.output
    assert provision_status(stand, device_id)["lifecycle"] == "in_service"


def test_a_failed_self_test_needs_force_and_a_note(stand: ProvisioningStand) -> None:
    device_id = enrolled(stand, "SN-NO-DRIVER")["device_id"]
    stand.run_agent("SN-NO-DRIVER")  # no peripheral driver: its check fails
    eventually(
        lambda: provision_status(stand, device_id)["lifecycle"] == "commissioning", 20, "tested"
    )
    view = provision_status(stand, device_id)
    assert view["failed_checks"] == ["peripherals"]
    assert stand.termfleet("provision", "status", device_id).output.count("FAIL") == 1
    refused = stand.termfleet("provision", "accept", device_id)
    assert refused.exit_code == 1
    assert "failed peripherals" in refused.output
    assert stand.termfleet("provision", "accept", device_id, "--force").exit_code == 1
    forced = stand.termfleet(
        "provision", "accept", device_id, "--force", "--note", "driver comes next week"
    )
    assert forced.exit_code == 0, forced.output
    assert provision_status(stand, device_id)["lifecycle"] == "in_service"


def test_a_new_pad_takes_the_window_of_the_one_it_replaces(
    stand: ProvisioningStand, tmp_path: Path
) -> None:
    sheet = tmp_path / "pads.csv"
    sheet.write_text(f"serial,kind,site,window\nSN-OLD-PAD,review_pad,{SITE},{WINDOW}\n")
    [row] = json.loads(stand.termfleet("provision", "register", str(sheet), "--json").stdout)
    new_pad = enrolled_kind(stand, "SN-NEW-PAD", "review_pad")
    done = stand.termfleet("provision", "replace", row["device_id"], new_pad)
    assert done.exit_code == 0, done.output
    assert provision_status(stand, new_pad)["window"] == WINDOW
    assert provision_status(stand, row["device_id"])["window"] is None
    itself = stand.termfleet("provision", "replace", new_pad, new_pad)
    assert itself.exit_code == 1


def enrolled_kind(stand: ProvisioningStand, serial: str, kind: str) -> str:
    done = stand.enroll(stand.claim_link(), serial, kind)
    assert done.exit_code == 0, done.output
    return str(json.loads(done.stdout)["device_id"])
