"""docs/api-auth.md's generated tables (roles, permissions, routes, refusals), from the code.

    .venv/bin/python -m control_plane.http.auth_doc docs/api-auth.md    # rewrites them in place

Each table sits between two markers; the prose around them is written by hand.
``tests/test_auth_doc.py`` fails when the document and the code disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from control_plane.auth import permissions_markdown, refusals_markdown, roles_markdown

from .app import API_ROUTES
from .auth import OPENAPI_PATH

READYZ_SUMMARY = (
    "readiness: 200 while the database answers at the latest migration and the ingest is"
    " connected to the broker, else 503 naming the check that failed"
)
OPEN_ROUTES = (
    ("GET", "/metrics", "Prometheus metrics of the control plane"),
    ("GET", "/healthz", "liveness, and whether the ingest is connected to the broker"),
    ("GET", "/readyz", READYZ_SUMMARY),
    (
        "GET",
        OPENAPI_PATH,
        "the API's OpenAPI 3.1 document: every route below, its parameters and answers",
    ),
)


def routes_markdown() -> str:
    rows = [
        f"| {route.method} | `{route.path}` | `{route.permission}` | {route.summary} |"
        for route in API_ROUTES
    ]
    rows += [f"| {method} | `{path}` | none | {summary} |" for method, path, summary in OPEN_ROUTES]
    return "\n".join(["| method | path | needs | returns |", "|---|---|---|---|", *rows])


TABLES: Mapping[str, Callable[[], str]] = {
    "roles": roles_markdown,
    "permissions": permissions_markdown,
    "routes": routes_markdown,
    "refusals": refusals_markdown,
}


class DocumentError(ValueError):
    """The document lacks a table's markers."""


def render(text: str) -> str:
    """``text`` with every generated table replaced by the code's."""
    for name, table in TABLES.items():
        begin = f"<!-- generated: {name} (python -m control_plane.http.auth_doc) -->\n"
        end = f"<!-- end of generated {name} -->"
        start = text.find(begin)
        stop = text.find(end, start)
        if start < 0 or stop < 0:
            msg = f"no {begin.strip()} ... {end} in the document"
            raise DocumentError(msg)
        text = f"{text[: start + len(begin)]}{table()}\n{text[stop:]}"
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m control_plane.http.auth_doc docs/api-auth.md\n")
        return 2
    path = Path(argv[0])
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
