"""Who may do what on the broker: Mosquitto dynamic-security clients, roles and commands. Pure.

Mosquitto 2.0.11's dynamic-security plugin has no ``%u``/``%c`` substitution in ACLs, so every
terminal gets a role of its own that names its device id, and its client id is bound to its
username (else a terminal could log in under another's client id and take over its session's
downlink). Receiving is denied by default, so a message reaches a client only through an ACL
of its own. The findings behind each choice: docs/research/mosquitto-dynsec-2.0.11.md.

This module builds the plugin's JSON — its command messages and, for a broker termfleet starts
itself, its whole config file — and talks to nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edge.protocol import CLAIM_USERNAME, topics

ADMIN_USERNAME = "termfleet-admin"
"""Changes the plugin's clients and roles; nothing else."""
CONTROL_PLANE_USERNAME = "termfleet-control-plane"
"""The ingest: reads every uplink, writes every downlink."""
CLAIM_SERVICE_USERNAME = "termfleet-claim-service"
"""Answers claim requests."""
SERVICE_PREFIX = "termfleet-"
"""Usernames and roles of termfleet's own clients start with this; no device id may."""
DEVICE_ROLE_PREFIX = "device-"

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
LOG_ERRORS_TOPIC = "$SYS/broker/log/E"
"""With ``log_dest topic``, the broker's error log lines, e.g. a failed save of its file."""
HASH_ITERATIONS = 101
"""What the 2.0.11 plugin itself uses for a password set by command; loads stay as fast."""
SALT_BYTES = 12


class AclType(StrEnum):
    SEND = "publishClientSend"
    RECEIVE = "publishClientReceive"
    SUBSCRIBE = "subscribePattern"
    SUBSCRIBE_LITERAL = "subscribeLiteral"


@dataclass(frozen=True, slots=True)
class Acl:
    type: AclType
    topic: str
    allow: bool = True
    priority: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "acltype": self.type.value,
            "topic": self.topic,
            "priority": self.priority,
            "allow": self.allow,
        }


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    acls: tuple[Acl, ...]
    textname: str = ""


@dataclass(frozen=True, slots=True)
class Client:
    """A broker login. ``clientid`` binds it to one MQTT client id; None leaves it free."""

    username: str
    password: str = field(repr=False)
    role: str
    clientid: str | None = None
    textname: str = ""


DEFAULT_ACL_ACCESS = {
    AclType.SEND: False,
    AclType.RECEIVE: False,
    "subscribe": False,
    "unsubscribe": True,
}
"""Everything not granted by a role is refused, receiving included."""


def _readwrite(topic_filter: str) -> tuple[Acl, Acl]:
    return Acl(AclType.SUBSCRIBE, topic_filter), Acl(AclType.RECEIVE, topic_filter)


def device_role_name(device_id: str) -> str:
    return f"{DEVICE_ROLE_PREFIX}{device_id}"


def device_role(device_id: str) -> Role:
    """Publish on its own uplink, read its own downlink: nothing else."""
    return Role(
        device_role_name(device_id),
        (
            Acl(AclType.SEND, topics.device_uplink_filter(device_id)),
            *_readwrite(topics.device_downlink_filter(device_id)),
        ),
        textname=f"terminal {device_id}",
    )


def device_client(device_id: str, password: str) -> Client:
    check_device_id(device_id)
    return Client(
        device_id,
        password,
        device_role_name(device_id),
        clientid=device_id,
        textname=f"terminal {device_id}",
    )


def is_reserved(device_id: str) -> bool:
    """Whether the id could pass for one of termfleet's own broker logins."""
    return device_id.startswith(SERVICE_PREFIX)


def check_device_id(device_id: str) -> None:
    """A device id must not pass for one of termfleet's own broker logins."""
    if is_reserved(device_id):
        msg = f"device id {device_id!r} starts with {SERVICE_PREFIX!r}, reserved for services"
        raise ValueError(msg)


