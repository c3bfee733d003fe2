"""/api/v1/rollouts: create rollouts, list and show them, and the operator's actions on them.

Rollouts are fleet-wide, like the packages they send: creating one or acting on it needs
``rollout.write`` and a token for the whole tree (a scoped one is refused ``out_of_scope``);
every role reads them, and a scoped token's device list holds only the devices in its scope.
A body of the wrong shape is a 400 naming the field; a rollout that cannot be made as asked a
422 with ``details.reason`` and ``details.field``; an action the phase refuses a 409 whose code
is the reason (``cannot_pause``, ``no_previous_version``, ``devices_busy``). Each change is
audited. The executor does the work (``rollout_executor``); see docs/rollouts.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from datetime import datetime
from functools import partial

from aiohttp import web
from prometheus_client import CollectorRegistry
from tortoise.exceptions import IntegrityError

from control_plane import audit, rollout_body, rollout_create, rollout_views
from control_plane.admin_errors import ALREADY_EXISTS, ConflictError, NotFoundError
from control_plane.auth import Permission
from control_plane.db.content_models import ContentPackage
from control_plane.device_filters import DeviceFilters, QueryError
from control_plane.device_queries import candidates
from control_plane.fleet import FleetState
from control_plane.rollout_executor import RolloutExecutor
from control_plane.rollout_metrics import RolloutCollector
from control_plane.rollout_notices import NoticeMaker
from control_plane.rollout_store import Tracked
from control_plane.rollouts import DeviceStep, OperationError, RolloutPhase, RolloutSpecError
from control_plane.scope_lookup import require_whole_tree
from edge.content.manifest import NAME_PATTERN

from . import rollout_schemas as shapes
from .admin import (
    Handler,
    by_method,
    cursor_after,
    json_object,
    only_parameters,
    page_response,
    refusals,
)
from .auth import PRINCIPAL, ApiRoute
from .errors import ApiError, invalid_field, invalid_parameter
from .openapi import CheckedBody
from .params import choice, integer, limit_param
from .rollout_forward import DRIVER, FORWARD_TIMED_OUT, UNDRIVEN


class StandaloneExecutor:
    """The executor of an app the server gave none (tests of the API alone), made on first use.

    It stores and plans rollouts like the server's, and publishes nothing: no broker here.
    """

    def __init__(self, fleet: FleetState) -> None:
        self._fleet = fleet
        self._lock = asyncio.Lock()
        self.executor: RolloutExecutor | None = None

    async def get(self) -> RolloutExecutor:
        async with self._lock:
            if self.executor is None:
                hours_of = self._fleet.hours_of
                made = RolloutExecutor(NoticeMaker(None, hours_of), hours_of, _unpublished)
                await made.load()
                self.executor = made
        return self.executor


def _unpublished(_message: object) -> bool:
    return False  # no broker connection: the notice waits, as it would for a broker outage


STANDALONE = web.AppKey("rollouts_standalone", StandaloneExecutor)

ROLLOUTS = "/api/v1/rollouts"
ROLLOUT = "/api/v1/rollouts/{id}"
DEVICES = "/api/v1/rollouts/{id}/devices"
ACTIONS = ("pause", "resume", "cancel", "rollback", "retry")
ACTION_MEANING = {
    "pause": "pause a running rollout: nothing more is sent until it is resumed",
    "resume": 'resume a paused rollout; `{"waive_thresholds": true}` lets the current wave'
    " advance once all of it has finished, whatever its shares",
    "cancel": "cancel: devices not yet installing are cancelled, installs under way finish",
    "rollback": "roll back to the previous version: succeeded devices swap back in their window",
    "retry": "queue the failed devices again (one more attempt each); a completed rollout runs"
    " again, a paused one stays paused",
}
REFUSED_ACTION = "the rollout's phase refuses the action: the code is the reason"
ROUTES = (
    ApiRoute(
        "GET",
        ROLLOUTS,
        Permission.ROLLOUT_READ,
        "the rollouts, newest first, with per-wave counts: `?phase=`, `?package=`",
        answer=shapes.RolloutPage,
        unavailable=UNDRIVEN,
        timeout=FORWARD_TIMED_OUT,
        query=shapes.RolloutParameters,
    ),
    ApiRoute(
        "POST",
        ROLLOUTS,
        Permission.ROLLOUT_WRITE,
        "start a rollout of a package to the targeted devices, in waves (a token for the whole"
        " tree)",
        answer=shapes.RolloutView,
        status=201,
        unavailable=UNDRIVEN,
        timeout=FORWARD_TIMED_OUT,
        body=CheckedBody(
            shapes.NewRollout,
            refused="the rollout cannot be made as asked: `details.reason` (waves_not_increasing,"
            " out_of_range, no_devices, unknown_device, unknown_node, …) and `details.field`",
        ),
        conflict="`devices_busy`: targeted devices are in an unfinished rollout of the package;"
        " `already_exists`: a rollout has this id",
    ),
    ApiRoute(
        "GET",
        ROLLOUT,
        Permission.ROLLOUT_READ,
        "one rollout: phase, waves with their counts by step, thresholds, package, targeting",
        answer=shapes.RolloutView,
        unavailable=UNDRIVEN,
        timeout=FORWARD_TIMED_OUT,
    ),
    ApiRoute(
        "GET",
        DEVICES,
        Permission.ROLLOUT_READ,
        "a rollout's devices in id order, with step, since, attempts and last failure: `?step=`,"
        " `?wave=`; a scoped token sees those in its scope",
        answer=shapes.RolloutDevicePage,
        unavailable=UNDRIVEN,
        timeout=FORWARD_TIMED_OUT,
        query=shapes.RolloutDeviceParameters,
    ),
    *(
        ApiRoute(
            "POST",
            f"{ROLLOUT}/{action}",
            Permission.ROLLOUT_WRITE,
            ACTION_MEANING[action],
            answer=shapes.RolloutView,
            body=shapes.ResumeBody if action == "resume" else None,
            conflict=REFUSED_ACTION,
            unavailable=UNDRIVEN,
            timeout=FORWARD_TIMED_OUT,
        )
        for action in ACTIONS
    ),
)


def handlers(clock: Callable[[], datetime]) -> dict[str, Handler]:
    actions = {f"{ROLLOUT}/{action}": refusals(partial(act, clock, action)) for action in ACTIONS}
    return {
        ROLLOUTS: refusals(by_method({"GET": list_rollouts, "POST": partial(create, clock)})),
        ROLLOUT: refusals(show_rollout),
        DEVICES: refusals(list_devices),
        **actions,
    }


def install(app: web.Application, fleet: FleetState, registry: CollectorRegistry) -> None:
    """The rollout gauges on ``registry``, and a stand-in executor for an app given none."""
    standalone = StandaloneExecutor(fleet)
    app[STANDALONE] = standalone
    registry.register(RolloutCollector(lambda: _executor(app) or standalone.executor))


def _executor(app: web.Application) -> RolloutExecutor | None:
    """The server's executor while this replica drives the rollouts (``rollout_forward``)."""
    driver = app.get(DRIVER)
    return driver.executor if driver is not None else None


