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
import contextlib
import json
import queue
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import Result
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
from provisioning.claim_service import RECONNECT_MAX_S
from tests.support.mqtt_probe import NOT_AUTHORIZED, Probe, allowed
from tests.support.provisioning_stand import (
    SITE,
    WINDOW,
    ProvisioningStand,
    agent_password,
)
from tests.support.sqlite_busy import tried_while_busy
from tests.support.tokens import issue_token

pytestmark = pytest.mark.slow

T = TypeVar("T")
CLAIM_ANSWER_S = 10.0
"""How long a test waits for the claim service's answer: the ``--timeout`` the stand's
``agent enroll`` gives it."""
KICK_S = 5.0
"""How long a session may take to be kicked once its terminal is retired."""


def cli(stand: ProvisioningStand, *args: str) -> Result:
    """``stand.termfleet``, tried again while SQLite refuses it beside the server's writes."""
    return tried_while_busy(lambda: stand.termfleet(*args), lambda done: done.output)


def claim_link(stand: ProvisioningStand, *extra: str) -> str:
    done = cli(stand, "provision", "claims", "create", "--site", SITE, "--json", *extra)
    assert done.exit_code == 0, done.output
    return str(json.loads(done.stdout)["link"])


def wait_for(what: str, timeout_s: float, look: Callable[[], T], done: Callable[[T], bool]) -> T:
    """Look until ``done`` says yes; on a timeout, fail with what was seen last."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = look()
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            msg = f"{what}: not within {timeout_s:g} s; last seen: {seen!r}"
            raise AssertionError(msg)
        time.sleep(0.1)


class KickWatch(Probe):
    """A device session that keeps its first disconnect: the reason, and when.

    paho reconnects a kicked client a second later, and the broker's refusal of that attempt
    would overwrite ``disconnect_reason`` (with 0x82) before a slow test thread read it.
    """

    disconnected_at: float | None = None

    def _on_disconnect(self, *args: Any) -> None:  # noqa: ANN401 - paho's callback arguments
        if self.disconnected_at is None:
            self.disconnected_at = time.monotonic()
            super()._on_disconnect(*args)


def close(probe: Probe) -> None:
    """``probe.close()``, past a race in paho's ``loop_stop`` (eclipse-paho/paho.mqtt.python#872).

    The network thread, ending by itself once the DISCONNECT is out, clears the thread that
    ``loop_stop`` is about to join, which then raises AttributeError on a closed client.
    """
    try:
        probe.close()
    except AttributeError:
        if probe._client._thread is not None:  # noqa: SLF001 - paho's own thread, checked
            raise


def kick_watch(stand: ProvisioningStand, device_id: str, password: str) -> KickWatch:
    return KickWatch(stand.broker_settings.port, device_id, password, device_id)


def login_answer(stand: ProvisioningStand, device_id: str, password: str) -> int:
    """The CONNACK a login gets; the probe is closed, so paho does not retry it later."""
    probe = stand.device_probe(device_id, password)
    try:
        return probe.connect()
    finally:
        close(probe)


def answers_within(claimant: Probe, count: int, timeout_s: float) -> list[Any]:
    """The first ``count`` claim answers, decoded, waited for up to ``timeout_s`` in all."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            msg = f"{count} claim answers: not within {timeout_s:g} s; got {got!r}"
            raise AssertionError(msg)
        with contextlib.suppress(queue.Empty):
            got.append(decode(Channel.RESPONSE, claimant.messages.get(timeout=left).payload))
    return got


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProvisioningStand]:
    workdir = tmp_path_factory.mktemp("provisioning")
    running = ProvisioningStand(workdir, f"sqlite://{workdir / 'cp.sqlite3'}")
    try:  # a server that fails to start must not leave its broker running
        running.write_broker_file()
        running.start_broker()
        running.start_server()
        yield running
    finally:
        running.close()


def enrolled(stand: ProvisioningStand, serial: str, claim: str | None = None) -> dict[str, str]:
    done = stand.enroll(claim or claim_link(stand), serial)
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
    close(probe)
    agent = stand.run_agent("SN-E2E-1")
    wait_for(
        f"{device_id} online", 20, lambda: device_row(stand, device_id).presence, "online".__eq__
    )
    assert agent.alive()


def test_forged_expired_and_used_codes_are_refused_and_counted(stand: ProvisioningStand) -> None:
    before = {k: counted(stand, k) for k in ("unknown", "expired", "used")}
    forged = stand.enroll(new_code(), "SN-FORGED", "kiosk", "--server", stand.mqtt_url)
    assert forged.exit_code == 1
    assert "does not know this claim code" in forged.output
    once = claim_link(stand)
    enrolled(stand, "SN-ONCE-1", once)
    used = stand.enroll(once, "SN-ONCE-2")
    assert used.exit_code == 1
    assert "used" in used.output
    expiring = claim_link(stand)

    async def expire() -> None:
        async with database(stand.database_url):
            past = datetime.now(UTC) - timedelta(minutes=1)
            await ClaimToken.filter(uses=0).update(expires_at=past)

    asyncio.run(expire())
    expired = stand.enroll(expiring, "SN-LATE")
    assert expired.exit_code == 1
    assert "expired" in expired.output
    wanted = {k: n + 1 for k, n in before.items()}
    wait_for(
        f"refusals counted {wanted}",
        5,
        lambda: {k: counted(stand, k) for k in before},
        wanted.__eq__,
    )
    assert not stand.config_path("SN-ONCE-2").exists()
    assert not stand.config_path("SN-LATE").exists()