ADMIN_ROLE = Role(
    ADMIN_USERNAME,
    (
        Acl(AclType.SEND, f"{CONTROL_TOPIC}/#"),
        *_readwrite(f"{CONTROL_TOPIC}/#"),
        *_readwrite("$SYS/broker/log/#"),
    ),
    textname="changes clients and roles; watches the broker's error log",
)
CONTROL_PLANE_ROLE = Role(
    CONTROL_PLANE_USERNAME,
    (
        Acl(AclType.SEND, topics.all_downlink_filter()),
        # A retired terminal is kicked without its last will; the control plane clears its
        # retained presence itself.
        Acl(AclType.SEND, topics.uplink_filter(topics.Channel.PRESENCE)),
        *_readwrite(topics.all_uplink_filter()),
        Acl(AclType.SUBSCRIBE, topics.any_share_group(topics.all_uplink_filter())),
    ),
    textname="the ingest: every uplink in, every downlink out",
)
CLAIM_SERVICE_ROLE = Role(
    CLAIM_SERVICE_USERNAME,
    (
        *_readwrite(topics.claim_request_filter()),
        Acl(AclType.SUBSCRIBE, topics.any_share_group(topics.claim_request_filter())),
        Acl(AclType.SEND, topics.claim_response_filter()),
    ),
    textname="answers claim requests",
)
CLAIM_ROLE = Role(
    CLAIM_USERNAME,
    (
        Acl(AclType.SEND, topics.claim_request_filter()),
        # Literal ACLs are checked before patterns whatever their priority: this refuses the
        # one subscription the pattern below would otherwise let any claimant use to read
        # every claim's response.
        Acl(AclType.SUBSCRIBE_LITERAL, topics.claim_response_filter(), allow=False),
        *_readwrite(topics.claim_response_filter()),
    ),
    textname="enrolling terminals: one claim exchange, nothing else",
)
SERVICE_ROLES = (ADMIN_ROLE, CONTROL_PLANE_ROLE, CLAIM_SERVICE_ROLE, CLAIM_ROLE)


def service_clients(password_of: Callable[[str], str]) -> list[Client]:
    """The logins of termfleet's own services, each with the role of its name."""
    return [Client(role.name, password_of(role.name), role.name) for role in SERVICE_ROLES]


# --- commands (sent to CONTROL_TOPIC as {"commands": [...]}) ---------------------------------


def create_role(role: Role) -> dict[str, Any]:
    return {
        "command": "createRole",
        "rolename": role.name,
        "textname": role.textname,
        "acls": [acl.to_json() for acl in role.acls],
    }


def create_client(client: Client) -> list[dict[str, Any]]:
    """CreateClient, then addClientRole.

    A role given inside createClient is not registered with the role in 2.0.11, so changing or
    deleting the role later would miss the client.
    """
    create: dict[str, Any] = {
        "command": "createClient",
        "username": client.username,
        "password": client.password,
        "textname": client.textname,
    }
    if client.clientid is not None:
        create["clientid"] = client.clientid
    return [create, add_client_role(client.username, client.role)]


def add_client_role(username: str, role: str) -> dict[str, Any]:
    return {"command": "addClientRole", "username": username, "rolename": role}


def enroll_commands(client: Client, role: Role) -> list[dict[str, Any]]:
    return [create_role(role), *create_client(client)]


def revoke_commands(username: str, role: str | None) -> list[dict[str, Any]]:
    """Disable, delete the client, delete its role.

    Disabling kicks the session at once, before the plugin saves its file; deleting a client
    leaves its role behind.
    """
    commands = [
        {"command": "disableClient", "username": username},
        {"command": "deleteClient", "username": username},
    ]
    if role is not None:
        commands.append({"command": "deleteRole", "rolename": role})
    return commands


def set_password(username: str, password: str) -> dict[str, Any]:
    return {"command": "setClientPassword", "username": username, "password": password}


def list_clients() -> dict[str, Any]:
    return {"command": "listClients", "verbose": True, "count": -1, "offset": 0}


def list_roles() -> dict[str, Any]:
    return {"command": "listRoles", "verbose": True, "count": -1, "offset": 0}


def set_default_acl_access() -> dict[str, Any]:
    return {
        "command": "setDefaultACLAccess",
        "acls": [{"acltype": str(k), "allow": v} for k, v in DEFAULT_ACL_ACCESS.items()],
    }


# --- the plugin's config file, for a broker termfleet starts itself --------------------------


def hash_password(password: str, salt: bytes, iterations: int = HASH_ITERATIONS) -> dict[str, Any]:
    """The plugin's stored form: base64 PBKDF2-HMAC-SHA512, 64 bytes, with its salt."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def render_config(
    clients: Iterable[Client],
    roles: Iterable[Role],
    *,
    salt: Callable[[], bytes] = lambda: os.urandom(SALT_BYTES),
) -> dict[str, Any]:
    """The whole dynamic-security file: what the broker loads at start.

    Its keys are spelled ``textName`` there, ``textname`` in commands.
    """
    return {
        "defaultACLAccess": {str(k): v for k, v in DEFAULT_ACL_ACCESS.items()},
        "clients": [
            {
                "username": c.username,
                "textName": c.textname,
                **({"clientid": c.clientid} if c.clientid is not None else {}),
                "roles": [{"rolename": c.role}],
                **hash_password(c.password, salt()),
            }
            for c in clients
        ],
        "groups": [],
        "roles": [
            {
                "rolename": r.name,
                "textName": r.textname,
                "acls": [acl.to_json() for acl in r.acls],
            }
            for r in roles
        ],
    }
