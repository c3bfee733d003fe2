"""The dashboard files to publish, read and checked before Grafana is asked anything.

Every problem of every file is reported at once, so one run tells all that needs fixing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .publish import (
    INSTANCE_FIELDS,
    TERMFLEET_FOLDER,
    DashboardFileError,
    DashboardSpec,
    FolderSpec,
)

DASHBOARDS_DIR = Path(__file__).parent / "grafana" / "dashboards"
UID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
"""Grafana's rule for uids: at most 40 letters, digits, hyphens and underscores."""


def load_dashboards(directory: Path, folder: FolderSpec = TERMFLEET_FOLDER) -> list[DashboardSpec]:
    """Every ``*.json`` in ``directory``, checked; all problems at once in one error."""
    paths = sorted(directory.glob("*.json"))
    if not paths:
        msg = f"{directory}: no dashboard files (*.json) to publish"
        raise DashboardFileError(msg)
    problems: list[str] = []
    specs: list[DashboardSpec] = []
    first_file_of: dict[str, str] = {}
    for path in paths:
        model, problem = _read_model(path)
        if problem is None and model is not None:
            uid = str(model["uid"])
            if uid in first_file_of:
                problem = f'uid "{uid}" is also the uid of {first_file_of[uid]}'
            else:
                first_file_of[uid] = path.name
                specs.append(DashboardSpec(path.name, model, folder.uid))
        if problem is not None:
            problems.append(f"{path.name}: {problem}")
    if problems:
        msg = "nothing was published; fix these dashboard files:\n  " + "\n  ".join(problems)
        raise DashboardFileError(msg)
    return specs


def _read_model(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The file's model without ``INSTANCE_FIELDS``, or what is wrong with it."""
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except OSError as exc:
        return None, f"unreadable: {exc.strerror}"
    return _checked(model)


def _checked(model: object) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(model, dict):
        return None, f"a dashboard is a JSON object, not {type(model).__name__}"
    uid, title = model.get("uid"), model.get("title")
    if not isinstance(uid, str) or not UID_PATTERN.match(uid):
        return None, f"uid {uid!r} is not 1-40 letters, digits, '-' or '_' (Grafana's rule)"
    if not isinstance(title, str) or not title.strip():
        return None, "title is missing or empty"
    return {k: v for k, v in model.items() if k not in INSTANCE_FIELDS}, None