async def executor_of(request: web.Request) -> RolloutExecutor:
    if request.app.get(DRIVER) is None:  # an app the server gave no driver: the API alone
        return await request.app[STANDALONE].get()
    executor = _executor(request.app)
    if executor is None:  # stopped driving since ``forward_rollouts`` let the request through
        msg = "this replica stopped driving the rollouts while answering; send the request again"
        raise ApiError(503, "rollouts_elsewhere", msg, {"Retry-After": "5"})
    return executor


async def tracked_of(request: web.Request) -> tuple[RolloutExecutor, Tracked]:
    executor = await executor_of(request)
    rollout_id = request.match_info["id"]
    tracked = executor.rollouts.get(rollout_id)
    if tracked is None:
        msg = f"no rollout {rollout_id!r}"
        raise NotFoundError(msg)
    return executor, tracked


# --- reading ------------------------------------------------------------------------------------


async def list_rollouts(request: web.Request) -> web.Response:
    only_parameters(request, {"phase", "package"})
    limit = limit_param(request)
    phase = choice(request, "phase", {phase.value for phase in RolloutPhase})
    package = request.query.get("package")
    if package is not None and not re.fullmatch(NAME_PATTERN, package):
        msg = f"package must be a package name ({NAME_PATTERN}), not {package!r}"
        raise invalid_parameter(msg, parameter="package")
    executor = await executor_of(request)
    after = cursor_after(request, str)
    if after is not None and after not in executor.rollouts:
        msg = "cursor: not a cursor of this listing (pass the next_cursor of the previous page)"
        raise invalid_parameter(msg, parameter="cursor")
    page = rollout_views.rollout_page(
        executor.rollouts.values(),
        phase=None if phase is None else RolloutPhase(phase),
        package=package,
        after=after,
        limit=limit,
    )
    return page_response(page)


async def show_rollout(request: web.Request) -> web.Response:
    _no_parameters(request)
    _, tracked = await tracked_of(request)
    return web.json_response(rollout_views.rollout_view(tracked))


async def list_devices(request: web.Request) -> web.Response:
    only_parameters(request, {"step", "wave"})
    limit = limit_param(request)
    step = choice(request, "step", {step.value for step in DeviceStep})
    wave = integer(request, "wave")
    if wave is not None and wave < 1:
        msg = f"wave counts from 1, not {wave}"
        raise invalid_parameter(msg, parameter="wave")
    _, tracked = await tracked_of(request)
    if wave is not None and wave > len(tracked.state.members):
        msg = f"wave must be from 1 to {len(tracked.state.members)}, not {wave}"
        raise invalid_parameter(msg, parameter="wave")
    wanted = rollout_views.DeviceFilter(
        step=None if step is None else DeviceStep(step),
        wave=None if wave is None else wave - 1,
        visible=await _visible(request),
    )
    page = rollout_views.device_page(tracked, wanted, after=cursor_after(request, str), limit=limit)
    return page_response(page)


