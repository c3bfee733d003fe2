"""The ``Grafana`` port of ``monitoring.publish`` over grafana-client, with errors made plain.

Every call says which Grafana permission it exercises, so a 403 can name what the token lacks;
the token itself appears in no message. A 404 on a read by uid means "not there yet" (``None``);
anywhere else an HTTP failure becomes one of ``monitoring.publish``'s errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaException

from .publish import (
    GrafanaAuthError,
    GrafanaConflictError,
    GrafanaRefusedError,
    GrafanaUnreachableError,
)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 10.0
MESSAGE_LIMIT = 300
"""Characters of a transport error kept in a message: urllib3's run on for lines."""

# Grafana's basic roles that hold each permission (RBAC action) publishing uses.
ROLE_FOR_PERMISSION = {
    "datasources:read": "Admin",
    "datasources:create": "Admin",
    "datasources:write": "Admin",
    "folders:read": "Viewer",
    "folders:create": "Editor",
    "folders:write": "Editor",
    "dashboards:read": "Viewer",
    "dashboards:create": "Editor",
    "dashboards:write": "Editor",
}


def display_url(url: str) -> str:
    """``url`` without any user name or password in it, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _base_url(url: str) -> str:
    """``url`` as grafana-client wants it: it appends ``api`` to the path without a slash."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return urlunsplit(parts._replace(path=f"{path}/" if path else ""))


class GrafanaHttp:
    """A live Grafana at ``url``, authenticated with a service-account token."""

    def __init__(self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = display_url(url)
        self._api = GrafanaApi.from_url(_base_url(url), credential=token, timeout=timeout)

    def version(self) -> str:
        """Grafana's version from ``/api/health`` (no token needed): proves it is Grafana."""
        # Grafana's documented /api/health; grafana-client's health.check() reads
        # /api/frontend/settings instead, which needs a signed-in user.
        try:
            answer = self._call("health", lambda: self._api.client.GET("/health"), missing_ok=True)
        except _MissingError:
            answer = None
        version = answer.get("version") if isinstance(answer, dict) else None
        if not isinstance(version, str):
            msg = (
                f"{self.url} has no Grafana /api/health: is it Grafana, and the URL its base"
                " URL (with any sub-path Grafana is served under)?"
            )
            raise GrafanaUnreachableError(msg)
        return version

    def get_datasource(self, uid: str) -> dict[str, Any] | None:
        return self._read(
            "datasources:read", lambda: self._api.datasource.get_datasource_by_uid(uid)
        )

    def create_datasource(self, body: Mapping[str, Any]) -> None:
        self._call("datasources:create", lambda: self._api.datasource.create_datasource(dict(body)))

    def update_datasource(self, uid: str, body: Mapping[str, Any]) -> None:
        datasource = self._api.datasource
        self._call(
            "datasources:write", lambda: datasource.update_datasource_by_uid(uid, dict(body))
        )

    def get_folder(self, uid: str) -> dict[str, Any] | None:
        return self._read("folders:read", lambda: self._api.folder.get_folder(uid))

    def create_folder(self, uid: str, title: str) -> None:
        self._call("folders:create", lambda: self._api.folder.create_folder(title, uid=uid))

    def update_folder(self, uid: str, title: str, version: int | None) -> None:
        # With the version read while planning, a rename by someone else meanwhile is a 412;
        # without one (an old Grafana), only overwrite makes Grafana accept the change.
        folder = self._api.folder
        self._call(
            "folders:write",
            lambda: folder.update_folder(
                uid, title=title, version=version, overwrite=version is None
            ),
        )

    def get_dashboard(self, uid: str) -> dict[str, Any] | None:
        return self._read("dashboards:read", lambda: self._api.dashboard.get_dashboard(uid))

    def save_dashboard(self, body: Mapping[str, Any]) -> None:
        permission = "dashboards:write"
        self._call(permission, lambda: self._api.dashboard.update_dashboard(dict(body)))

    def _read(self, permission: str, request: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            answer = self._call(permission, request, missing_ok=True)
        except _MissingError:
            return None
        if not isinstance(answer, dict):
            msg = f"{self.url} answered a {permission} request with no JSON object: is it Grafana?"
            raise GrafanaUnreachableError(msg)
        return answer

    def _call(self, permission: str, request: Callable[[], T], *, missing_ok: bool = False) -> T:
        try:
            return request()
        except GrafanaException as exc:
            if exc.status_code == HTTPStatus.NOT_FOUND and missing_ok:
                raise _MissingError from None
            raise self._error(permission, exc) from None
        except (niquests.exceptions.RequestException, ValueError) as exc:
            # ValueError: a 2xx answer that is not JSON (something else listens there).
            msg = f"Grafana at {self.url} is unreachable or not Grafana: {_short(exc)}"
            raise GrafanaUnreachableError(msg) from None

    def _error(self, permission: str, exc: GrafanaException) -> Exception:
        status, said = exc.status_code, _said(exc)
        if status == 0:
            return GrafanaUnreachableError(f"Grafana at {self.url} is unreachable: {said}")
        if status == HTTPStatus.UNAUTHORIZED:
            return GrafanaAuthError(
                f"Grafana at {self.url} refused the token (401 {said}): it is wrong, expired or"
                " revoked, or its service account is disabled; create a service-account token"
                " (docs/grafana-publish.md)"
            )
        if status == HTTPStatus.FORBIDDEN:
            role = ROLE_FOR_PERMISSION.get(permission, "Admin")
            hint = (
                " (or publish with --no-datasource)" if permission.startswith("datasources") else ""
            )
            return GrafanaAuthError(
                f"Grafana at {self.url} denied the token {permission} (403 {said}): give its"
                f" service account the {role} role or that permission{hint}"
            )
        if status in (HTTPStatus.CONFLICT, HTTPStatus.PRECONDITION_FAILED):
            return GrafanaConflictError(
                f"Grafana at {self.url} refused {permission} as a conflict ({status} {said});"
                " someone changed it meanwhile, or another object has the same name: run"
                " publish again, or rename or delete the other object"
            )
        return GrafanaRefusedError(f"Grafana at {self.url} refused {permission} ({status} {said})")


class _MissingError(Exception):
    """A read by uid answered 404."""


def _said(exc: GrafanaException) -> str:
    response = exc.response
    if isinstance(response, dict):
        parts = [str(response[key]) for key in ("message", "status") if response.get(key)]
        if parts:
            return ": ".join(parts)
    return _short(exc)


def _short(exc: Exception) -> str:
    """The exception's text, cut to one readable line."""
    text = " ".join(str(exc).split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."
