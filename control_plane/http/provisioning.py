"""/api/v1/claims and a device's commissioning: provisioning for technicians in the field.

A technician in a village has a token, not the database: these routes do what ``termfleet
provision claims create|list|revoke``, ``status`` and ``accept`` do, within the token's scope.
A claim code is for a site in scope (a batch's tokens stay with the CLI); like a token's secret
it is in the answer to its POST only, marked ``Cache-Control: no-store``. Its enrollment link
carries the claim login's password, which the server derives from the provisioning secret: a
server run without ``--secret-file`` answers ``link: null``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from control_plane import commissioning
from control_plane.admin_errors import InvalidFieldError
from control_plane.auth import Permission
from control_plane.device_admin import MAX_NOTE
from control_plane.inventory import MAX_TEXT, NAME
from control_plane.paging import page_of
from edge.protocol import CLAIM_USERNAME
from edge.protocol.claim_code import enroll_link, new_code
from provisioning import claim_store, claim_views

from . import request_schemas, schemas
from .admin import (
    by_method,
    created,
    cursor_after,
    json_object,
    only_parameters,
    page_response,
    refusals,
)
from .api_tokens import MAX_ID, MAX_ID_DIGITS
from .auth import PRINCIPAL, ApiRoute
from .errors import invalid_parameter
from .params import limit_param

if TYPE_CHECKING:
    from provisioning.settings import ProvisioningSettings

CLAIMS = "/api/v1/claims"
REVOKE = "/api/v1/claims/{id}/revoke"
COMMISSIONING = "/api/v1/devices/{device_id}/commissioning"
ACCEPT = "/api/v1/devices/{device_id}/accept"
CLAIM_FIELDS = ("site", "kind", "uses", "expires_in_hours", "note")
ACCEPT_FIELDS = ("note", "force")
CLAIM_LINK: web.AppKey[Callable[[str], str]] = web.AppKey("claim_link")
"""Makes a claim code's enrollment link: set by the server only when it holds the secret."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES = (
    ApiRoute(
        "GET",
        COMMISSIONING,
        Permission.DEVICES_READ,
        "a device's enrollment and the pass or fail of each check of its last self-test",
        answer=schemas.Commissioning,
    ),
    ApiRoute(
        "POST",
        ACCEPT,
        Permission.DEVICES_PROVISION,
        'put a commissioning device in service: every check passed, or `{"force": true,'
        ' "note": WHY}`',
        answer=schemas.Commissioning,
        body=request_schemas.Acceptance,
        conflict="no self-test yet, failed checks without force and a note, or the device is"
        " not commissioning",
    ),
    ApiRoute(
        "GET",
        CLAIMS,
        Permission.DEVICES_PROVISION,
        "the claim codes of the sites in the token's scope, with their state; never a code",
        answer=schemas.ClaimPage,
        query=request_schemas.Paged,
    ),
    ApiRoute(
        "POST",
        CLAIMS,
        Permission.DEVICES_PROVISION,
        'make a claim code for a site in scope: `{"site": CODE, "kind", "uses",'
        ' "expires_in_hours", "note"}`; the code and its enrollment link are shown once',
        answer=schemas.NewClaimCode,
        status=201,
        body=request_schemas.NewClaim,
    ),
    ApiRoute(
        "POST",
        REVOKE,
        Permission.DEVICES_PROVISION,
        "revoke a claim code of a site in scope; terminals enrolled with it stay enrolled",
        answer=schemas.Claim,
    ),
)


def handlers(clock: Callable[[], datetime]) -> dict[str, Handler]:
    return {
        COMMISSIONING: show_commissioning,
        ACCEPT: refusals(partial(accept, clock)),
        CLAIMS: by_method(
            {
                "GET": refusals(partial(list_claims, clock)),
                "POST": refusals(partial(create_claim, clock)),
            }
        ),
        REVOKE: refusals(partial(revoke_claim, clock)),
    }


def claim_links(settings: ProvisioningSettings) -> Callable[[str], str]:
    """The enrollment links this server gives: its public broker, the claim login's password."""
    broker = settings.public_broker
    host = f"[{broker.host}]" if ":" in broker.host else broker.host  # an IPv6 address
    server = f"{'mqtts' if broker.tls else 'mqtt'}://{host}:{broker.port}"
    link = partial(enroll_link, server=server, claim_password=settings.password(CLAIM_USERNAME))
    link(new_code())  # a broker address links refuse fails the server's start, not each answer
    return link


# --- claim codes --------------------------------------------------------------------------------


