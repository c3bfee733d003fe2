"""Publish the datasource, folder and dashboards to a live Grafana, changing only what differs.

Three phases, so a bad file or a refusal found early writes nothing: ``load_dashboards``
(``monitoring.publish_files``) reads and checks every file; ``plan`` reads what Grafana holds
and decides per object (created, updated or unchanged, with the fields that differ) without
writing; ``apply`` writes the planned changes, datasource first, then folders, then dashboards
(a dashboard needs its folder). The deciding functions (``datasource_step``, ``folder_step``,
``dashboard_step``) are pure; the Grafana they read and write is a ``Grafana`` port
(``monitoring.publish_grafana`` over grafana-client). docs/grafana-publish.md describes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

# Fields of a dashboard that Grafana assigns per install; a model in a file never decides them.
INSTANCE_FIELDS = ("id", "version")


class PublishError(Exception):
    """Publishing stopped; the message says why and what to do."""


class DashboardFileError(PublishError):
    """One or more dashboard files are unusable; nothing was written."""


class GrafanaUnreachableError(PublishError):
    """No HTTP answer from Grafana: refused, unresolvable, timed out, or not Grafana's JSON."""


class GrafanaAuthError(PublishError):
    """Grafana refused the token (401) or its permissions (403)."""


class GrafanaConflictError(PublishError):
    """Grafana refused a write as a conflict: 409, or 412 (changed meanwhile, name taken)."""


class GrafanaRefusedError(PublishError):
    """Grafana refused a request otherwise (400, 5xx), or an object cannot be changed by API."""


class Kind(StrEnum):
    DATASOURCE = "datasource"
    FOLDER = "folder"
    DASHBOARD = "dashboard"


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class DatasourceSpec:
    """The Prometheus datasource as monitoring/grafana/provisioning/datasources/ declares it."""

    uid: str = "prometheus"
    name: str = "Prometheus"
    type: str = "prometheus"
    access: str = "proxy"
    url: str = "http://prometheus:9090"
    is_default: bool = True
    json_data: Mapping[str, Any] = field(default_factory=lambda: {"timeInterval": "15s"})


@dataclass(frozen=True)
class FolderSpec:
    uid: str
    title: str


TERMFLEET_FOLDER = FolderSpec(uid="termfleet", title="termfleet")
"""As monitoring/grafana/provisioning/dashboards/termfleet.yml puts the dashboards in compose."""


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard file's model (without ``id`` and ``version``) and the folder it goes in."""

    source: str
    model: Mapping[str, Any]
    folder_uid: str

    @property
    def uid(self) -> str:
        return str(self.model["uid"])

    @property
    def title(self) -> str:
        return str(self.model["title"])


