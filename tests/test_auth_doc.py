"""docs/api-auth.md against the code: its tables are the code's, every API route is declared."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.auth import Permission, Role
from control_plane.fleet import FleetState
from control_plane.http import auth_doc
from control_plane.http.app import API_ROUTES, make_app
from control_plane.http.auth import OPEN_API_PATHS
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics

DOC = Path(__file__).parent.parent / "docs" / "api-auth.md"


def test_the_documents_tables_are_the_codes() -> None:
    """Fails when roles, permissions or routes changed: regenerate (the command is in the doc)."""
    text = DOC.read_text(encoding="utf-8")

    assert auth_doc.render(text) == text


def test_the_document_names_every_role_permission_and_route() -> None:
    text = DOC.read_text(encoding="utf-8")

    for name in [*Role, *Permission]:
        assert f"`{name}`" in text
    for route in API_ROUTES:
        assert f"`{route.path}`" in text


def test_rendering_refuses_a_document_without_the_markers() -> None:
    with pytest.raises(auth_doc.DocumentError, match="generated: roles"):
        auth_doc.render("# a document without tables\n")


def test_the_generator_rewrites_a_stale_table_in_place(tmp_path: Path) -> None:
    stale = tmp_path / "api-auth.md"
    stale.write_text(
        DOC.read_text(encoding="utf-8").replace("| `admin` |", "| `root` |"), encoding="utf-8"
    )

    assert auth_doc.main([str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")


def test_every_api_route_of_the_app_is_declared_with_a_permission() -> None:
    fleet = FleetState()
    metrics = ControlPlaneMetrics(fleet)
    app = make_app(fleet, metrics, Ingest(fleet, metrics))
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.resource.canonical not in OPEN_API_PATHS  # the OpenAPI document
    }

    assert registered == {(route.method, route.path) for route in API_ROUTES}
