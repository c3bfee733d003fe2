"""The claim service: answers enrolling terminals on ``termfleet/v1/claim/{claim id}/request``.

A terminal connects with the shared claim login, which can do nothing but this exchange, and
sends its claim code, serial, kind and a fresh X25519 public key. The service checks the code
(``claim_store.enroll``), gives the terminal its own broker login and role while the database
rows are locked, and answers on the claim id's response topic with the device id and the
broker password sealed to that key (libsodium sealed box): other holders of the claim login
could read the response topic only if they guessed its 128-bit claim id, and even then could
not open the password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from nacl.exceptions import CryptoError
from nacl.public import PublicKey, SealedBox

from control_plane.db import DATABASE_ERRORS
from control_plane.db.whole import whole
from edge import mqtt
from edge.agent.backoff import Backoff
from edge.protocol import Channel, ClaimRequest, ClaimResponse, ClaimStatus, codec, topics
from edge.protocol.claim_code import ClaimCodeError, normalize
from edge.protocol.errors import ProtocolError

from . import claim_store, dynsec
from .broker_admin import BrokerAdmin, DynsecError, open_admin
from .claims import Refusal
from .rate_limit import ClaimLimits
from .settings import ProvisioningSettings

log = logging.getLogger(__name__)

SHARE_GROUP = "termfleet-claims"
"""Control-plane replicas split the claim requests between them."""
RECONNECT_INITIAL_S = 1.0
RECONNECT_MAX_S = 30.0
PUBLIC_KEY_BYTES = 32
ANSWERS_KEPT = 1_000
"""Answers remembered by claim id, so a terminal repeating its request gets the same one."""
ACCEPTED = "accepted"
TRY_AGAIN_ERRORS: tuple[type[Exception], ...] = (DynsecError, *DATABASE_ERRORS)
"""The broker refusing a login, the database busy or away: the terminal is told to try again."""


class ClaimService:
    """Turns claim requests into answers; ``run`` serves them over MQTT."""

    def __init__(  # noqa: PLR0913 - clocks, limits and hooks, each replaceable by tests
        self,
        settings: ProvisioningSettings,
        *,
        limits: ClaimLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        exclusive: asyncio.Lock | None = None,
        counted: Callable[[str], None] = lambda _outcome: None,
    ) -> None:
        self.settings = settings
        self.limits = limits or ClaimLimits()
        self.outcomes: Counter[str] = Counter()
        """Answers given, by outcome: ``accepted`` or a refusal reason (a metric)."""
        self._exclusive = exclusive or asyncio.Lock()
        """Held while enrolling: a reconcile running meanwhile would take a login created
        after it read the database for an unknown one, and disable it."""
        self._counted = counted
        self._answered: OrderedDict[str, ClaimResponse] = OrderedDict()
        self._clock = clock
        self._monotonic = monotonic

    async def answer(self, request: ClaimRequest, admin: BrokerAdmin) -> ClaimResponse:
        async with self._exclusive:
            try:
                response = await self._decide(request, admin)
            except mqtt.MqttError:
                raise  # the broker went away: ``run`` connects again, the terminal asks again
            except Exception:
                # A defect, or a row nothing foresaw: one request must not end the service, and
                # the control plane with it. The terminal is told to try later; the log says why.
                log.exception("could not answer the claim of serial %r", request.serial[:64])
                response = refused(Refusal.UNAVAILABLE)
        outcome = ACCEPTED if response.status is ClaimStatus.ACCEPTED else response.reason
        self._count(outcome)
        if outcome != ACCEPTED:
            log.info("claim refused (%s) for serial %r", outcome, request.serial[:64])
        return response

    async def _decide(self, request: ClaimRequest, admin: BrokerAdmin) -> ClaimResponse:
        if not self.limits.allow(request.serial, self._monotonic()):
            return refused(Refusal.RATE_LIMITED)
        try:
            code = normalize(request.claim_code)
        except ClaimCodeError:
            return refused(Refusal.UNKNOWN)
        box = _sealing_box(request.agent_public_key)
        if box is None:
            return refused(Refusal.INVALID)
        password = ""

        async def give_login(enrollment: claim_store.Enrollment) -> None:
            nonlocal password
            password = self.settings.password(enrollment.device_id, enrollment.generation)
            await admin.run(await login_commands(admin, enrollment.device_id, password))

        try:
            result = await claim_store.enroll(
                code,
                serial=request.serial,
                kind=str(request.kind),
                now=self._clock(),
                before_commit=give_login,
            )
        except mqtt.MqttError:
            raise  # the broker away (an OSError, so in DATABASE_ERRORS too): ``run`` reconnects
        except TRY_AGAIN_ERRORS as exc:
            # The broker refused the login, or the database is busy or away: nothing was
            # recorded, and neither may end the control plane; the terminal tries again.
            log.error("could not enroll a terminal: %s: %s", type(exc).__name__, exc)  # noqa: TRY400
            return refused(Refusal.UNAVAILABLE)
        if isinstance(result, Refusal):
            return refused(result)
        log.info(
            "enrolled %s (serial %r, generation %d)",
            result.device_id,
            request.serial,
            result.generation,
        )
        return ClaimResponse(
            status=ClaimStatus.ACCEPTED,
            device_id=result.device_id,
            username=result.device_id,
            sealed_password=base64.b64encode(box.encrypt(password.encode())).decode(),
            broker=self.settings.public_broker,
            content_keys=self.settings.content_keys,
            config=dict(self.settings.initial_config),
        )

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self._counted(outcome)

    async def run(self) -> None:
        """Serve claim requests until cancelled, reconnecting with capped jittered backoff."""
        # A clean session: a request sent while it reconnects is lost, and the terminal sends
        # it again (edge.agent.enroll), answered from ``_answered`` if it was seen before.
        options = mqtt.SessionOptions(client_id=f"termfleet-claims-{socket.gethostname()}")
        backoff = Backoff(RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        while True:
            try:
                async with (
                    open_admin(self.settings.login(dynsec.ADMIN_USERNAME)) as admin,
                    mqtt.connect(
                        self.settings.login(dynsec.CLAIM_SERVICE_USERNAME), options
                    ) as connection,
                ):
                    share = topics.shared(SHARE_GROUP, topics.claim_request_filter())
                    await connection.subscribe(share, qos=1)
                    log.info("claim service listening on %s", self.settings.broker)
                    backoff.reset()
                    async for message in connection.messages():
                        await whole(self._serve(message, connection, admin))
            except mqtt.MqttError as exc:
                log.warning("claim service lost the broker: %s", exc)
            await asyncio.sleep(backoff.next())

    async def _serve(
        self, message: mqtt.Incoming, connection: mqtt.Connection, admin: BrokerAdmin
    ) -> None:
        try:
            topic = topics.parse(message.topic)
            request = codec.decode(Channel.REQUEST, message.payload)
        except ProtocolError as exc:
            self._count(Refusal.INVALID)
            log.info("unreadable claim request on %s: %s", message.topic, exc)
            return
        if not isinstance(request, ClaimRequest):
            return
        response = self._answered.get(topic.subject)
        if response is None:
            response = await self.answer(request, admin)
            self._answered[topic.subject] = response
            while len(self._answered) > ANSWERS_KEPT:
                self._answered.popitem(last=False)
        await connection.publish(
            mqtt.Outgoing(topics.claim(topic.subject, Channel.RESPONSE), codec.encode(response))
        )


def refused(reason: Refusal) -> ClaimResponse:
    return ClaimResponse(status=ClaimStatus.REFUSED, reason=reason.value)


async def login_commands(
    admin: BrokerAdmin, device_id: str, password: str
) -> list[dict[str, object]]:
    """The terminal's role and login, created or, on re-enrollment, given the new password.

    Asked first rather than tolerated after: 2.0.11 answers "Internal error" to an
    addClientRole for a role the client holds already.
    """
    # Before the broker is asked: an id that passes for one of termfleet's own logins (a row
    # imported before imports refused them) must not be handed that login's password.
    dynsec.check_device_id(device_id)
    [answer] = await admin.run(
        [{"command": "getClient", "username": device_id}], tolerate={"Client not found"}
    )
    client = answer.get("data", {}).get("client")
    role = dynsec.device_role(device_id)
    if client is None:
        return dynsec.enroll_commands(dynsec.device_client(device_id, password), role)
    held = {r.get("rolename") for r in client.get("roles", [])}
    return [
        dynsec.create_role(role),  # "already exists" is tolerated
        *([] if role.name in held else [dynsec.add_client_role(device_id, role.name)]),
        dynsec.set_password(device_id, password),
        {"command": "enableClient", "username": device_id},
    ]


def _sealing_box(public_key: str) -> SealedBox[PublicKey] | None:
    try:
        raw = base64.b64decode(public_key, validate=True)
        return SealedBox(PublicKey(raw)) if len(raw) == PUBLIC_KEY_BYTES else None
    except (binascii.Error, ValueError, CryptoError):
        return None
