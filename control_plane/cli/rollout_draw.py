"""What ``termfleet rollout`` prints of a rollout: progress bars per wave, summaries. Pure.

Every function takes the API's JSON view of a rollout (``rollout_views.rollout_view``) and
returns text, so the drawing is tested without a terminal or a server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

BAR_WIDTH = 10
FILLED, EMPTY = "█", "░"
DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
UNIT_S = (86400, 3600, 60, 1)

View = Mapping[str, Any]


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``done`` of ``total`` as a bar: full only when all are done, empty only when none is."""
    if total <= 0:
        return EMPTY * width
    filled = done * width // total
    if 0 < done < total:
        filled = min(max(filled, 1), width - 1)
    return FILLED * filled + EMPTY * (width - filled)


def number(value: float) -> str:
    """A per cent as people write it: 10, 0.5."""
    return f"{value:g}"


def wave_line(wave: View) -> str:
    """``wave 2 (10 %)  ████████░░  38/50 succeeded 2 failed``, and what else stands out."""
    line = (
        f"wave {wave['number']} ({number(wave['percent'])} %)  "
        f"{bar(wave['succeeded'], wave['size'])}  "
        f"{wave['succeeded']}/{wave['size']} succeeded {wave['failed']} failed"
    )
    extras = []
    if wave["not_judged"]:
        extras.append(f"{wave['not_judged']} not judged")
    under_way = wave["size"] - wave["finished"]
    if under_way and wave["steps"]["queued"] != wave["size"]:
        extras.append(f"{under_way} under way")
    if wave["current"]:
        extras.append("◀ current")
    return line + ("  " + ", ".join(extras) if extras else "")


def headline(view: View) -> str:
    package = view["package"]
    return (
        f"rollout {view['id']}: {package['name']} version {package['version']}"
        f" ({package['kind']}), {view['phase']}, wave {view['wave']} of {view['wave_count']},"
        f" {view['device_count']} devices"
    )


def draw(view: View) -> list[str]:
    """The lines ``show`` and ``show --watch`` print: a headline, a pause line, one per wave."""
    lines = [headline(view)]
    if view["pause_reason"]:
        detail = f": {view['pause_detail']}" if view["pause_detail"] else ""
        lines.append(f"  paused ({view['pause_reason']}){detail}")
    lines += [f"  {wave_line(wave)}" for wave in view["waves"]]
    return lines


def details(view: View) -> list[str]:
    """What ``show`` adds below the bars: thresholds, policy, targeting, who made it."""
    package = view["package"]
    previous = package["previous_version"]
    target = {key: value for key, value in view["target"].items() if value}
    waves = ", ".join(number(p) for p in view["wave_percents"])
    peripheral = f"; peripheral {view['peripheral']}" if view["peripheral"] else ""
    thresholds = (
        f"advance at {number(view['success_threshold'])} % succeeded, pause above"
        f" {number(view['failure_threshold'])} % failed (after {view['min_finished']} finished)"
    )
    timeout = duration_text(view["device_timeout_s"])
    return [
        f"  waves {waves} %; {thresholds}",
        f"  install {view['install_policy']}; a device times out {timeout} after its notice",
        f"  target {target or 'every device'}{peripheral}",
        f"  rollback returns to version {previous}" if previous else "  no version to roll back to",
        f"  sha256 {package['sha256']}",
        f"  created by {view['created_by']} at {view['created_at']}",
    ]


def change_line(view: View) -> str:
    """One line per change, for ``--watch`` without a terminal (a log, a pipe)."""
    waves = "; ".join(
        f"wave {wave['number']} {wave['succeeded']}/{wave['size']} succeeded"
        f" {wave['failed']} failed"
        for wave in view["waves"]
    )
    pause = f" ({view['pause_reason']})" if view["pause_reason"] else ""
    return (
        f"{view['id']}: {view['phase']}{pause}, wave {view['wave']}/{view['wave_count']}: {waves}"
    )


def redraw(previous_lines: int, lines: Sequence[str]) -> str:
    """The text that replaces the ``previous_lines`` last printed lines of a terminal."""
    # CSI n F: up n lines to their start; CSI J: clear to the end of the screen.
    back = f"\x1b[{previous_lines}F\x1b[J" if previous_lines else ""
    return back + "\n".join(lines)


def parse_duration(text: str) -> int:
    """Seconds in ``2h``, ``90m``, ``1h30m``, ``1d``, ``45s`` or plain ``3600``; ValueError."""
    text = text.strip()
    if text.isdigit():
        seconds = int(text)
    else:
        found = DURATION.fullmatch(text)
        if not text or found is None:
            msg = f"{text!r} is not a duration such as 2h, 90m, 1h30m, 1d or 3600 (seconds)"
            raise ValueError(msg)
        seconds = sum(int(n or 0) * unit for n, unit in zip(found.groups(), UNIT_S, strict=True))
    if seconds <= 0:
        msg = f"{text!r}: a duration must be longer than 0 s"
        raise ValueError(msg)
    return seconds


def duration_text(seconds: int) -> str:
    """``7200`` as ``2h``, ``5400`` as ``1h30m``."""
    parts = []
    for unit, name in zip(UNIT_S, "dhms", strict=True):
        count, seconds = divmod(seconds, unit)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts) or "0s"
