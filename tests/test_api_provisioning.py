"""/api/v1/claims and a device's commissioning and acceptance, on SQLite and PostgreSQL.

A technician's token makes, lists and revokes the claim codes of the sites in its scope, reads a
terminal's self-test and accepts it into service; the code is in the POST's answer only, and a
link only from a server that holds the provisioning secret. Each change is audited as the token.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiohttp import test_utils
from click.testing import CliRunner, Result

from control_plane import commissioning
from control_plane.auth import Role, secret_hash
from control_plane.cli import cli
from control_plane.db import database
from control_plane.db.models import ApiToken, AuditEntry, Device, Site
from control_plane.db.provisioning_models import ClaimToken
from control_plane.http import schemas
from control_plane.http.app import make_app
from control_plane.http.provisioning import CLAIM_LINK, claim_links
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from edge.mqtt import BrokerAddress
from edge.protocol import CLAIM_USERNAME, BrokerEndpoint, CommandResult, CommandStatus
from edge.protocol.claim_code import ClaimCodeError, code_hash, parse_claim
from edge.protocol.commands import CHECK_PASSED, SELF_TEST_AFTER_ENROLLMENT, check_failed
from provisioning import claim_store
from provisioning.claim_store import Enrollment
from provisioning.credentials import broker_password
from provisioning.settings import ProvisioningSettings
from tests.support.admin_api import Api, admin_api, admin_api_in_a_thread, audit_count
from tests.support.scoped_fleet import TOWN_A, TOWN_B, TOWN_X, VILLAGE_A1, document, load_fleet
from tests.support.tokens import TEST_ACTOR

SECRET = bytes(range(32))
PUBLIC = BrokerEndpoint(host="broker.example", port=8883, tls=True)
PATH_A = f"/44/4401/440117/{TOWN_A}/"
CLAIMS = "/api/v1/claims"


def site(node: str) -> str:
    return f"s{node}"


async def token_row(secret: str) -> ApiToken:
    return await ApiToken.get(secret_hash=secret_hash(secret))


async def self_tested(device_id: str, *failed: str) -> None:
    """The device enrolled and its agent reported a self-test with ``failed`` checks."""
    await Device.filter(device_id=device_id).update(lifecycle="enrolled", broker_generation=1)
    checks = {"printer0.test_print": CHECK_PASSED, **{n: check_failed("fault") for n in failed}}
    result = CommandResult(
        command_id=SELF_TEST_AFTER_ENROLLMENT,
        status=CommandStatus.FAILED if failed else CommandStatus.SUCCEEDED,
        checks=checks,
        at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )
    assert await commissioning.record_self_test(device_id, result, datetime.now(UTC))


@contextlib.asynccontextmanager
async def api_with_secret(database_url: str) -> AsyncIterator[Api]:
    """``admin_api`` as ``termfleet server run --secret-file`` serves it: links included."""
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        fleet = await load_fleet()
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics))
        broker = BrokerAddress("127.0.0.1")
        app[CLAIM_LINK] = claim_links(ProvisioningSettings(SECRET, broker, PUBLIC))
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield Api(client, fleet)


# --- claim codes --------------------------------------------------------------------------------


async def test_a_claim_code_is_made_for_a_site_in_scope_and_shown_once(database_url: str) -> None:
    async with admin_api(database_url) as api:
        technician = await api.token(Role.TECHNICIAN, TOWN_A)
        body = {"site": site(VILLAGE_A1), "kind": "review_pad", "uses": 3, "note": "村委会"}
        response = await api.client.post(
            CLAIMS, json=body, headers={"Authorization": f"Bearer {technician}"}
        )
        made = await response.json()
        listed = await api.listing(CLAIMS, technician)
        stored = await ClaimToken.get(id=made["claim"]["id"])
        entry = await AuditEntry.get(action="claim.create")
        me = await token_row(technician)

    assert (response.status, response.headers["Cache-Control"]) == (201, "no-store")
    claim = made["claim"]
    assert (claim["site"], claim["kind"], claim["uses"], claim["max_uses"]) == (
        site(VILLAGE_A1), "review_pad", 0, 3,
    )  # fmt: skip
    assert (claim["state"], claim["note"], claim["device_id"]) == ("active", "村委会", None)
    created = datetime.fromisoformat(claim["created_at"])
    assert datetime.fromisoformat(claim["expires_at"]) - created == timedelta(hours=72)
    assert made["link"] is None  # this server holds no provisioning secret
    assert stored.code_hash == code_hash(made["code"])
    assert listed == [claim]
    assert made["code"] not in str(listed) + str(entry.after)
    assert (entry.actor_token_id, entry.actor_name) == (me.id, me.name)
    assert entry.scope_path == f"{PATH_A}{VILLAGE_A1}/"


async def test_a_server_with_the_secret_gives_a_link_that_enrolls(database_url: str) -> None:
    async with api_with_secret(database_url) as api:
        made = await api.ok(
            "POST", CLAIMS, await api.token(Role.TECHNICIAN), {"site": site(TOWN_B)}
        )
        given = parse_claim(made["link"])
        enrolled = await claim_store.enroll(
            given.code, serial="SN-LINK", kind="kiosk", now=datetime.now(UTC), before_commit=_none
        )
        placed = await Device.get(serial="SN-LINK").prefetch_related("site")

    assert (given.server, given.claim_password) == (
        "mqtts://broker.example:8883", broker_password(SECRET, CLAIM_USERNAME),
    )  # fmt: skip
    assert isinstance(enrolled, Enrollment)
    assert placed.site is not None
    assert placed.site.code == site(TOWN_B)


async def _none(_: Enrollment) -> None:
    return None


@pytest.mark.parametrize(
    ("public", "server"),
    [
        (BrokerEndpoint(host="::1", port=8883, tls=True), "mqtts://[::1]:8883"),
        (BrokerEndpoint(host="10.0.0.5", port=1883, tls=False), "mqtt://10.0.0.5:1883"),
    ],
)
def test_a_link_names_the_public_broker_as_terminals_reach_it(
    public: BrokerEndpoint, server: str
) -> None:
    links = claim_links(ProvisioningSettings(SECRET, BrokerAddress("127.0.0.1"), public))

    assert parse_claim(links("0000-0000-0000-0000-0")).server == server


def test_a_public_broker_that_no_link_can_name_stops_the_start() -> None:
    settings = ProvisioningSettings(SECRET, BrokerAddress("127.0.0.1"), BrokerEndpoint(host="a b"))

    with pytest.raises(ClaimCodeError, match="no valid host"):
        claim_links(settings)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"site": site(TOWN_B)}, 404, "not_found", None),  # beyond the scope: as if missing
        ({"site": site(TOWN_X)}, 404, "not_found", None),  # its code starts with town A's
        ({"site": "s-nowhere"}, 404, "not_found", None),
        ({"site": None}, 400, "invalid_field", "site"),
        ({"site": "bad code"}, 400, "invalid_field", "site"),
        ({"kind": "toaster"}, 400, "invalid_field", "kind"),
        ({"kind": "unknown"}, 400, "invalid_field", "kind"),
        ({"uses": 0}, 400, "invalid_field", "uses"),
        ({"uses": 10_001}, 400, "invalid_field", "uses"),
        ({"uses": True}, 400, "invalid_field", "uses"),
        ({"uses": "3"}, 400, "invalid_field", "uses"),
        ({"expires_in_hours": 0}, 400, "invalid_field", "expires_in_hours"),
        ({"expires_in_hours": 721}, 400, "invalid_field", "expires_in_hours"),
        ({"note": "x" * 256}, 400, "invalid_field", "note"),
        ({"note": "bell\x07"}, 400, "invalid_field", "note"),
        ({"batch": "2026-03"}, 400, "invalid_field", None),  # batches stay with the CLI
    ],
)
async def test_a_claim_code_is_refused_with_the_field_at_fault(
    database_url: str, body: dict[str, object], status: int, code: str, field: str | None
) -> None:
    async with admin_api(database_url) as api:
        technician = await api.token(Role.TECHNICIAN, TOWN_A)
        before = await ClaimToken.all().count(), await audit_count()
        got, answer = await api.call("POST", CLAIMS, technician, {"site": site(TOWN_A), **body})

        assert (got, answer["error"]["code"]) == (status, code), answer
        assert answer["error"]["details"].get("field") == field
        assert (await ClaimToken.all().count(), await audit_count()) == before


@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b'"site"'])
async def test_a_body_that_is_no_object_is_refused(sqlite_url: str, raw: bytes) -> None:
    async with admin_api(sqlite_url) as api:
        status, answer = await api.call("POST", CLAIMS, await api.token(), raw=raw)

    assert (status, answer["error"]["code"]) == (400, "invalid_body")


async def test_each_scope_lists_the_claims_of_its_sites_with_their_state(
    database_url: str,
) -> None:
    now = datetime.now(UTC)
    async with admin_api(database_url) as api:
        admin, town_a = await api.token(), await api.token(Role.TECHNICIAN, TOWN_A)
        for node in (TOWN_A, VILLAGE_A1, TOWN_B, TOWN_X):
            await api.ok("POST", CLAIMS, admin, {"site": site(node)})
        await api.ok("POST", CLAIMS, town_a, {"site": site(TOWN_A), "uses": 2})
        await claim_store.create_token(
            TEST_ACTOR, site_code=None, batch="pads", max_uses=1, expires_in=None, now=now
        )
        await claim_store.create_token(
            TEST_ACTOR, site_code=site(TOWN_A), max_uses=1, expires_in=timedelta(hours=1),
            now=now - timedelta(days=1),
        )  # fmt: skip
        village = await Site.get(code=site(VILLAGE_A1))
        await ClaimToken.filter(site_id=village.id).update(uses=1)
        everything = await api.listing(CLAIMS, admin)
        mine = await api.listing(CLAIMS, town_a)
        bad_cursor = await api.call("GET", f"{CLAIMS}?cursor=bm90IGEgY3Vyc29y", admin)
        unknown = await api.call("GET", f"{CLAIMS}?site=x", admin)

    assert [c["site"] for c in everything] == [
        site(n) for n in (TOWN_A, VILLAGE_A1, TOWN_B, TOWN_X, TOWN_A, TOWN_A)
    ]  # no batch's token: it lies in no scope
    assert [(c["site"], c["state"]) for c in mine] == [
        (site(TOWN_A), "active"), (site(VILLAGE_A1), "used"), (site(TOWN_A), "active"),
        (site(TOWN_A), "expired"),
    ]  # fmt: skip
    assert all("code" not in c and "code_hash" not in c for c in everything)
    assert bad_cursor[1]["error"]["details"]["parameter"] == "cursor"
    assert unknown[1]["error"]["details"]["parameter"] == "site"


async def test_a_claim_code_is_revoked_within_the_scope_once(database_url: str) -> None:
    async with admin_api(database_url) as api:
        admin, technician = await api.token(), await api.token(Role.TECHNICIAN, TOWN_A)
        mine = await api.ok("POST", CLAIMS, technician, {"site": site(VILLAGE_A1)})
        theirs = await api.ok("POST", CLAIMS, admin, {"site": site(TOWN_B)})
        batch = await claim_store.create_token(
            TEST_ACTOR,
            site_code=None,
            batch="b",
            max_uses=1,
            expires_in=None,
            now=datetime.now(UTC),
        )
        revoke = f"{CLAIMS}/{{}}/revoke"
        revoked = await api.ok("POST", revoke.format(mine["claim"]["id"]), technician)
        again = await api.ok("POST", revoke.format(mine["claim"]["id"]), technician)
        refused = [
            await api.call("POST", revoke.format(which), secret)
            for which, secret in (
                (theirs["claim"]["id"], technician),  # beyond the scope
                (batch.token.id, admin),  # a batch's: the CLI's
                (99_999, admin),
            )
        ]
        malformed = [
            await api.call("POST", revoke.format(which), admin)
            for which in ("abc", "0", "-1", "2147483648")
        ]
        entries = await AuditEntry.filter(action="claim.revoke")
        me = await token_row(technician)

    assert (revoked["state"], revoked["site"], revoked["revoked_at"]) == (
        "revoked", site(VILLAGE_A1), again["revoked_at"],
    )  # fmt: skip
    assert [(status, answer["error"]["code"]) for status, answer in refused] == [
        (404, "not_found")
    ] * 3
    assert {answer["error"]["details"]["parameter"] for _, answer in malformed} == {"id"}
    assert [(e.actor_token_id, e.target_id) for e in entries] == [(me.id, str(revoked["id"]))]


# --- commissioning ------------------------------------------------------------------------------


async def test_the_commissioning_view_shows_the_last_self_test(database_url: str) -> None:
    async with admin_api(database_url) as api:
        auditor = await api.token(Role.AUDITOR, TOWN_A)
        await self_tested("kiosk-a", "pad0.keys")
        view = await api.ok("GET", "/api/v1/devices/kiosk-a/commissioning", auditor)
        untested = await api.ok("GET", "/api/v1/devices/pad-a1/commissioning", auditor)
        refused = [
            await api.call("GET", f"/api/v1/devices/{device}/commissioning", auditor)
            for device in ("kiosk-b", "kiosk-x", "kiosk-nobody", "kiosk-unplaced")
        ]
        parameter = await api.call("GET", "/api/v1/devices/kiosk-a/commissioning?x=1", auditor)

    assert (view["lifecycle"], view["site"], view["credential_generation"]) == (
        "commissioning", site(TOWN_A), 1,
    )  # fmt: skip
    assert (view["self_test"]["status"], view["failed_checks"]) == ("failed", ["pad0.keys"])
    assert view["self_test"]["checks"]["printer0.test_print"] == "pass"
    assert view["self_test"]["at"].startswith("2026-03-02T09:00")
    assert (untested["self_test"], untested["failed_checks"]) == (None, [])
    assert [status for status, _ in refused] == [404] * 4
    assert parameter[1]["error"]["details"]["parameter"] == "x"


ACCEPT = "/api/v1/devices/{}/accept"


async def test_failed_checks_are_accepted_only_with_force_and_a_note(database_url: str) -> None:
    async with admin_api(database_url) as api:
        technician = await api.token(Role.TECHNICIAN, TOWN_A)
        untested = await api.call("POST", ACCEPT.format("pad-a1"), technician)
        await self_tested("kiosk-a", "pad0.keys")
        refusals = [
            await api.call("POST", ACCEPT.format("kiosk-a"), technician, body)
            for body in (None, {"force": True}, {"note": "pad on order"})
        ]
        still = await Device.get(device_id="kiosk-a")
        accepted = await api.ok(
            "POST", ACCEPT.format("kiosk-a"), technician, {"force": True, "note": "pad on order"}
        )
        twice = await api.call("POST", ACCEPT.format("kiosk-a"), technician)
        (entry,) = await AuditEntry.filter(action="device.accept")
        me = await token_row(technician)

    assert (untested[0], untested[1]["error"]["code"]) == (409, "no_self_test")
    assert [(s, a["error"]["code"]) for s, a in refusals] == [(409, "checks_failed")] * 3
    assert still.lifecycle == "commissioning"
    assert (accepted["lifecycle"], accepted["failed_checks"]) == ("in_service", ["pad0.keys"])
    assert (twice[0], twice[1]["error"]["code"]) == (409, "not_commissioning")
    assert (entry.actor_token_id, entry.actor_name, entry.note) == (me.id, me.name, "pad on order")
    assert (entry.target_id, entry.scope_path) == ("kiosk-a", PATH_A)


@pytest.mark.parametrize(
    ("device", "body", "status", "field"),
    [
        ("kiosk-b", {}, 404, None),  # beyond the scope
        ("kiosk-nobody", {}, 404, None),
        ("kiosk-a", {"force": "yes"}, 400, "force"),
        ("kiosk-a", {"note": "x" * 501}, 400, "note"),
        ("kiosk-a", {"note": 7}, 400, "note"),
        ("kiosk-a", {"why": "because"}, 400, None),
    ],
)
async def test_an_acceptance_is_refused_with_its_reason(
    database_url: str, device: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    async with admin_api(database_url) as api:
        technician = await api.token(Role.TECHNICIAN, TOWN_A)
        for tested in ("kiosk-a", "kiosk-b"):
            await self_tested(tested)
        got, answer = await api.call("POST", ACCEPT.format(device), technician, body)
        in_service = await Device.filter(lifecycle="in_service").count()

    assert got == status, answer
    assert answer["error"]["details"].get("field") == field
    assert in_service == 0


async def test_a_passed_self_test_is_accepted_without_a_body(sqlite_url: str) -> None:
    async with admin_api(sqlite_url) as api:
        await self_tested("kiosk-b")
        accepted = await api.ok("POST", ACCEPT.format("kiosk-b"), await api.token(Role.TECHNICIAN))

    assert (accepted["lifecycle"], accepted["failed_checks"]) == ("in_service", [])


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.AUDITOR])
async def test_a_role_without_provisioning_cannot_make_revoke_or_accept(
    sqlite_url: str, role: Role
) -> None:
    async with admin_api(sqlite_url) as api:
        secret = await api.token(role)
        await self_tested("kiosk-a")
        answers = [
            await api.call("GET", CLAIMS, secret),
            await api.call("POST", CLAIMS, secret, {"site": site(TOWN_A)}),
            await api.call("POST", f"{CLAIMS}/1/revoke", secret),
            await api.call("POST", ACCEPT.format("kiosk-a"), secret),
        ]

    assert [(s, a["error"]["code"]) for s, a in answers] == [(403, "forbidden")] * 4
    assert {a["error"]["details"]["permission"] for _, a in answers} == {"devices.provision"}


# --- the CLI through the API --------------------------------------------------------------------


def test_a_technician_provisions_through_the_api_with_the_cli(sqlite_url: str) -> None:
    async def setup(_api: Api, _secrets: Mapping[str, str]) -> None:
        await self_tested("kiosk-a", "pad0.keys")

    wanted = {"technician": (Role.TECHNICIAN, TOWN_A)}
    with admin_api_in_a_thread(sqlite_url, wanted, setup) as (server, secrets):

        def termfleet(*args: str) -> Result:
            env = {"TERMFLEET_TOKEN": secrets["technician"]}
            return CliRunner().invoke(cli, [*args, "--server", server], env=env)

        made = termfleet("provision", "claims", "create", "--site", site(TOWN_A), "--json")
        beyond = termfleet("provision", "claims", "create", "--site", site(TOWN_B))
        batch = termfleet("provision", "claims", "create", "--batch", "pads")
        claim_id = str(json.loads(made.stdout)["id"])
        revoked = termfleet("provision", "claims", "revoke", claim_id)
        listed = termfleet("provision", "claims", "list", "--json")
        status = termfleet("provision", "status", "kiosk-a")
        refused = termfleet("provision", "accept", "kiosk-a")
        accepted = termfleet("provision", "accept", "kiosk-a", "--force", "--note", "pad on order")
        after = termfleet("provision", "status", "kiosk-a", "--json")

    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["link"] is None
    assert (beyond.exit_code, batch.exit_code) == (1, 2)
    assert "HTTP 404: no site" in beyond.output
    assert revoked.exit_code == 0, revoked.output
    assert [(c["id"], c["state"]) for c in json.loads(listed.stdout)] == [
        (int(claim_id), "revoked")
    ]
    assert "FAIL  pad0.keys" in status.output
    assert (refused.exit_code, accepted.exit_code) == (1, 0)
    assert "failed pad0.keys" in refused.output
    assert json.loads(after.stdout)["lifecycle"] == "in_service"


def test_the_database_needs_the_secret_for_the_link(sqlite_url: str) -> None:
    result = CliRunner().invoke(
        cli, ["provision", "claims", "create", "--site", "s1", "--database-url", sqlite_url],
        env={"TERMFLEET_SECRET_FILE": "", "TERMFLEET_PUBLIC_BROKER_URL": ""},
    )  # fmt: skip

    assert result.exit_code == 2
    assert "--secret-file and --public-broker-url" in result.output


async def test_each_answer_has_the_shape_its_route_declares(sqlite_url: str) -> None:
    """The views against the structs of the OpenAPI document: every field, of its type."""
    async with api_with_secret(sqlite_url) as api:
        secret = await api.token(Role.TECHNICIAN)
        headers = {"Authorization": f"Bearer {secret}"}
        await self_tested("kiosk-a")

        async def answer(method: str, path: str, body: object = None) -> bytes:
            response = await api.client.request(method, path, json=body, headers=headers)
            assert response.status < 300, await response.text()
            return await response.read()

        made = await answer("POST", CLAIMS, {"site": site(TOWN_A), "kind": "kiosk"})
        revoke = f"{CLAIMS}/{json.loads(made)['claim']['id']}/revoke"
        answers = [
            (schemas.NewClaimCode, made),
            (schemas.ClaimPage, await answer("GET", CLAIMS)),
            (schemas.Claim, await answer("POST", revoke)),
            (schemas.Commissioning, await answer("GET", "/api/v1/devices/pad-a1/commissioning")),
            (schemas.Commissioning, await answer("POST", ACCEPT.format("kiosk-a"))),
        ]

    for shape, raw in answers:
        msgspec.json.decode(raw, type=shape)
        assert set(json.loads(raw)) == set(shape.__struct_fields__), shape