async def list_claims(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    only_parameters(request, set())
    limit = limit_param(request)
    principal = request[PRINCIPAL]
    tokens = await claim_views.site_tokens(
        principal.scope_path, after=cursor_after(request, int), limit=limit + 1
    )
    now = clock()
    page = page_of(
        tokens,
        limit,
        lambda token: token.id,
        lambda token: claim_views.claim_view(token, token.site.code if token.site else None, now),
    )
    return page_response(page)


async def create_claim(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    wanted = new_claim(await json_object(request))
    principal = request[PRINCIPAL]
    now = clock()
    made = await claim_store.create_token(
        principal.actor,
        site_code=wanted["site"],
        kind=wanted["kind"],
        max_uses=wanted["uses"],
        expires_in=timedelta(hours=wanted["expires_in_hours"]),
        note=wanted["note"],
        now=now,
        seen_by=principal,
    )
    link = request.app.get(CLAIM_LINK)
    view = {
        "code": made.code,
        "link": link(made.code) if link is not None else None,
        "claim": claim_views.claim_view(made.token, wanted["site"], now),
    }
    return created(view, **{"Cache-Control": "no-store"})


async def revoke_claim(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not (
        raw.isascii() and raw.isdigit() and len(raw) <= MAX_ID_DIGITS and 0 < int(raw) <= MAX_ID
    ):
        msg = f"id must be a claim code's id (from the listing), not {raw!r}"
        raise invalid_parameter(msg, parameter="id")
    principal = request[PRINCIPAL]
    now = clock()
    token = await claim_store.revoke_token(principal.actor, int(raw), now, seen_by=principal)
    site = await claim_views.site_code(token)
    return web.json_response(claim_views.claim_view(token, site, now))


def new_claim(body: Mapping[str, object]) -> dict[str, Any]:
    """The fields of a new claim code, checked; each refusal names its field."""
    _only(body, CLAIM_FIELDS)
    site = body.get("site")
    if not isinstance(site, str) or not NAME.fullmatch(site):
        field = "site"
        raise InvalidFieldError(field, "the code of the site the terminals go to is required")
    kind = body.get("kind")
    if kind is not None and (not isinstance(kind, str) or kind not in claim_store.KINDS):
        field = "kind"
        raise InvalidFieldError(field, f"one of {', '.join(claim_store.KINDS)}, or leave it out")
    note = body.get("note")
    if note is not None and not _is_note(note, MAX_TEXT):
        field = "note"
        raise InvalidFieldError(field, f"printable text of up to {MAX_TEXT} characters")
    return {
        "site": site,
        "kind": kind or "",
        "uses": _whole("uses", body, 1, claim_store.MAX_USES, 1),
        "expires_in_hours": _whole(
            "expires_in_hours",
            body,
            1,
            claim_store.MAX_API_EXPIRY_HOURS,
            claim_store.DEFAULT_EXPIRY_HOURS,
        ),
        "note": note or "",
    }


def _only(body: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(name) for name in body if name not in allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise InvalidFieldError(None, f"unknown field(s) {', '.join(unknown)}; allowed: {expected}")


def _whole(field: str, body: Mapping[str, object], low: int, high: int, default: int) -> int:
    value = body.get(field)
    if value is None:
        return default
    if type(value) is not int or not low <= value <= high:  # bool is an int, and no count
        raise InvalidFieldError(field, f"a whole number from {low} to {high}")
    return value


def _is_note(value: object, max_length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= max_length
        and all(char.isprintable() or char in "\n\t" for char in value)
    )


# --- commissioning ------------------------------------------------------------------------------


@refusals
async def show_commissioning(request: web.Request) -> web.Response:
    _no_parameters(request)
    view = await commissioning.status(request.match_info["device_id"], seen_by=request[PRINCIPAL])
    return web.json_response(view)


async def accept(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _no_parameters(request)
    # No body is as good as an empty one: every check passed, nothing to force or note.
    body = await json_object(request) if (await request.read()).strip() else {}
    _only(body, ACCEPT_FIELDS)
    note, force = body.get("note"), body.get("force", False)
    if note is not None and not _is_note(note, MAX_NOTE):
        field = "note"
        raise InvalidFieldError(field, f"printable text of up to {MAX_NOTE} characters")
    if not isinstance(force, bool):
        field = "force"
        raise InvalidFieldError(field, "true or false")
    device_id, principal = request.match_info["device_id"], request[PRINCIPAL]
    await commissioning.accept(
        principal.actor,
        device_id,
        note=str(note or ""),
        force=force,
        now=clock(),
        seen_by=principal,
    )
    return web.json_response(await commissioning.status(device_id, seen_by=principal))


def _no_parameters(request: web.Request) -> None:
    if request.query:
        name = min(request.query)
        msg = f"{name} is not a parameter of this route; it takes none"
        raise invalid_parameter(msg, parameter=name)
