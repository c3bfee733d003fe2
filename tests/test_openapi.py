"""The OpenAPI document against the code: every route in it, and the API against it (schemathesis).

schemathesis generates requests from the document, valid and invalid, sends them to the real API
(on the scoped tree, SQLite and PostgreSQL) with an admin token, and checks each answer: never a
5xx, a status the document lists, JSON of the schema it declares for that status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import ignored_auth, positive_data_acceptance
from schemathesis.core.result import Ok

from control_plane import tokens
from control_plane.auth import PERMISSION_MEANING, Role
from control_plane.fleet import FleetState
from control_plane.http import openapi
from control_plane.http.app import API_ROUTES, make_app
from control_plane.http.auth_doc import OPEN_ROUTES
from control_plane.http.rollout_forward import ROLLOUTS_PATH
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from tests.support.admin_api import admin_api_in_a_thread
from tests.support.device_fleet import device_api
from tests.support.postgres import find_postgres
from tests.support.tokens import TEST_ACTOR


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document(API_ROUTES)
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_document_lists_every_route_the_server_serves() -> None:
    fleet = FleetState({})
    metrics = ControlPlaneMetrics(fleet)
    app = make_app(fleet, metrics, Ingest(fleet, metrics))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"  # aiohttp adds HEAD to GETs
    }
    document = openapi.document(API_ROUTES)
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    open_routes = {(method, path) for method, path, _ in OPEN_ROUTES}

    assert served == documented | open_routes
    assert not documented & open_routes


def test_each_operation_names_its_permission_and_meaning() -> None:
    document = openapi.document(API_ROUTES)
    for route in API_ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["x-permission"] == route.permission.value
        assert PERMISSION_MEANING[route.permission] in operation["description"]
        assert str(route.status) in operation["responses"]
        assert ("409" in operation["responses"]) == (route.conflict is not None)


def test_the_forwarded_routes_and_only_they_document_the_forward_answers() -> None:
    # A replica that does not drive the rollouts forwards them, and answers 503 or 504 for them.
    document = openapi.document(API_ROUTES)
    for route in API_ROUTES:
        responses = document["paths"][route.path][route.method.lower()]["responses"]
        forwarded = route.path.startswith(ROLLOUTS_PATH)
        assert ("503" in responses, "504" in responses) == (forwarded, forwarded), route.path
        if forwarded:
            assert "rollouts_undriven" in responses["503"]["description"]
            assert "rollouts_timeout" in responses["504"]["description"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The API on the scoped tree, over HTTP, and an admin token for the whole tree."""
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path_factory.mktemp('openapi') / 'termfleet.sqlite3'}"
        with admin_api_in_a_thread(url, {"admin": (Role.ADMIN, None)}) as (base, secrets):
            yield base, secrets["admin"]
        return
    server = find_postgres()
    assert server is not None, "PostgreSQL is not running: ./dev test starts it"
    with (
        server.temporary_database() as url,
        admin_api_in_a_thread(url, {"admin": (Role.ADMIN, None)}) as (base, secrets),
    ):
        yield base, secrets["admin"]


NOT_CHECKED = [positive_data_acceptance, ignored_auth]
"""positive_data_acceptance: a value of the right shape may still name nothing (a filter's
unknown site is a 400); ignored_auth: done below, as it sends with schemathesis' transport."""
SCHEMA = schemathesis.openapi.from_dict(openapi.document(API_ROUTES))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations() if isinstance(result, Ok)]


@pytest.mark.parametrize("mode", list(GenerationMode))
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_the_api_answers_as_its_document_says(
    operation: Any,  # noqa: ANN401 - schemathesis' APIOperation
    mode: GenerationMode,
    served_api: tuple[str, str],
) -> None:
    base, secret = served_api

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def answers(case: Any) -> None:  # noqa: ANN401 - schemathesis' Case
        # A bearer header as the document asks gets a real token in place of the generated
        # one; one that a negative case left out or spoiled goes as it is, to be refused.
        generated = (case.headers or {}).get("Authorization", "")
        token = generated.startswith("Bearer ")
        headers = {"Authorization": f"Bearer {secret}"} if token else {}
        # Sent by requests itself: schemathesis' own sending trips over urllib3-future, which
        # grafana-client's niquests installs in urllib3's place.
        sent = case.as_transport_kwargs(base_url=base, headers=headers)
        response = session.request(**sent)
        case.validate_response(response, headers=headers, excluded_checks=NOT_CHECKED)
        if token:
            # schemathesis' ignored_auth, which sends through its own transport: without the
            # token, the same request is a 401 whatever else is wrong with it.
            del sent["headers"]["Authorization"]
            assert session.request(**sent).status_code == HTTPStatus.UNAUTHORIZED

    with requests.Session() as session:
        answers()


KNOWN_OBJECTS = (
    ("/api/v1/devices", "/api/v1/devices?limit=3"),
    ("/api/v1/devices/{device_id}", "/api/v1/devices/kiosk-d1"),  # with its records
    ("/api/v1/devices/{device_id}", "/api/v1/devices/pad-d1"),  # with its peripherals
    ("/api/v1/devices/{device_id}", "/api/v1/devices/kiosk-unplaced"),  # placed nowhere
    ("/api/v1/nodes", "/api/v1/nodes?parent=440117"),
    ("/api/v1/nodes/{code}", "/api/v1/nodes/440117001"),
    ("/api/v1/sites", "/api/v1/sites"),
    ("/api/v1/sites/{code}", "/api/v1/sites/s440117"),
    ("/api/v1/departments", "/api/v1/departments"),
    ("/api/v1/staff", "/api/v1/staff"),
    ("/api/v1/tokens", "/api/v1/tokens"),
    ("/api/v1/audit", "/api/v1/audit"),
    ("/api/v1/stats/cases", "/api/v1/stats/cases?by=level,site,node,department,item,day"),
    ("/api/v1/stats/reviews", "/api/v1/stats/reviews?by=month"),
)


async def test_the_answers_about_known_objects_match_the_document(database_url: str) -> None:
    """Random codes rarely name an object: these do, so every GET's 200 is checked whole."""
    async with device_api(database_url) as api:
        issued = await tokens.issue("schema", Role.ADMIN, actor=TEST_ACTOR)
        headers = {"Authorization": f"Bearer {issued.secret}"}
        base = str(api.client.make_url("")).rstrip("/")
        for template, path in KNOWN_OBJECTS:
            # requests in a thread: the server answers on this loop meanwhile.
            response = await asyncio.to_thread(requests.get, base + path, headers=headers)
            assert response.status_code == HTTPStatus.OK, (path, response.text)
            SCHEMA[template]["GET"].validate_response(response)
