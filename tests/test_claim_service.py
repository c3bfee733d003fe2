"""The claim service's answers when what it depends on fails: a refusal to retry, no crash."""

from __future__ import annotations

import base64

import pytest
from nacl.public import PrivateKey
from tortoise.exceptions import OperationalError

from edge.mqtt import BrokerAddress
from edge.protocol import BrokerEndpoint, ClaimRequest, ClaimStatus, DeviceKind
from edge.protocol.claim_code import new_code
from provisioning import claim_service, claim_store
from provisioning.settings import ProvisioningSettings


def request(public_key: str) -> ClaimRequest:
    return ClaimRequest(
        claim_code=new_code(), serial="SN-1", kind=DeviceKind.KIOSK, agent_public_key=public_key
    )


def service() -> claim_service.ClaimService:
    settings = ProvisioningSettings(
        secret=bytes(32), broker=BrokerAddress("127.0.0.1"), public_broker=BrokerEndpoint()
    )
    return claim_service.ClaimService(settings)


async def test_a_database_error_during_a_claim_is_a_retryable_refusal_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def busy(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(claim_store, "enroll", busy)
    claims = service()
    key = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    answer = await claims.answer(request(key), admin=None)  # type: ignore[arg-type]
    assert (answer.status, answer.reason) == (ClaimStatus.REFUSED, "unavailable")
    assert claims.outcomes["unavailable"] == 1


@pytest.mark.parametrize("public_key", ["", "not base64!", base64.b64encode(b"short").decode()])
async def test_a_request_without_a_usable_key_is_refused_before_anything_is_recorded(
    monkeypatch: pytest.MonkeyPatch, public_key: str
) -> None:
    async def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("enroll was called")

    monkeypatch.setattr(claim_store, "enroll", must_not_run)
    answer = await service().answer(request(public_key), admin=None)  # type: ignore[arg-type]
    assert (answer.status, answer.reason) == (ClaimStatus.REFUSED, "invalid")
