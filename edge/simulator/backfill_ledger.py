"""The days a simulator's state directory has backfilled, so that no day is backfilled twice.

A backfill's records get new sequence numbers, which the control plane's ingest cannot tell
from new records: a second backfill of the same days would count every case of them twice.
The ledger (``backfill.json`` in the state directory, beside the terminals' outboxes) lists the
days done; a backfill claims its days before it writes a single record, and is refused when one
of them is claimed already. There is no override: a day claimed by a backfill that was cut short
loses the records it had not written, which is better than counting some of them twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from edge.atomic_file import write_atomic

LEDGER_FILE = "backfill.json"


class BackfillRefusedError(RuntimeError):
    """The backfill would count days a previous backfill has counted already."""


def ledger_path(state_dir: Path) -> Path:
    return state_dir / LEDGER_FILE


def backfilled_days(state_dir: Path) -> list[date]:
    """The days backfilled into ``state_dir``'s terminals so far, oldest first."""
    path = ledger_path(state_dir)
    try:
        data = json.loads(path.read_text())
        return sorted(date.fromisoformat(day) for day in data["days"])
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot read the backfill ledger {path}: {exc}"
        raise BackfillRefusedError(msg) from None


def claim_days(state_dir: Path, days: Sequence[date]) -> None:
    """Record ``days`` as backfilled; refused, with the days in question, if any already are."""
    done = backfilled_days(state_dir)
    overlap = sorted(set(done) & set(days))
    if overlap:
        path = ledger_path(state_dir)
        msg = (
            f"refusing to backfill: {_days_text(overlap)} already backfilled into the terminals"
            f" of {state_dir} ({path}); a second backfill would count those days twice. Ask"
            " for other days, or start afresh with a new --state-dir and an empty database"
        )
        raise BackfillRefusedError(msg)
    every = sorted(set(done) | set(days))
    state_dir.mkdir(parents=True, exist_ok=True)
    payload = {"days": [day.isoformat() for day in every]}
    write_atomic(ledger_path(state_dir), (json.dumps(payload, indent=1) + "\n").encode())


def _days_text(days: Sequence[date]) -> str:
    if len(days) == 1:
        return days[0].isoformat()
    return f"{len(days)} days ({days[0].isoformat()} to {days[-1].isoformat()})"
