"""Claim tokens, enrollments and commissioning in the database, on SQLite and PostgreSQL.

Each change commits with its audit entry or not at all; a code is kept only as its hash; a
token's last use goes to one terminal however many ask at once. The rules these apply are
tested on their own in ``test_provisioning_rules.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control_plane import commissioning
from control_plane.admin_errors import ConflictError, InvalidFieldError, NotFoundError
from control_plane.db import client, database
from control_plane.db.models import AuditEntry, Device, ServiceWindow, Site
from control_plane.db.provisioning_models import ClaimToken
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from edge.protocol import CommandResult, CommandStatus
from edge.protocol.claim_code import code_hash, normalize
from edge.protocol.commands import CHECK_PASSED, SELF_TEST_AFTER_ENROLLMENT, check_failed
from provisioning import claim_store, claim_views
from provisioning.claim_store import Enrollment, NewToken, Registration
from provisioning.claims import Refusal
from tests.support.provisioning_stand import INVENTORY, SITE, WINDOW
from tests.support.tokens import TEST_ACTOR

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)


class BrokerRefusedError(Exception):
    """What the broker's side of ``before_commit`` raises in these tests."""


async def import_site() -> None:
    await import_inventory(read_json(json.dumps(INVENTORY), "x.json"))


async def site_token(max_uses: int = 5, kind: str = "") -> NewToken:
    return await claim_store.create_token(
        TEST_ACTOR, site_code=SITE, kind=kind, max_uses=max_uses, expires_in=DAY, now=NOW
    )


async def no_broker(_: Enrollment) -> None:
    return None


async def enroll(
    code: str,
    serial: str,
    kind: str = "kiosk",
    before_commit: Callable[[Enrollment], Awaitable[None]] = no_broker,
) -> Enrollment | Refusal:
    return await claim_store.enroll(
        code, serial=serial, kind=kind, now=NOW, before_commit=before_commit
    )


async def actions() -> list[str]:
    return [entry.action for entry in await AuditEntry.all().order_by("id")]


# --- tokens ------------------------------------------------------------------------------------


async def test_a_token_is_for_a_site_or_a_batch(database_url: str) -> None:
    async with database(database_url):
        await import_site()
        for_site = await site_token(max_uses=3, kind="review_pad")
        for_batch = await claim_store.create_token(
            TEST_ACTOR, site_code=None, batch="2026-03 pads", max_uses=1, expires_in=None, now=NOW
        )
        site = await Site.get(code=SITE)
        listed = await claim_views.list_tokens()

    assert (for_site.token.site_id, for_site.token.max_uses, for_site.token.kind) == (
        site.id, 3, "review_pad",
    )  # fmt: skip
    assert for_site.token.expires_at == NOW + DAY
    assert (for_batch.token.site_id, for_batch.token.batch) == (None, "2026-03 pads")
    assert for_batch.token.expires_at is None
    assert [(t["site"], t["batch"], t["prefix"]) for t in listed] == [
        (SITE, "", normalize(for_site.code)[:4]),
        (None, "2026-03 pads", normalize(for_batch.code)[:4]),
    ]


TOKEN_REFUSALS: list[tuple[str | None, dict[str, Any], type[Exception], str | None]] = [
    (None, {}, InvalidFieldError, None),
    ("s-nowhere", {}, NotFoundError, None),
    ("s" * 65, {}, NotFoundError, None),
    (SITE, {"kind": "toaster"}, InvalidFieldError, "kind"),
    (SITE, {"max_uses": 0}, InvalidFieldError, "max_uses"),
    (SITE, {"max_uses": claim_store.MAX_USES + 1}, InvalidFieldError, "max_uses"),
]


async def test_a_token_that_cannot_be_made_is_refused_and_nothing_written(
    database_url: str,
) -> None:
    async with database(database_url):
        await import_site()
        for site_code, changes, error, field in TOKEN_REFUSALS:
            arguments: dict[str, Any] = {"max_uses": 1, "kind": "", **changes}
            with pytest.raises(error) as refused:
                await claim_store.create_token(
                    TEST_ACTOR, site_code=site_code, expires_in=DAY, now=NOW, **arguments
                )
            assert getattr(refused.value, "field", None) == field, (site_code, changes)
        assert await ClaimToken.all().count() == 0
        assert "claim.create" not in await actions()
        assert (await site_token(max_uses=claim_store.MAX_USES)).token.uses == 0, "the limit is in"


async def test_the_code_is_not_stored_only_its_hash(database_url: str) -> None:
    async with database(database_url) as ctx:
        await import_site()
        made = await site_token()
        _, rows = await client(ctx).execute_query("SELECT * FROM claim_token")
    (row,) = [dict(r) for r in rows]
    canonical = normalize(made.code)
    stored = [str(value) for value in row.values()]
    assert all(made.code not in value and canonical not in value for value in stored), row
    assert all(canonical[4:12] not in value for value in stored), "no more than the prefix"
    assert row["code_hash"] == code_hash(made.code)


