"""Bring the broker's logins and roles in step with the control plane's database (issue 5).

The database is the source of truth; the broker is repaired towards it: what is missing is
created, what is retired is revoked, what nobody knows is disabled — never deleted, a human
may want to see it. A login that matches is never touched, because ``modifyClient`` kicks its
session even for a new text name. Mosquitto 2.0.11 never says when it could not save its file
(docs/research/mosquitto-dynsec-2.0.11.md §5), so after repairing, the file is read back and
compared with what the broker holds in memory.

``plan`` is pure; ``reconcile`` lists, plans, applies and checks. The desired state is the
caller's: this module does not read the database.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, TypeVar

from . import dynsec
from .broker_admin import BrokerAdmin
from .broker_state import AclKey, Actual, ActualClient, file_differences, read_file_state

log = logging.getLogger(__name__)

FILE_CHECK_ATTEMPTS = 2
"""A change by another admin between our listing and our read of the file looks like drift
once; a file out of step stays so."""

_T = TypeVar("_T")


class DriftKind(StrEnum):
    MISSING_CLIENT = "missing_client"
    MISSING_ROLE = "missing_role"
    ACL = "acl"
    CLIENT_ROLE = "client_role"
    CLIENTID = "clientid"
    DISABLED = "disabled"
    RETIRED_PRESENT = "retired_present"
    UNKNOWN = "unknown"


def _acl_key(acl: dynsec.Acl) -> AclKey:
    return (acl.type.value, acl.topic, acl.priority, acl.allow)


@dataclass(frozen=True)
class Desired:
    """What the database says the broker must hold, and the usernames that must be gone."""

    clients: list[dynsec.Client]
    roles: list[dynsec.Role]
    retired: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        usernames = [c.username for c in self.clients]
        role_names = [r.name for r in self.roles]
        problems = [
            *(f"client {u!r} is desired twice" for u in _repeated(usernames)),
            *(f"role {r!r} is desired twice" for r in _repeated(role_names)),
            *(
                f"client {c.username!r} needs role {c.role!r}, which is not desired"
                for c in self.clients
                if c.role not in role_names
            ),
            *(f"{u!r} is both desired and retired" for u in sorted(self.retired & set(usernames))),
            *(
                f"role {r.name!r} has two ACLs of type {t} on {topic!r}"
                for r in self.roles
                for t, topic in _repeated((a.type.value, a.topic) for a in r.acls)
            ),
        ]
        if dynsec.ADMIN_USERNAME in self.retired:
            problems.append(f"{dynsec.ADMIN_USERNAME!r} is the login reconcile works through")
        if problems:
            raise ValueError("impossible desired broker state: " + "; ".join(problems))


def _repeated(items: Iterable[_T]) -> list[_T]:
    return [item for item, count in Counter(items).items() if count > 1]


# --- what the broker holds: the answers of listClients and listRoles, or its file ------------


# --- the plan -----------------------------------------------------------------------------------


class Step(IntEnum):
    """The order the commands run in.

    Revocations first, so a retired terminal loses its session at once; roles before the
    clients that need them; enabling last, once a client's rights are right.
    """

    REVOKE = 1
    DISABLE = 2
    CREATE_ROLE = 3
    FIX_ACL = 4
    CREATE_CLIENT = 5
    FIX_CLIENT = 6
    ENABLE = 7


@dataclass(frozen=True)
class Plan:
    commands: tuple[dict[str, Any], ...] = field(repr=False)  # created clients' passwords
    drift: Mapping[DriftKind, int]
    held_back: tuple[str, ...] = ()
    """Drift reported but not repaired: changing the admin's own login or role would kick the
    admin in the middle of its command (research §7.3)."""


@dataclass
class _Draft:
    drift: dict[DriftKind, int] = field(default_factory=lambda: dict.fromkeys(DriftKind, 0))
    held_back: list[str] = field(default_factory=list)
    steps: dict[Step, list[dict[str, Any]]] = field(
        default_factory=lambda: {step: [] for step in Step}
    )

    def found(self, kind: DriftKind, step: Step, *commands: dict[str, Any]) -> None:
        self.drift[kind] += 1
        self.steps[step] += commands

    def hold(self, kind: DriftKind, what: str) -> None:
        self.drift[kind] += 1
        self.held_back.append(what)


def plan(desired: Desired, actual: Actual) -> Plan:
    """The commands that repair ``actual`` towards ``desired``, and the drift found."""
    draft = _Draft()
    _revoke_and_disable(desired, actual, draft)
    for role in desired.roles:
        _repair_role(role, actual.roles.get(role.name), draft)
    for client in desired.clients:
        _repair_client(client, actual.clients.get(client.username), draft)
    commands = tuple(c for step in Step for c in draft.steps[step])
    return Plan(commands, draft.drift, tuple(draft.held_back))


def _revoke_and_disable(desired: Desired, actual: Actual, draft: _Draft) -> None:
    known = {c.username for c in desired.clients} | {dynsec.ADMIN_USERNAME} | desired.retired
    revoked = desired.retired & actual.clients.keys()
    still_held = {r for u, c in actual.clients.items() if u not in revoked for r in c.roles}
    keep = {r.name for r in desired.roles} | still_held
    for username in sorted(desired.retired):
        client = actual.clients.get(username)
        held_roles = client.roles if client else frozenset()
        roles = sorted((held_roles | {dynsec.device_role_name(username)}) & actual.roles.keys())
        delete_roles = [{"command": "deleteRole", "rolename": r} for r in roles if r not in keep]
        # A role left without its client (a revoke cut short) is a retired terminal still
        # present too.
        if client or delete_roles:
            revoke = dynsec.revoke_commands(username, None) if client else []
            draft.found(DriftKind.RETIRED_PRESENT, Step.REVOKE, *revoke, *delete_roles)
    for username, client in sorted(actual.clients.items()):
        if username not in known and not client.disabled:
            # Never deleted: what we do not know, a human may want to look at.
            draft.found(
                DriftKind.UNKNOWN, Step.DISABLE, {"command": "disableClient", "username": username}
            )


def _repair_role(role: dynsec.Role, have: frozenset[AclKey] | None, draft: _Draft) -> None:
    if have is None:
        draft.found(DriftKind.MISSING_ROLE, Step.CREATE_ROLE, dynsec.create_role(role))
        return
    want = {_acl_key(a) for a in role.acls}
    if have == want:
        return
    if role.name == dynsec.ADMIN_USERNAME:
        draft.hold(DriftKind.ACL, f"the ACLs of role {role.name!r} differ from the database's")
        return
    # Removing first frees an (acltype, topic) pair whose priority or allow changed.
    remove = [
        {"command": "removeRoleACL", "rolename": role.name, "acltype": t, "topic": topic}
        for t, topic, _, _ in sorted(have - want)
    ]
    add = [
        {"command": "addRoleACL", "rolename": role.name, "acltype": t, "topic": topic}
        | {"priority": priority, "allow": allow}
        for t, topic, priority, allow in sorted(want - have)
    ]
    draft.found(DriftKind.ACL, Step.FIX_ACL, *remove, *add)


def _repair_client(client: dynsec.Client, have: ActualClient | None, draft: _Draft) -> None:
    if have is None:
        draft.found(DriftKind.MISSING_CLIENT, Step.CREATE_CLIENT, *dynsec.create_client(client))
        return
    name = client.username
    own = name == dynsec.ADMIN_USERNAME
    if have.roles != {client.role}:
        remove = [
            {"command": "removeClientRole", "username": name, "rolename": r}
            for r in sorted(have.roles - {client.role})
        ]
        add = [] if client.role in have.roles else dynsec.create_client(client)[1:]
        if own:
            draft.hold(DriftKind.CLIENT_ROLE, f"the roles of login {name!r} differ")
        else:
            draft.found(DriftKind.CLIENT_ROLE, Step.FIX_CLIENT, *remove, *add)
    if have.clientid != client.clientid:
        # An empty client id unbinds the login (tried on 2.0.11).
        modify = {"command": "modifyClient", "username": name, "clientid": client.clientid or ""}
        if own:
            draft.hold(DriftKind.CLIENTID, f"the client id of login {name!r} differs")
        else:
            draft.found(DriftKind.CLIENTID, Step.FIX_CLIENT, modify)
    if have.disabled:
        draft.found(DriftKind.DISABLED, Step.ENABLE, {"command": "enableClient", "username": name})


# --- reconcile: list, plan, apply, check the file ---------------------------------------------


@dataclass(frozen=True)
class Report:
    drift: Mapping[DriftKind, int]
    """Found before repairing; every kind present, zeros included, for the drift gauge."""
    held_back: tuple[str, ...]
    commands_applied: int
    file_ok: bool | None
    """Whether the plugin's file says what the broker holds in memory; None: not checked."""
    file_problem: str
    save_failures: int
    """Failed saves the broker's error log reported since the admin connected."""
    duration_s: float