async def _visible(request: web.Request) -> set[str] | None:
    """The device ids a scoped token sees (None: a token for the whole tree sees all)."""
    scope_path = request[PRINCIPAL].scope_path
    if scope_path is None:
        return None
    query = await candidates(DeviceFilters(), scope_path)
    return {str(device_id) for device_id in await query.values_list("device_id", flat=True)}


# --- changing -----------------------------------------------------------------------------------


async def create(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _no_parameters(request)
    principal = request[PRINCIPAL]
    require_whole_tree(principal, "a rollout")
    body = await json_object(request)
    try:
        asked = rollout_body.parse(body)
    except rollout_body.BodyShapeError as exc:
        raise invalid_field(str(exc), field=exc.field) from None
    except RolloutSpecError as exc:
        raise _unprocessable(exc) from None
    executor = await executor_of(request)
    if asked.request.rollout_id in executor.rollouts:
        msg = f"a rollout {asked.request.rollout_id!r} exists already"
        raise ConflictError(msg, ALREADY_EXISTS)
    sha256 = await _package_sha256(asked.package)
    try:
        tracked = await rollout_create.prepare(
            dataclasses.replace(asked.request, package_sha256=sha256),
            created_by=principal.name,
            scope_path=principal.scope_path,
            now=clock(),
        )
    except QueryError as exc:  # a node the tree does not have
        spec = rollout_body.SpecFieldError(exc.message, field="target.node", reason="unknown_node")
        raise _unprocessable(spec) from None
    except RolloutSpecError as exc:
        raise _unprocessable(exc) from None
    try:
        await executor.create(tracked)
    except OperationError as exc:
        raise _conflict(exc, tracked=None) from None
    except IntegrityError:  # the same id, created meanwhile
        msg = f"a rollout {tracked.rollout_id!r} exists already"
        raise ConflictError(msg, ALREADY_EXISTS) from None
    await audit.record(
        "rollout.create",
        principal.actor,
        "rollout",
        tracked.rollout_id,
        after=rollout_views.audit_view(tracked),
        at=clock(),
    )
    return web.json_response(rollout_views.rollout_view(tracked), status=201)


async def act(clock: Callable[[], datetime], action: str, request: web.Request) -> web.Response:
    _no_parameters(request)
    principal = request[PRINCIPAL]
    require_whole_tree(principal, "a rollout")
    waive = await _waive(request) if action == "resume" else await _no_body(request)
    executor, tracked = await tracked_of(request)
    before = rollout_views.audit_view(tracked)
    try:
        await executor.operate(tracked.rollout_id, action, waive=waive)
    except OperationError as exc:
        raise _conflict(exc, tracked) from None
    await audit.record(
        f"rollout.{action}",
        principal.actor,
        "rollout",
        tracked.rollout_id,
        before=before,
        after=rollout_views.audit_view(tracked),
        note="thresholds waived" if waive else "",
        at=clock(),
    )
    return web.json_response(rollout_views.rollout_view(tracked))


async def _waive(request: web.Request) -> bool:
    if not await request.read():
        return False
    body = await json_object(request)
    if unknown := sorted(set(body) - {"waive_thresholds"}):
        msg = "unknown field; resume takes waive_thresholds"
        raise invalid_field(msg, field=unknown[0])
    waive = body.get("waive_thresholds", False)
    if not isinstance(waive, bool):
        msg = "true or false"
        raise invalid_field(msg, field="waive_thresholds")
    return waive


async def _no_body(request: web.Request) -> bool:
    if await request.read() and await json_object(request):
        msg = "this action takes no body (or {})"
        raise invalid_field(msg, field=None)
    return False


async def _package_sha256(package: rollout_body.PackageRef) -> str:
    if package.sha256 is not None:
        return package.sha256
    query = ContentPackage.filter(name=package.name, version=package.version)
    if package.kind is not None:
        query = query.filter(kind=package.kind)
    found = await query.values_list("sha256", "kind")
    if not found:
        msg = f"no package {package.name} version {package.version} in the repository"
        raise NotFoundError(msg)
    if len(found) > 1:
        kinds = ", ".join(sorted(str(kind) for _, kind in found))
        msg = f"package {package.name} version {package.version} is of several kinds ({kinds})"
        spec = rollout_body.SpecFieldError(msg, field="package.kind", reason="ambiguous_package")
        raise _unprocessable(spec)
    return str(found[0][0])


def _unprocessable(exc: RolloutSpecError) -> ApiError:
    details = {"reason": exc.reason}
    if (field := rollout_body.field_of(exc)) is not None:
        details["field"] = field
    return ApiError(422, "invalid_rollout", str(exc), details=details)


def _conflict(exc: OperationError, tracked: Tracked | None) -> ApiError:
    details = {"reason": exc.reason}
    if tracked is not None:
        details["phase"] = tracked.state.phase.value
    return ApiError(409, exc.reason, str(exc), details=details)


def _no_parameters(request: web.Request) -> None:
    if request.query:
        name = min(request.query)
        msg = f"{name} is not a parameter of this route; it takes none"
        raise invalid_parameter(msg, parameter=name)
