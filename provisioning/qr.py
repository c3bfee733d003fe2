"""QR codes of enrollment links: a PNG or SVG file for a label, and text for the terminal.

The link holds a claim code and the shared claim password, so files are created readable by
their owner only, and appear whole or not at all (written to a temporary file, then renamed).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import segno

from edge.atomic_file import write_atomic

ERROR_LEVEL = "m"
"""Level M (15 % of the code may be lost): survives a scuffed or creased label and keeps a
typical link at version 7 (45 modules), small enough to print and to show in a terminal."""
QUIET_ZONE_MODULES = 4
"""The blank border ISO/IEC 18004 requires; scanners miss codes that sit too close to print."""
PNG_SCALE_PX = 8
"""Pixels per module. At ``PNG_DPI`` that is 0.68 mm, about 36 mm for a typical link."""
PNG_DPI = 300
"""Recorded in the PNG so a label program prints it at its intended size."""
SVG_MODULE_MM = 0.68
"""Millimetres per module in the SVG: the same printed size as the PNG."""
FORMATS = (".png", ".svg")


class QrError(ValueError):
    """A QR code that cannot be written where or how it was asked for."""


def qr_code(link: str) -> segno.QRCode:
    """The QR code of ``link`` exactly as the files and the terminal show it."""
    if not link:
        msg = "nothing to put in the QR code: the link is empty"
        raise QrError(msg)
    try:
        return segno.make(link, error=ERROR_LEVEL, boost_error=False, micro=False)
    except segno.DataOverflowError as error:
        msg = f"link is too long for a QR code at level M ({len(link.encode())} bytes)"
        raise QrError(msg) from error


def write_qr(link: str, path: str | os.PathLike[str]) -> Path:
    """Write the QR code of ``link`` to ``path``, as PNG or SVG by its suffix; return the path."""
    target = Path(path)
    kind = target.suffix.lower()
    if kind not in FORMATS:
        msg = f"QR code file must end in .png or .svg, got {target.name!r}"
        raise QrError(msg)
    if not target.parent.is_dir():
        msg = f"cannot write QR code to {target}: directory {target.parent} does not exist"
        raise QrError(msg)
    buffer = io.BytesIO()
    code = qr_code(link)
    if kind == ".png":
        code.save(buffer, kind="png", scale=PNG_SCALE_PX, border=QUIET_ZONE_MODULES, dpi=PNG_DPI)
    else:
        code.save(buffer, kind="svg", scale=SVG_MODULE_MM, unit="mm", border=QUIET_ZONE_MODULES)
    # 0600: the link holds the claim login's password.
    write_atomic(target, buffer.getvalue(), mode=0o600)
    return target


def terminal_qr(link: str) -> str:
    """The QR code of ``link`` as text, two modules per line in Unicode half blocks.

    Light modules are drawn and dark ones left blank, which reads right on the usual dark
    terminal background; on a light background the code shows inverted.
    """
    out = io.StringIO()
    qr_code(link).terminal(out=out, border=QUIET_ZONE_MODULES, compact=True)
    return out.getvalue()