async def test_revoked_tokens_are_unknown_and_revoking_again_changes_nothing(
    database_url: str,
) -> None:
    async with database(database_url):
        await import_site()
        made = await site_token()
        await claim_store.revoke_token(TEST_ACTOR, made.token.id, NOW)
        again = await claim_store.revoke_token(TEST_ACTOR, made.token.id, NOW + DAY)
        assert await enroll(made.code, "SN1") is Refusal.UNKNOWN
        with pytest.raises(NotFoundError):
            await claim_store.revoke_token(TEST_ACTOR, made.token.id + 100, NOW)
        assert again.revoked_at == NOW
        assert await actions() == ["claim.create", "claim.revoke"]
        assert await Device.all().count() == 0


# --- enrollment --------------------------------------------------------------------------------


async def test_a_new_terminal_enrolls_in_the_tokens_site(database_url: str) -> None:
    async with database(database_url):
        await import_site()
        made = await site_token(max_uses=2)
        enrolled = await enroll(made.code, "SN-2024/0042")
        device = await Device.get(device_id="kiosk-sn-2024-0042")
        token = await ClaimToken.get(id=made.token.id)
        entries = await AuditEntry.filter(action="device.enroll")
        site = await Site.get(code=SITE)

    assert enrolled == Enrollment("kiosk-sn-2024-0042", generation=1, kind="kiosk")
    assert (device.site_id, device.window_id, device.serial) == (site.id, None, "SN-2024/0042")
    assert (device.lifecycle, device.broker_generation, device.enrolled_at) == ("enrolled", 1, NOW)
    assert token.uses == 1
    (entry,) = entries
    assert (entry.target_id, entry.actor_name) == (device.device_id, f"claim:{made.token.prefix}")


async def test_a_refused_broker_login_records_nothing(database_url: str) -> None:
    async def broker_refuses(_: Enrollment) -> None:
        raise BrokerRefusedError

    async with database(database_url):
        await import_site()
        made = await site_token(max_uses=1)
        with pytest.raises(BrokerRefusedError):
            await enroll(made.code, "SN1", before_commit=broker_refuses)
        assert await Device.all().count() == 0
        assert (await ClaimToken.get(id=made.token.id)).uses == 0
        assert "device.enroll" not in await actions()
        assert isinstance(await enroll(made.code, "SN1"), Enrollment), "it may simply try again"


async def test_a_tokens_last_use_goes_to_one_of_two_terminals_at_once(database_url: str) -> None:
    async def broker_takes_its_time(_: Enrollment) -> None:
        await asyncio.sleep(0.05)  # both requests are in flight while the first holds its lock

    async with database(database_url):
        await import_site()
        made = await site_token(max_uses=1)
        results = await asyncio.gather(
            enroll(made.code, "SN-A", before_commit=broker_takes_its_time),
            enroll(made.code, "SN-B", before_commit=broker_takes_its_time),
        )
        assert (await ClaimToken.get(id=made.token.id)).uses == 1
        assert await Device.all().count() == 1
    assert sorted(type(r).__name__ for r in results) == ["Enrollment", "Refusal"]
    assert Refusal.USED in results


async def test_an_enrolled_serial_and_a_used_up_token_are_refused(database_url: str) -> None:
    async with database(database_url):
        await import_site()
        made = await site_token(max_uses=2, kind="kiosk")
        assert isinstance(await enroll(made.code, "SN1"), Enrollment)
        assert await enroll(made.code, "SN1") is Refusal.ALREADY_ENROLLED
        assert await enroll(made.code, "SN2", kind="booth") is Refusal.WRONG_KIND
        assert isinstance(await enroll(made.code, "SN2"), Enrollment)
        assert await enroll(made.code, "SN3") is Refusal.USED
        assert await enroll("0000-0000-0000-0000-0", "SN3") is Refusal.UNKNOWN
        assert (await ClaimToken.get(id=made.token.id)).uses == 2


# --- pre-registration --------------------------------------------------------------------------


async def test_a_preregistered_terminal_enrolls_once_with_its_own_serial(
    database_url: str,
) -> None:
    async with database(database_url):
        await import_site()
        ((device_id, made),) = await claim_store.pre_register(
            TEST_ACTOR, [Registration("SN-P1", "kiosk", SITE, WINDOW)], expires_in=DAY, now=NOW
        )
        registered = await Device.get(device_id=device_id)
        assert (registered.lifecycle, registered.broker_generation) == ("registered", 0)
        assert await enroll(made.code, "SN-OTHER") is Refusal.WRONG_SERIAL
        assert await enroll(made.code, "SN-P1") == Enrollment(device_id, 1, "kiosk")
        assert await enroll(made.code, "SN-P1") is Refusal.USED
        device = await Device.get(device_id=device_id)
        window = await ServiceWindow.get(number=WINDOW)
        assert await Device.all().count() == 1
    assert device_id == "kiosk-sn-p1"
    assert (device.window_id, device.lifecycle) == (window.id, "enrolled")


