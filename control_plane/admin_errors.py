"""Why a change to the tree, sites, staff or tokens was refused. Pure.

The administration modules (``tree_admin``, ``site_admin``, ``window_admin``, ``staff``,
``tokens``) raise these; the REST API turns each into its status (``http/admin.py``), and a scope
refusal stays ``auth.PermissionDeniedError`` (403). ``code`` is stable for scripts, the message
is for people.
"""

from __future__ import annotations


class AdminError(Exception):
    """A request that cannot be carried out as asked."""

    code = "invalid"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidFieldError(AdminError):
    """A field of the request is missing, malformed or not allowed (HTTP 400)."""

    code = "invalid_field"

    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field


class NotFoundError(AdminError):
    """No such object, or none the asker may see: the two are told apart to nobody (HTTP 404)."""

    code = "not_found"


class ConflictError(AdminError):
    """The object exists already, or is still in use (HTTP 409)."""

    code = "conflict"


IN_USE = "in_use"
"""ConflictError code: the object cannot be deleted while something refers to it."""
ALREADY_EXISTS = "already_exists"
"""ConflictError code: an object with that key exists."""
