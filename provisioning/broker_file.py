"""The broker's dynamic-security file, written before termfleet starts a broker itself.

Rendering the whole file from the database is the most robust reconcile there is: whatever the
broker did or failed to save while it ran, it starts with exactly the logins the database
says. Changes while it runs go through its command API (``provisioning.broker_admin``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from edge.atomic_file import write_atomic

from . import dynsec


def write_dynsec_file(
    path: Path, clients: Iterable[dynsec.Client], roles: Iterable[dynsec.Role]
) -> None:
    """Replace ``path`` atomically; the file holds password hashes, so it is 0600 throughout."""
    write_atomic(path, json.dumps(dynsec.render_config(clients, roles), indent=1).encode())