def test_a_retired_terminal_is_kicked_at_once_and_cannot_reconnect(
    stand: ProvisioningStand,
) -> None:
    answer = enrolled(stand, "SN-RETIRE")
    device_id, password = answer["device_id"], agent_password(Path(answer["config"]))
    session = kick_watch(stand, device_id, password)
    assert session.connect() == 0
    assert allowed(session.publish(topics.uplink(device_id, Channel.PRESENCE), b"{}", retain=True))
    started = time.monotonic()
    done = cli(stand, "provision", "retire", device_id, "--note", "stolen", "--json")
    assert done.exit_code == 0, done.output
    assert session.disconnected.wait(KICK_S), "still connected after the retire"
    close(session)
    assert session.disconnected_at is not None
    kicked_ms = (session.disconnected_at - started) * 1000
    assert session.disconnect_reason == 0x98  # Administrative action
    print(  # noqa: T201 - the issue asks for the time from retire to kick
        f"\nretire → kick: {kicked_ms:.0f} ms including the command's start-up;"
        f" broker revoke answered in {json.loads(done.stdout)['kick_ms']} ms"
    )
    assert login_answer(stand, device_id, password) == NOT_AUTHORIZED
    assert device_row(stand, device_id).lifecycle == "retired"
    twice = cli(stand, "provision", "retire", device_id)
    assert twice.exit_code == 1
    assert "it is final" in twice.output
    # Its retained presence was cleared: a new subscriber reads nothing for it.
    watcher = stand.control_plane_probe()
    assert watcher.connect() == 0
    assert allowed(watcher.subscribe(topics.uplink(device_id, Channel.PRESENCE)))
    assert watcher.received(0.5) == []
    close(watcher)
    refused = stand.enroll(claim_link(stand), "SN-RETIRE", "kiosk", "--force")
    assert refused.exit_code == 1
    assert "retired terminal" in refused.output


