"""The broker's logins and roles as it holds them in memory or last saved them. Pure.

Read from the plugin's verbose ``listClients``/``listRoles`` answers or from its file (they use
the same keys), and compared, for ``provisioning.reconcile``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

NAMES_SHOWN = 5
AclKey = tuple[str, str, int, bool]
"""(acltype, topic, priority, allow): what makes two ACLs of a role the same."""


class _RoleRef(msgspec.Struct):
    rolename: str


class _ClientEntry(msgspec.Struct):
    username: str
    clientid: str | None = None
    roles: list[_RoleRef] = []
    disabled: bool = False


class _AclEntry(msgspec.Struct):
    acltype: str
    topic: str
    priority: int
    allow: bool


class _RoleEntry(msgspec.Struct):
    rolename: str
    acls: list[_AclEntry] = []


class _Clients(msgspec.Struct):
    clients: list[_ClientEntry]


class _Roles(msgspec.Struct):
    roles: list[_RoleEntry]


@dataclass(frozen=True, slots=True)
class ActualClient:
    username: str
    clientid: str | None
    roles: frozenset[str]
    disabled: bool = False


@dataclass(frozen=True)
class Actual:
    clients: Mapping[str, ActualClient]
    roles: Mapping[str, frozenset[AclKey]]

    @classmethod
    def parse(cls, clients: Any, roles: Any) -> Actual:  # noqa: ANN401 - JSON off the wire
        """From verbose listClients and listRoles data, or the plugin's file (it has both keys).

        ValueError names the field that is not as the plugin writes it.
        """
        try:
            client_list = msgspec.convert(clients, _Clients).clients
            role_list = msgspec.convert(roles, _Roles).roles
        except msgspec.ValidationError as exc:
            msg = f"the broker's list of logins or roles is not as expected: {exc}"
            raise ValueError(msg) from None
        return cls(
            {
                c.username: ActualClient(
                    c.username, c.clientid, frozenset(r.rolename for r in c.roles), c.disabled
                )
                for c in client_list
            },
            {
                r.rolename: frozenset((a.acltype, a.topic, a.priority, a.allow) for a in r.acls)
                for r in role_list
            },
        )


def read_file_state(path: Path) -> Actual:
    """The logins and roles as the broker last saved them; ValueError if unreadable or cut."""
    try:
        config = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        msg = f"the broker's file {path} is unreadable or truncated: {exc}"
        raise ValueError(msg) from None
    return Actual.parse(config, config)


def file_differences(saved: Actual, in_memory: Actual) -> str | None:
    """What the broker holds that its file does not say, in words; None if they agree."""
    parts = [
        _names("logins only in memory", in_memory.clients.keys() - saved.clients.keys()),
        _names("logins only in the file", saved.clients.keys() - in_memory.clients.keys()),
        _names(
            "logins that differ",
            {u for u, c in in_memory.clients.items() if saved.clients.get(u, c) != c},
        ),
        _names("roles only in memory", in_memory.roles.keys() - saved.roles.keys()),
        _names("roles only in the file", saved.roles.keys() - in_memory.roles.keys()),
        _names(
            "roles that differ",
            {r for r, acls in in_memory.roles.items() if saved.roles.get(r, acls) != acls},
        ),
    ]
    found = [part for part in parts if part]
    return "; ".join(found) if found else None


def _names(what: str, names: Iterable[str]) -> str:
    ordered = sorted(names)
    if not ordered:
        return ""
    more = f" and {len(ordered) - NAMES_SHOWN} more" if len(ordered) > NAMES_SHOWN else ""
    return f"{what}: {', '.join(ordered[:NAMES_SHOWN])}{more}"
