"""Request bodies of the administration API (tree, sites, windows, staff, tokens), checked. Pure.

Nodes, departments, sites and windows are read by the import's own row readers
(``control_plane.inventory``), so the API and ``termfleet sites import`` accept the same values
and say the same things about bad ones. Every problem is an ``InvalidFieldError`` naming the
field; a field the object does not have is refused, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from edge.national_id import holds_national_id

from . import inventory
from .admin_errors import InvalidFieldError
from .auth import Role, parse_role
from .inventory import InventoryError

BODY = "body"
STAFF_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")  # fullmatch
MAX_STAFF_NAME = 64
MAX_TOKEN_DAYS = 3650
NODE_CHANGES = frozenset({"name"})
SITE_CHANGES = frozenset(inventory.SITES.columns) - {"code"}
WINDOW_FIELDS = frozenset({"name", "departments"})
STAFF_FIELDS = ("number", "name", "department", "site", "window", "active")
TOKEN_FIELDS = frozenset({"name", "role", "scope", "expires_in_days", "replace"})
Body = Mapping[str, object]
S = TypeVar("S")


def _read(reader: Callable[[Body, str], S], values: Body) -> S:
    try:
        return reader(values, BODY)
    except InventoryError as exc:
        raise InvalidFieldError(exc.field, exc.problem) from None


def _only(body: Body, allowed: Collection[str], fixed: Collection[str] = (), why: str = "") -> None:
    """Refuse fields outside ``allowed``; ``why`` says why the ``fixed`` ones cannot change."""
    unknown = sorted(str(name) for name in body if name not in allowed)
    for name in unknown:
        if name in fixed:
            raise InvalidFieldError(name, f"cannot be changed: {why}")
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise InvalidFieldError(None, f"unknown field(s) {', '.join(unknown)}; allowed: {expected}")


def nothing_to_change(body: Body) -> None:
    """Refuse an empty PATCH: it would change nothing, so it is most likely a mistake."""
    if not body:
        raise InvalidFieldError(None, "the body changes nothing: give at least one field")


# --- the tree, departments, sites, windows ----------------------------------------------------


def node(body: Body) -> inventory.NodeSpec:
    if "parent" not in body:
        raise InvalidFieldError(field="parent", problem="missing (null for a root)")
    return _read(inventory.node, body)


def node_name(body: Body) -> str:
    """A PATCH of a node: only its name changes; code, level and parent make its identity."""
    why = "a node's code, level and parent are fixed (import the tree to restructure it)"
    _only(body, NODE_CHANGES, ("code", "level", "parent"), why)
    nothing_to_change(body)
    name = body["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > inventory.MAX_NAME:
        raise InvalidFieldError(
            field="name", problem=f"must be text of 1 to {inventory.MAX_NAME} characters"
        )
    return name.strip()


def department(body: Body) -> inventory.DepartmentSpec:
    return _read(inventory.department, body)


def site(body: Body) -> inventory.SiteSpec:
    return _read(inventory.site, body)


def site_changes(body: Body) -> dict[str, object]:
    """A PATCH of a site: the fields to change, checked whole once merged (``site``)."""
    _only(body, SITE_CHANGES, ("code",), "a site's code is its identity")
    nothing_to_change(body)
    return dict(body)


def window(site_code: str, number: str, body: Body) -> inventory.WindowSpec:
    """A window from its URL (site, number) and body; absent fields are None (left alone)."""
    _only(body, WINDOW_FIELDS, ("site", "number"), "a window's site and number are its URL")
    return _read(inventory.window, {**body, "site": site_code, "number": number})


# --- staff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffSpec:
    number: str
    name: str
    department: str
    site: str
    window: str | None = None
    active: bool = True


def staff(body: Body) -> StaffSpec:
    _only(body, STAFF_FIELDS)
    for required in ("number", "name", "department", "site"):
        if body.get(required) is None:
            raise InvalidFieldError(required, "missing")
    return StaffSpec(
        number=_staff_number(body["number"]),
        name=_staff_name(body["name"]),
        department=_department_code(body["department"]),
        site=_site_code(body["site"]),
        window=_window_number(body.get("window")),
        active=_active(body.get("active", True)),
    )


def staff_changes(body: Body) -> dict[str, object]:
    """A PATCH of a member of staff: the checked fields to change (``window`` None: unbind)."""
    _only(body, STAFF_FIELDS[1:], ("number",), "a staff number identifies its holder")
    nothing_to_change(body)
    return {name: _STAFF_CHECKS[name](value) for name, value in body.items()}


def _staff_number(value: object) -> str:
    if not isinstance(value, str) or not STAFF_NUMBER.fullmatch(value):
        msg = f"{value!r} is not a staff number (工号: letters, digits, '.', '_', '-', up to 32)"
        raise InvalidFieldError(field="number", problem=msg)
    _no_national_id("number", value)
    return value


def _staff_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_STAFF_NAME:
        msg = f"must be text of 1 to {MAX_STAFF_NAME} characters"
        raise InvalidFieldError(field="name", problem=msg)
    if not value.isprintable():
        raise InvalidFieldError(field="name", problem="must be printable text")
    _no_national_id("name", value)
    return value.strip()


def _no_national_id(field: str, value: str) -> None:
    if holds_national_id(value):
        msg = "holds a resident ID card number, which termfleet never stores; use the staff number"
        raise InvalidFieldError(field, msg)


def _code(value: object, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidFieldError(field, f"{value!r} is not a {field} code")
    return value


def _active(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidFieldError(field="active", problem=f"must be true or false, not {value!r}")
    return value


def _department_code(value: object) -> str:
    return _code(value, "department", inventory.NAME)


def _site_code(value: object) -> str:
    return _code(value, "site", inventory.NAME)


def _window_number(value: object) -> str | None:
    return None if value is None else _code(value, "window", inventory.NUMBER)


_STAFF_CHECKS: Mapping[str, Callable[[object], object]] = {
    "name": _staff_name,
    "department": _department_code,
    "site": _site_code,
    "window": _window_number,
    "active": _active,
}


# --- tokens -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    name: str
    role: Role
    scope: str | None
    """A node's code; None: the whole tree (when ``scope_given``) or the asker's own scope."""
    scope_given: bool
    expires_in: timedelta | None = None
    replace: bool = False


def token(body: Body) -> TokenRequest:
    _only(body, TOKEN_FIELDS)
    name, role, scope = body.get("name"), body.get("role"), body.get("scope")
    if not isinstance(name, str):
        raise InvalidFieldError(field="name", problem="missing, or not text")
    if not isinstance(role, str):
        raise InvalidFieldError(field="role", problem="missing, or not text")
    try:
        parsed_role = parse_role(role)
    except ValueError as exc:
        raise InvalidFieldError(field="role", problem=str(exc)) from None
    if scope is not None and not isinstance(scope, str):
        raise InvalidFieldError(
            field="scope", problem="must be a node's code, or null for the whole tree"
        )
    days = body.get("expires_in_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS
    ):
        msg = f"must be a whole number of days from 1 to {MAX_TOKEN_DAYS}, or null for never"
        raise InvalidFieldError(field="expires_in_days", problem=msg)
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise InvalidFieldError(field="replace", problem="must be true or false")
    return TokenRequest(
        name=name,
        role=parsed_role,
        scope=scope,
        scope_given="scope" in body,
        expires_in=timedelta(days=days) if days is not None else None,
        replace=replace,
    )
