"""The tree, sites, windows, departments and staff as the API shows them. Pure.

Plain JSON-ready dicts built from rows, which the audit log records as before and after too. No
queries: a caller passes what a view names (a site's node code, a window's departments).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from . import jurisdiction
from .db.models import Department, JurisdictionNode, ServiceWindow, Site
from .db.staff_models import Staff


def node_view(node: JurisdictionNode) -> dict[str, Any]:
    """A node with its parent's code and the codes from the root, read off its path."""
    codes = jurisdiction.codes(node.path)
    return {
        "code": node.code,
        "name": node.name,
        "level": node.level,
        "parent": codes[-2] if len(codes) > 1 else None,
        "path": codes,
    }


def site_view(site: Site, node_code: str) -> dict[str, Any]:
    return {
        "code": site.code,
        "name": site.name,
        "level": site.level,
        "node": node_code,
        "address": site.address,
        "hours": site.hours,
        "holidays": dict(site.holidays),
    }


def window_view(window: ServiceWindow, department_codes: Sequence[str]) -> dict[str, Any]:
    return {
        "number": window.number,
        "name": window.name,
        "departments": sorted(department_codes),
    }


def window_audit_view(site_code: str, window: dict[str, Any]) -> dict[str, Any]:
    """A window as the audit log records it: with its site, which its URL carried."""
    return {"site": site_code, **window}


def department_view(department: Department) -> dict[str, Any]:
    return {"code": department.code, "name": department.name}


def staff_view(
    staff: Staff, *, department: str, site: str, window: str | None = None
) -> dict[str, Any]:
    """A member of staff; ``department`` and ``site`` are codes, ``window`` a number."""
    return {
        "number": staff.number,
        "name": staff.name,
        "department": department,
        "site": site,
        "window": window,
        "active": staff.active,
        "created_at": _iso(staff.created_at),
        "updated_at": _iso(staff.updated_at),
    }


def common_path(first: str, second: str) -> str | None:
    """The path of the deepest node both paths lie in: where a move between them is audited.

    None when they share no root: only the whole tree holds both.
    """
    shared: list[str] = []
    for a, b in zip(jurisdiction.codes(first), jurisdiction.codes(second), strict=False):
        if a != b:
            break
        shared.append(a)
    if not shared:
        return None
    return jurisdiction.SEPARATOR + "".join(f"{code}{jurisdiction.SEPARATOR}" for code in shared)


def _iso(value: datetime) -> str:
    return value.isoformat()