async def reconcile(
    admin: BrokerAdmin, desired: Desired, *, dynsec_file: Path | None = None
) -> Report:
    """Repair the broker towards ``desired``; check its file when the control plane can read it.

    DynsecError if the broker refuses a repair (the next run starts again from a new listing).
    Run it apart from enrollment: a login created between the caller's reading of the database
    and our listing looks unknown and is disabled until the next run.
    """
    started = time.monotonic()
    the_plan = plan(desired, await _listing(admin))
    for kind, count in the_plan.drift.items():
        if count:
            log.warning("the broker differs from the database: %s x %d", kind.value, count)
    for what in the_plan.held_back:
        log.warning("not repaired, it would kick the admin itself: %s", what)
    if the_plan.commands:
        await admin.run(the_plan.commands)
    problem = None if dynsec_file is None else await _check_file(admin, dynsec_file)
    if problem:
        log.error("the broker's file is not in step with the broker: %s", problem)
    return Report(
        drift=the_plan.drift,
        held_back=the_plan.held_back,
        commands_applied=len(the_plan.commands),
        file_ok=None if dynsec_file is None else not problem,
        file_problem=problem or "",
        save_failures=admin.saves.failures,
        duration_s=time.monotonic() - started,
    )


async def _listing(admin: BrokerAdmin) -> Actual:
    clients, roles = await admin.run([dynsec.list_clients(), dynsec.list_roles()])
    return Actual.parse(clients.get("data"), roles.get("data"))


async def _check_file(admin: BrokerAdmin, path: Path) -> str | None:
    """Why the file does not say what the broker holds, or None.

    listClients answers from memory; a save that failed (kept only in memory) or a file cut
    short by a full disk shows only here.
    """
    problem = None
    for _ in range(FILE_CHECK_ATTEMPTS):
        in_memory = await _listing(admin)
        try:
            problem = file_differences(read_file_state(path), in_memory)
        except ValueError as exc:
            problem = str(exc)
        if problem is None:
            return None
    return problem