async def test_a_preregistration_file_is_taken_whole_or_not_at_all(database_url: str) -> None:
    rows = [
        Registration("SN-P1", "kiosk", SITE, WINDOW),
        Registration("SN-P2", "kiosk", SITE, "99"),
    ]
    async with database(database_url):
        await import_site()
        with pytest.raises(NotFoundError, match="no window '99'"):
            await claim_store.pre_register(TEST_ACTOR, rows, expires_in=DAY, now=NOW)
        assert await Device.all().count() == 0
        assert await ClaimToken.all().count() == 0
        assert "device.preregister" not in await actions()


async def test_a_known_serial_cannot_be_registered_again(database_url: str) -> None:
    async with database(database_url):
        await import_site()
        made = await site_token()
        await enroll(made.code, "SN-E1")
        await claim_store.pre_register(
            TEST_ACTOR, [Registration("SN-P1", "", SITE)], expires_in=None, now=NOW
        )
        for serial in ("SN-E1", "SN-P1"):
            with pytest.raises(InvalidFieldError) as refused:
                await claim_store.pre_register(
                    TEST_ACTOR, [Registration(serial, "kiosk", SITE)], expires_in=None, now=NOW
                )
            assert refused.value.field == "serial"
        with pytest.raises(InvalidFieldError):
            await claim_store.pre_register(
                TEST_ACTOR, [Registration("SN-P9", "toaster", SITE)], expires_in=None, now=NOW
            )
        assert await Device.all().count() == 2


# --- commissioning -----------------------------------------------------------------------------


def self_test(*failed: str) -> CommandResult:
    checks = {
        "printer0.test_print": CHECK_PASSED,
        **{name: check_failed("fault") for name in failed},
    }
    status = CommandStatus.FAILED if failed else CommandStatus.SUCCEEDED
    return CommandResult(
        command_id=SELF_TEST_AFTER_ENROLLMENT, status=status, checks=checks, at=NOW
    )


async def enrolled_terminal(serial: str = "SN1") -> str:
    await import_site()
    made = await site_token()
    enrolled = await enroll(made.code, serial)
    assert isinstance(enrolled, Enrollment)
    return enrolled.device_id


async def test_a_self_test_moves_an_enrolled_terminal_to_commissioning_once(
    database_url: str,
) -> None:
    async with database(database_url):
        device_id = await enrolled_terminal()
        assert await commissioning.record_self_test(device_id, self_test("pad0.keys"), NOW)
        assert await commissioning.record_self_test(device_id, self_test(), NOW + DAY)
        assert not await commissioning.record_self_test("kiosk-nobody", self_test(), NOW)
        device = await Device.get(device_id=device_id)
        commissioned = await AuditEntry.filter(action="device.commission")
    assert device.lifecycle == "commissioning"
    assert (device.self_test["status"], device.self_test["received_at"]) == (
        "succeeded", (NOW + DAY).isoformat(),
    )  # fmt: skip
    (entry,) = commissioned
    assert entry.after == {"lifecycle": "commissioning", "self_test": "failed"}


async def test_accepting_needs_a_self_test_that_passed(database_url: str) -> None:
    async with database(database_url):
        device_id = await enrolled_terminal()
        with pytest.raises(ConflictError, match="no self-test"):
            await commissioning.accept(TEST_ACTOR, device_id, note="", force=False, now=NOW)
        await commissioning.record_self_test(device_id, self_test("pad0.keys"), NOW)
        for note, force in (("", False), ("", True), ("pad on order", False)):
            with pytest.raises(ConflictError, match=r"pad0\.keys"):
                await commissioning.accept(TEST_ACTOR, device_id, note=note, force=force, now=NOW)
        assert (await Device.get(device_id=device_id)).lifecycle == "commissioning"
        with pytest.raises(NotFoundError):
            await commissioning.accept(TEST_ACTOR, "kiosk-nobody", note="", force=False, now=NOW)
        assert "device.accept" not in await actions()


async def test_a_failed_check_is_accepted_with_force_and_a_note(database_url: str) -> None:
    async with database(database_url):
        device_id = await enrolled_terminal()
        await commissioning.record_self_test(device_id, self_test("pad0.keys"), NOW)
        device = await commissioning.accept(
            TEST_ACTOR, device_id, note="pad on order", force=True, now=NOW
        )
        (entry,) = await AuditEntry.filter(action="device.accept")
    assert device.lifecycle == "in_service"
    assert (entry.note, entry.after) == (
        "pad on order", {"lifecycle": "in_service", "failed_checks": ["pad0.keys"]},
    )  # fmt: skip


async def test_only_a_commissioning_terminal_is_accepted(database_url: str) -> None:
    async with database(database_url):
        device_id = await enrolled_terminal()
        await commissioning.record_self_test(device_id, self_test(), NOW)
        accepted = await commissioning.accept(TEST_ACTOR, device_id, note="", force=False, now=NOW)
        assert accepted.lifecycle == "in_service"
        assert (await Device.get(device_id=device_id)).lifecycle == "in_service"
        with pytest.raises(ConflictError, match="in_service"):
            await commissioning.accept(TEST_ACTOR, device_id, note="", force=False, now=NOW)
        assert await actions() == [
            "claim.create", "device.enroll", "device.commission", "device.accept",
        ]  # fmt: skip
