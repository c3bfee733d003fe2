"""A small Grafana for tests: the HTTP API endpoints ``termfleet monitoring publish`` uses.

It answers as Grafana's documented HTTP API does (docs/sources/developers/http_api/ in
grafana/grafana: dashboard.md, folder.md, data_source.md): a bearer token on every ``/api``
request but ``/api/health`` (401 otherwise), JSON bodies with a JSON content type (400
otherwise), the required fields of each body (400 naming them), 404 for unknown uids, 409 for
a datasource or folder that already exists, 412 ``version-mismatch`` for a stale version
without ``overwrite`` and ``name-exists`` for another dashboard of the same title in a folder,
403 for a datasource write by a token below the Admin role, and 403 for a read-only
(provisioned) datasource. It keeps its state and records every request, so tests can check
what was written.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GRAFANA_VERSION = "11.3.0"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLES = ("Viewer", "Editor", "Admin")


class ApiError(Exception):
    """An HTTP error answer: its status code and JSON body."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = {"message": message} | ({"status": status} if status else {})


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    """The JSON body of a POST or PUT, ``{}`` for other methods."""


@dataclass
class FakeGrafana:
    """The state and rules; ``serve`` puts it behind a real HTTP server."""

    token: str
    role: str = "Admin"
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per uid: ``{"dashboard": model, "folderUid": str, "provisioned": bool}``."""
    requests: list[Request] = field(default_factory=list)
    sub_path: str = ""
    """Where Grafana is served, as with its ``serve_from_sub_path`` setting: "/grafana"."""
    rename_folder_after_read: str | None = None
    """A folder uid someone else renames right after the next read of it (a race)."""
    _next_id: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def writes(self) -> list[Request]:
        """The requests that could change something."""
        return [r for r in self.requests if r.method in WRITE_METHODS]

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        """The JSON answer to one request, or raises ``ApiError``."""
        body = self._body(method, headers, raw)
        if not path.startswith(f"{self.sub_path}/api/"):
            raise ApiError(404, "Not found")
        path = path.removeprefix(self.sub_path)
        with self.lock:
            self.requests.append(Request(method, path, headers, body))
            if path == "/api/health" and method == "GET":
                return {"commit": "fake", "database": "ok", "version": GRAFANA_VERSION}
            self._authenticate(headers)
            return self._route(method, path.rstrip("/"), body)

    def _body(self, method: str, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        if method not in {"POST", "PUT"}:
            return {}
        if not headers.get("content-type", "").startswith("application/json"):
            raise ApiError(400, "bad request data: expected Content-Type application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "bad request data: invalid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad request data: expected a JSON object")
        return body

    def _authenticate(self, headers: dict[str, str]) -> None:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or credential != self.token:
            raise ApiError(401, "Unauthorized")

    def _require_role(self, role: str, permission: str) -> None:
        if ROLES.index(self.role) < ROLES.index(role):
            msg = (
                "You'll need additional permissions to perform this action."
                f" Permissions needed: {permission}"
            )
            raise ApiError(403, msg)

    def _route(  # noqa: PLR0911 - one return per route
        self, method: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        parts = path.split("/")[2:]  # after "", "api"
        match method, parts:
            case "GET", ["datasources", "uid", uid]:
                self._require_role("Admin", "datasources:read")
                return self._found(self.datasources, uid, "Data source not found")
            case "POST", ["datasources"]:
                return self._create_datasource(body)
            case "PUT", ["datasources", "uid", uid]:
                return self._update_datasource(uid, body)
            case "GET", ["folders", uid]:
                folder = self._found(self.folders, uid, "folder not found")
                if self.rename_folder_after_read == uid:
                    self.rename_folder_after_read = None
                    folder = {**folder}
                    self.folders[uid] = {**folder, "title": "renamed meanwhile"}
                    self.folders[uid]["version"] += 1
                return folder
            case "POST", ["folders"]:
                return self._create_folder(body)
            case "PUT", ["folders", uid]:
                return self._update_folder(uid, body)
            case "GET", ["dashboards", "uid", uid]:
                return self._get_dashboard(uid)
            case "POST", ["dashboards", "db"]:
                return self._save_dashboard(body)
        raise ApiError(404, "Not found")

    @staticmethod
    def _found(table: dict[str, dict[str, Any]], uid: str, message: str) -> dict[str, Any]:
        if uid not in table:
            raise ApiError(404, message)
        return table[uid]

    @staticmethod
    def _required(body: dict[str, Any], *names: str) -> None:
        missing = [name for name in names if name not in body]
        if missing:
            raise ApiError(400, f"bad request data: missing {', '.join(missing)}")

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _create_datasource(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require_role("Admin", "datasources:create")
        self._required(body, "name", "type", "access")
        uid = body.get("uid") or f"ds{self._next_id}"
        if uid in self.datasources or any(
            d["name"] == body["name"] for d in self.datasources.values()
        ):
            raise ApiError(409, "data source with the same name already exists")
        stored = {"jsonData": {}, **body, "uid": uid, "id": self._new_id(), "version": 1}
        stored.setdefault("readOnly", False)
        self.datasources[uid] = stored
        return {
            "datasource": stored,
            "id": stored["id"],
            "message": "Datasource added",
            "name": stored["name"],
        }

    def _update_datasource(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        self._require_role("Admin", "datasources:write")
        old = self._found(self.datasources, uid, "Data source not found")
        self._required(body, "name", "type", "access")
        if old.get("readOnly"):
            raise ApiError(403, "Cannot update read-only data source")
        new = {**body, "uid": uid, "id": old["id"], "version": old["version"] + 1}
        new["readOnly"] = False
        self.datasources[uid] = new
        return {"datasource": new, "id": new["id"], "message": "Datasource updated"}

    def _create_folder(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require_role("Editor", "folders:create")
        self._required(body, "title")
        uid = body.get("uid") or f"f{self._next_id}"
        if uid in self.folders:
            raise ApiError(409, "a folder with the same uid already exists")
        folder = {"id": self._new_id(), "uid": uid, "title": body["title"], "version": 1}
        self.folders[uid] = folder
        return folder

    def _update_folder(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        self._require_role("Editor", "folders:write")
        old = self._found(self.folders, uid, "folder not found")
        self._required(body, "title")
        if not body.get("overwrite") and body.get("version") != old["version"]:
            raise ApiError(
                412, "the folder has been changed by someone else", status="version-mismatch"
            )
        self.folders[uid] = {**old, "title": body["title"], "version": old["version"] + 1}
        return self.folders[uid]

    def _get_dashboard(self, uid: str) -> dict[str, Any]:
        stored = self._found(self.dashboards, uid, "Dashboard not found")
        folder = self.folders.get(stored["folderUid"], {})
        meta = {
            "url": f"/d/{uid}",
            "folderUid": stored["folderUid"],
            "folderTitle": folder.get("title", "General"),
            "provisioned": stored.get("provisioned", False),
        }
        return {"dashboard": stored["dashboard"], "meta": meta}

    def _save_dashboard(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require_role("Editor", "dashboards:write")
        self._required(body, "dashboard", "folderUid", "overwrite")
        model = body["dashboard"]
        if not isinstance(model, dict) or not isinstance(model.get("uid"), str):
            raise ApiError(400, "bad request data: dashboard.uid is required here")
        if not isinstance(model.get("title"), str) or not model["title"]:
            raise ApiError(400, "Dashboard title cannot be empty")
        if body["folderUid"] not in self.folders:
            raise ApiError(400, "folder not found")
        uid, old = model["uid"], self.dashboards.get(model["uid"])
        for other_uid, other in self.dashboards.items():
            same_place = other["folderUid"] == body["folderUid"]
            if other_uid != uid and same_place and other["dashboard"]["title"] == model["title"]:
                raise ApiError(
                    412,
                    "A dashboard with the same name in the folder already exists",
                    status="name-exists",
                )
        if old is not None:
            if old.get("provisioned"):
                raise ApiError(400, "Cannot save provisioned dashboard")
            stale = model.get("version") != old["dashboard"]["version"]
            if stale and body["overwrite"] is not True:
                raise ApiError(
                    412, "The dashboard has been changed by someone else", status="version-mismatch"
                )
        version = old["dashboard"]["version"] + 1 if old else 1
        ident = old["dashboard"]["id"] if old else self._new_id()
        stored = {**model, "id": ident, "uid": uid, "version": version}
        self.dashboards[uid] = {"dashboard": stored, "folderUid": body["folderUid"]}
        return {
            "id": ident,
            "uid": uid,
            "url": f"/d/{uid}",
            "status": "success",
            "version": version,
            "slug": uid,
        }


class _Handler(BaseHTTPRequestHandler):
    grafana: FakeGrafana

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet: the tests read ``requests`` instead."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            path = self.path.partition("?")[0]
            status, answer = 200, self.grafana.handle(self.command, path, headers, raw)
        except ApiError as refusal:
            status, answer = refusal.code, refusal.body
        except Exception as exc:  # noqa: BLE001 - a bug in the fake answers 500, as Grafana would
            status, answer = 500, {"message": f"fake Grafana failed: {exc!r}"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()


@contextmanager
def serve(grafana: FakeGrafana) -> Iterator[str]:
    """Serve ``grafana`` on a free local port in a thread; yields its base URL."""
    handler = type("Handler", (_Handler,), {"grafana": grafana})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-grafana", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