@dataclass(frozen=True)
class Step:
    """What publishing does to one object; ``body`` is the request to send, None if unchanged."""

    kind: Kind
    uid: str
    title: str
    action: Action
    changes: tuple[str, ...] = ()
    source: str | None = None
    body: Mapping[str, Any] | None = None
    version: int | None = None
    """The version read while planning: an update sends it, so a change meanwhile is a 412."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "uid": self.uid,
            "title": self.title,
            "action": str(self.action),
            "changes": list(self.changes),
            "source": self.source,
        }


class Grafana(Protocol):
    """What publishing needs of a Grafana; ``None`` answers a 404 for an unknown uid."""

    def get_datasource(self, uid: str) -> dict[str, Any] | None: ...
    def create_datasource(self, body: Mapping[str, Any]) -> None: ...
    def update_datasource(self, uid: str, body: Mapping[str, Any]) -> None: ...
    def get_folder(self, uid: str) -> dict[str, Any] | None: ...
    def create_folder(self, uid: str, title: str) -> None: ...
    def update_folder(self, uid: str, title: str, version: int | None) -> None: ...
    def get_dashboard(self, uid: str) -> dict[str, Any] | None: ...
    def save_dashboard(self, body: Mapping[str, Any]) -> None: ...


def datasource_step(
    spec: DatasourceSpec, live: Mapping[str, Any] | None, *, url: str | None
) -> Step:
    """Create or update the datasource by uid; ``url`` None keeps a live datasource's URL.

    Only the fields termfleet owns are compared; others (auth, other jsonData keys, whether
    it is the default) stay as an operator set them. A read-only datasource (provisioned from
    a file) cannot change through the API, so a difference is refused here, before any write.
    """
    wanted: dict[str, Any] = {"name": spec.name, "type": spec.type, "access": spec.access}
    if live is None:
        body = {
            "uid": spec.uid,
            **wanted,
            "url": url or spec.url,
            "isDefault": spec.is_default,
            "jsonData": dict(spec.json_data),
        }
        return Step(Kind.DATASOURCE, spec.uid, spec.name, Action.CREATED, body=body)
    wanted["url"] = url or live.get("url")
    changes = [key for key, value in wanted.items() if live.get(key) != value]
    live_json = live.get("jsonData") or {}
    changes += [f"jsonData.{k}" for k, v in spec.json_data.items() if live_json.get(k) != v]
    if not changes:
        return Step(Kind.DATASOURCE, spec.uid, spec.name, Action.UNCHANGED)
    if live.get("readOnly"):
        msg = (
            f'datasource "{spec.uid}" is provisioned from a file in Grafana (read-only) and'
            f" differs in {', '.join(changes)}; change Grafana's provisioning file instead, or"
            " publish without --prometheus-url (or with --no-datasource)"
        )
        raise GrafanaRefusedError(msg)
    kept = ("user", "database", "basicAuth", "basicAuthUser", "withCredentials", "isDefault")
    body = {key: live[key] for key in kept if key in live}
    body |= {"uid": spec.uid, **wanted, "jsonData": {**live_json, **spec.json_data}}
    return Step(Kind.DATASOURCE, spec.uid, spec.name, Action.UPDATED, tuple(changes), body=body)


def folder_step(spec: FolderSpec, live: Mapping[str, Any] | None) -> Step:
    """Create the folder by uid, or rename it when its title differs."""
    if live is None:
        body = {"uid": spec.uid, "title": spec.title}
        return Step(Kind.FOLDER, spec.uid, spec.title, Action.CREATED, body=body)
    if live.get("title") == spec.title:
        return Step(Kind.FOLDER, spec.uid, spec.title, Action.UNCHANGED)
    version = live.get("version")
    return Step(
        Kind.FOLDER,
        spec.uid,
        spec.title,
        Action.UPDATED,
        ("title",),
        body={"title": spec.title},
        version=version if isinstance(version, int) else None,
    )


def dashboard_step(spec: DashboardSpec, live: Mapping[str, Any] | None, message: str) -> Step:
    """Create or overwrite the dashboard when its model or folder differs from the file's."""
    body = {
        "dashboard": {**spec.model, "id": None},
        "folderUid": spec.folder_uid,
        "message": message,
        "overwrite": True,
    }
    if live is None:
        return Step(
            Kind.DASHBOARD, spec.uid, spec.title, Action.CREATED, source=spec.source, body=body
        )
    live_model = {k: v for k, v in live.get("dashboard", {}).items() if k not in INSTANCE_FIELDS}
    keys = sorted(set(live_model) | set(spec.model))
    changes = [key for key in keys if live_model.get(key) != spec.model.get(key)]
    meta = live.get("meta") or {}
    if meta.get("folderUid", "") != spec.folder_uid:
        changes.append("folder")
    if not changes:
        return Step(Kind.DASHBOARD, spec.uid, spec.title, Action.UNCHANGED, source=spec.source)
    if meta.get("provisioned"):
        msg = (
            f'dashboard "{spec.uid}" ({spec.source}) is provisioned from files in Grafana and'
            f" differs in {', '.join(changes)}; Grafana refuses API saves of it: update the"
            " files its provisioning reads instead"
        )
        raise GrafanaRefusedError(msg)
    return Step(
        Kind.DASHBOARD,
        spec.uid,
        spec.title,
        Action.UPDATED,
        tuple(changes),
        source=spec.source,
        body=body,
    )


@dataclass(frozen=True)
class Bundle:
    """Everything one publish puts into Grafana; ``datasource`` None leaves datasources alone."""

    dashboards: Sequence[DashboardSpec]
    folders: Sequence[FolderSpec] = (TERMFLEET_FOLDER,)
    datasource: DatasourceSpec | None = field(default_factory=DatasourceSpec)
    prometheus_url: str | None = None
    message: str = "published by termfleet"


def plan(grafana: Grafana, bundle: Bundle) -> list[Step]:
    """Read what Grafana holds and decide every step; writes nothing."""
    steps: list[Step] = []
    if bundle.datasource is not None:
        live = grafana.get_datasource(bundle.datasource.uid)
        steps.append(datasource_step(bundle.datasource, live, url=bundle.prometheus_url))
    steps += [folder_step(spec, grafana.get_folder(spec.uid)) for spec in bundle.folders]
    steps += [
        dashboard_step(spec, grafana.get_dashboard(spec.uid), bundle.message)
        for spec in bundle.dashboards
    ]
    return steps


def apply(
    grafana: Grafana, steps: Sequence[Step], on_step: Callable[[Step], None] = lambda _: None
) -> None:
    """Send each planned write in order, then call ``on_step`` (unchanged steps send nothing)."""
    for step in steps:
        if step.body is not None:
            _write(grafana, step, step.body)
        on_step(step)


def _write(grafana: Grafana, step: Step, body: Mapping[str, Any]) -> None:
    match step.kind, step.action:
        case Kind.DATASOURCE, Action.CREATED:
            grafana.create_datasource(body)
        case Kind.DATASOURCE, _:
            grafana.update_datasource(step.uid, body)
        case Kind.FOLDER, Action.CREATED:
            grafana.create_folder(step.uid, str(body["title"]))
        case Kind.FOLDER, _:
            grafana.update_folder(step.uid, str(body["title"]), step.version)
        case Kind.DASHBOARD, _:
            grafana.save_dashboard(body)


def counts(steps: Sequence[Step]) -> dict[str, dict[str, int]]:
    """Created, updated and unchanged per kind of object, every kind and action present."""
    table = {str(kind): {str(action): 0 for action in Action} for kind in Kind}
    for step in steps:
        table[str(step.kind)][str(step.action)] += 1
    return table