def test_reenrollment_needs_an_administrator_and_kills_the_old_login(
    stand: ProvisioningStand,
) -> None:
    first = enrolled(stand, "SN-RESET")
    device_id, old_password = first["device_id"], agent_password(Path(first["config"]))
    stand.config_path("SN-RESET").unlink()  # a factory reset
    refused = stand.enroll(claim_link(stand), "SN-RESET")
    assert refused.exit_code == 1
    assert "enrolled already" in refused.output
    allowed_again = cli(stand, "provision", "reenroll", device_id, "--note", "new disk")
    assert allowed_again.exit_code == 0, allowed_again.output
    assert login_answer(stand, device_id, old_password) == NOT_AUTHORIZED
    second = enrolled(stand, "SN-RESET")
    assert second["device_id"] == device_id
    new_password = agent_password(Path(second["config"]))
    assert new_password != old_password
    assert login_answer(stand, device_id, old_password) == NOT_AUTHORIZED
    fresh = stand.device_probe(device_id, new_password)
    assert fresh.connect() == 0
    close(fresh)
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
    done = cli(stand, "provision", "register", str(sheet), "--json")
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
    close(probe)
    wait_for("the ingest back with its own login", 30, stand.ingest_connected, bool)
    # The claim service reconnects on a backoff of its own, at most RECONNECT_MAX_S after its
    # last failed attempt: the next test's terminal must not ask before it listens again.
    request = ClaimRequest(
        claim_code=new_code(),
        serial="SN-AFTER-RESTART",
        kind=DeviceKind.KIOSK,
        agent_public_key=base64.b64encode(bytes(PrivateKey.generate().public_key)).decode(),
    )
    claimant = stand.claim_probe()
    assert claimant.connect() == 0
    assert allowed(claimant.subscribe(topics.claim("restart1", Channel.RESPONSE)))

    def ask() -> list[Any]:
        # Asked again under the same claim id, as a terminal does: a repeat gets the same answer.
        assert allowed(claimant.publish(topics.claim("restart1", Channel.REQUEST), encode(request)))
        return [decode(Channel.RESPONSE, m.payload) for m in claimant.received(1.0)]

    answers = wait_for("the claim service answering again", RECONNECT_MAX_S + 10, ask, bool)
    close(claimant)
    assert all(a == answers[0] for a in answers), answers
    assert isinstance(answers[0], ClaimResponse)
    assert (answers[0].status, answers[0].reason) == (ClaimStatus.REFUSED, "unknown")


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
    assert login_answer(stand, device_id, password) == NOT_AUTHORIZED
    done = cli(stand, "provision", "reconcile", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["drift"]["missing_client"] == 1
    probe = stand.device_probe(device_id, password)
    assert probe.connect() == 0
    close(probe)
    again = json.loads(cli(stand, "provision", "reconcile", "--json").stdout)
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
    link = claim_link(stand, "--uses", "5")
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
    answers = answers_within(claimant, 2, CLAIM_ANSWER_S)
    assert claimant.received(0.5) == [], "one answer a request, no more"
    close(claimant)
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
    # Counted once the service has handled it; an answer, had it sent one, would be out by then.
    wait_for("counted as invalid", 5, lambda: counted(stand, "invalid"), (before + 1).__eq__)
    assert claimant.received(0.5) == []
    close(claimant)


def test_retiring_through_the_api_kicks_the_terminal_too(stand: ProvisioningStand) -> None:
    answer = enrolled(stand, "SN-API-RETIRE")
    device_id, password = answer["device_id"], agent_password(Path(answer["config"]))
    session = kick_watch(stand, device_id, password)
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
    # The server revokes the login after it answered (provisioning.runner.device_retired).
    assert session.disconnected.wait(KICK_S), "still connected after the retire"
    close(session)
    assert session.disconnect_reason == 0x98
    assert login_answer(stand, device_id, password) == NOT_AUTHORIZED


def provision_status(stand: ProvisioningStand, device_id: str) -> dict[str, Any]:
    done = cli(stand, "provision", "status", device_id, "--json")
    assert done.exit_code == 0, done.output
    return dict(json.loads(done.stdout))


def commissioning(status: dict[str, Any]) -> bool:
    return bool(status["lifecycle"] == "commissioning")


def test_a_terminal_passes_its_self_test_and_goes_in_service_on_sign_off(
    stand: ProvisioningStand,
) -> None:
    device_id = enrolled(stand, "SN-COMMISSION")["device_id"]
    not_yet = cli(stand, "provision", "accept", device_id)
    assert not_yet.exit_code == 1
    assert "no self-test" in not_yet.output
    stand.run_agent("SN-COMMISSION", peripherals="simulated")
    wait_for("self-tested", 20, lambda: provision_status(stand, device_id), commissioning)
    view = provision_status(stand, device_id)
    assert view["self_test"]["status"] == "succeeded"
    assert view["self_test"]["checks"]["printer0.test_print"] == "pass"
    assert view["self_test"]["checks"]["idreader0.card_read"] == "pass"
    assert view["failed_checks"] == []
    human = cli(stand, "provision", "status", device_id)
    assert "PASS  printer0.test_print" in human.output
    first_test = view["self_test"]["command_id"]
    again = cli(stand, "provision", "selftest", device_id)
    assert again.exit_code == 0, again.output
    wait_for(
        "a second self-test on demand",
        20,
        lambda: provision_status(stand, device_id)["self_test"],
        lambda test: test is not None and test["command_id"] != first_test,
    )
    accepted = cli(stand, "provision", "accept", device_id, "--note", "checked on site")
    assert accepted.exit_code == 0, accepted.output
    assert provision_status(stand, device_id)["lifecycle"] == "in_service"


def test_a_failed_self_test_needs_force_and_a_note(stand: ProvisioningStand) -> None:
    device_id = enrolled(stand, "SN-NO-DRIVER")["device_id"]
    stand.run_agent("SN-NO-DRIVER")  # no peripheral driver: its check fails
    wait_for("self-tested", 20, lambda: provision_status(stand, device_id), commissioning)
    view = provision_status(stand, device_id)
    assert view["failed_checks"] == ["peripherals"]
    assert cli(stand, "provision", "status", device_id).output.count("FAIL") == 1
    refused = cli(stand, "provision", "accept", device_id)
    assert refused.exit_code == 1
    assert "failed peripherals" in refused.output
    assert cli(stand, "provision", "accept", device_id, "--force").exit_code == 1
    forced = cli(
        stand, "provision", "accept", device_id, "--force", "--note", "driver comes next week"
    )
    assert forced.exit_code == 0, forced.output
    assert provision_status(stand, device_id)["lifecycle"] == "in_service"


def test_a_new_pad_takes_the_window_of_the_one_it_replaces(
    stand: ProvisioningStand, tmp_path: Path
) -> None:
    sheet = tmp_path / "pads.csv"
    sheet.write_text(f"serial,kind,site,window\nSN-OLD-PAD,review_pad,{SITE},{WINDOW}\n")
    registered = cli(stand, "provision", "register", str(sheet), "--json")
    assert registered.exit_code == 0, registered.output
    [row] = json.loads(registered.stdout)
    new_pad = enrolled_kind(stand, "SN-NEW-PAD", "review_pad")
    done = cli(stand, "provision", "replace", row["device_id"], new_pad)
    assert done.exit_code == 0, done.output
    assert provision_status(stand, new_pad)["window"] == WINDOW
    assert provision_status(stand, row["device_id"])["window"] is None
    itself = cli(stand, "provision", "replace", new_pad, new_pad)
    assert itself.exit_code == 1


def enrolled_kind(stand: ProvisioningStand, serial: str, kind: str) -> str:
    done = stand.enroll(claim_link(stand), serial, kind)
    assert done.exit_code == 0, done.output
    return str(json.loads(done.stdout)["device_id"])
