"""QR files and terminal text of enrollment links, read back module by module.

No QR decoder is installed, so each rendering is decoded to its module matrix here (the PNG with
zlib and struct, the SVG from its path, the terminal text from its half blocks) and compared with
the matrix segno makes for the link at level M: a file holding any other text fails.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zlib
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import segno

from edge.protocol.claim_code import enroll_link, new_code
from provisioning import qr
from provisioning.qr import QrError, terminal_qr, write_qr

LINK = enroll_link(new_code(), "mqtts://broker.example:8883", "认领 p&ss=word")
BORDER = 4
Matrix = list[list[int]]


def expected_matrix(link: str, scale: int = 1) -> Matrix:
    """The link's modules (1 = dark) with the quiet zone, from segno independently of qr.py."""
    code = segno.make(link, error="m", boost_error=False, micro=False)
    assert code.error == "M"
    return [list(row) for row in code.matrix_iter(scale=scale, border=BORDER)]


# --- PNG ------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> dict[bytes, list[bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks: dict[bytes, list[bytes]] = {}
    offset = 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.setdefault(kind, []).append(body)
        offset += 12 + length
    assert b"IEND" in chunks
    return chunks


def unfilter(raw: bytes, row_bytes: int, height: int, pixel_bytes: int) -> list[bytes]:
    """Undo PNG's per-row filters (PNG spec §9)."""
    rows: list[bytes] = []
    previous = bytearray(row_bytes)
    for y in range(height):
        start = y * (row_bytes + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + row_bytes])
        for i in range(row_bytes):
            left = line[i - pixel_bytes] if i >= pixel_bytes else 0
            up, corner = previous[i], previous[i - pixel_bytes] if i >= pixel_bytes else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + paeth(left, up, corner)) & 0xFF
            else:
                assert kind == 0, f"unknown PNG filter {kind}"
        rows.append(bytes(line))
        previous = line
    return rows


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_dark_pixels(data: bytes) -> tuple[Matrix, bytes]:
    """The image as rows of 1 (dark) and 0 (light), and its pHYs chunk."""
    chunks = png_chunks(data)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert interlace == 0
    assert colour in {0, 3}, f"colour type {colour}: expected greyscale or palette"
    assert depth in {1, 2, 4, 8}
    palette = chunks.get(b"PLTE", [b""])[0]
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    rows = unfilter(raw, (width * depth + 7) // 8, height, 1)
    pixels: Matrix = []
    for row in rows:
        bits = "".join(f"{byte:08b}" for byte in row)
        samples = [int(bits[x * depth : (x + 1) * depth], 2) for x in range(width)]
        if colour == 3:
            grey = [sum(palette[3 * s : 3 * s + 3]) // 3 for s in samples]
        else:
            grey = [s * 255 // ((1 << depth) - 1) for s in samples]
        pixels.append([int(g < 128) for g in grey])
    return pixels, chunks[b"pHYs"][0]


def test_the_png_is_a_png_holding_exactly_the_link(tmp_path: Path) -> None:
    path = write_qr(LINK, tmp_path / "claim.png")

    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pixels, physical = png_dark_pixels(data)
    assert pixels == expected_matrix(LINK, scale=8)
    assert pixels != expected_matrix(LINK.replace("mqtts", "mqtt"), scale=8)
    per_metre = round(300 / 0.0254)
    assert struct.unpack(">IIB", physical) == (per_metre, per_metre, 1)


def test_the_png_is_big_enough_to_print_and_scan(tmp_path: Path) -> None:
    pixels, _ = png_dark_pixels(write_qr(LINK, tmp_path / "claim.png").read_bytes())
    modules = len(expected_matrix(LINK))

    assert len(pixels) == len(pixels[0]) == modules * qr.PNG_SCALE_PX
    assert modules * qr.PNG_SCALE_PX / qr.PNG_DPI * 25.4 < 50  # fits a 50 mm label
    assert qr.PNG_SCALE_PX / qr.PNG_DPI * 25.4 >= 0.5  # modules a handheld scanner reads


def test_the_suffix_may_be_upper_case(tmp_path: Path) -> None:
    data = write_qr(LINK, tmp_path / "CLAIM.PNG").read_bytes()
    assert png_dark_pixels(data)[0] == expected_matrix(LINK, scale=8)


# --- SVG ------------------------------------------------------------------------------------


SVG_PATH_STEP = re.compile(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?")


def svg_dark_modules(root: ET.Element, size: int) -> Matrix:
    """Modules drawn by segno's path of horizontal lines: M x y, then h runs and m moves."""
    path = root.find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    matrix = [[0] * size for _ in range(size)]
    x = y = 0.0
    for command, first, second in re.findall(
        r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.get("d", "")
    ):
        if command == "M":
            x, y = float(first), float(second)
        elif command == "m":
            x, y = x + float(first), y + float(second)
        else:
            for column in range(int(x), int(x + float(first))):
                matrix[int(y)][column] = 1
            x += float(first)
    return matrix


def test_the_svg_is_well_formed_and_holds_exactly_the_link(tmp_path: Path) -> None:
    text = write_qr(LINK, tmp_path / "claim.svg").read_text(encoding="utf-8")

    root = ET.fromstring(text)  # noqa: S314 - our own file, just written
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    expected = expected_matrix(LINK)
    assert svg_dark_modules(root, len(expected)) == expected
    printed_mm = len(expected) * qr.SVG_MODULE_MM
    for side in ("width", "height"):
        assert root.get(side, "").endswith("mm")
        assert float(root.get(side, "").removesuffix("mm")) == pytest.approx(printed_mm)


# --- the terminal ---------------------------------------------------------------------------

HALF_BLOCKS = {" ": (1, 1), "\u2580": (0, 1), "\u2584": (1, 0), "\u2588": (0, 0)}
"""Each character's (top, bottom) modules: light ones are drawn, for a dark background."""


def test_the_terminal_text_holds_exactly_the_link() -> None:
    text = terminal_qr(LINK)
    expected = expected_matrix(LINK)

    lines = text.splitlines()
    assert text.endswith("\n")
    assert set(text) <= {*HALF_BLOCKS, "\n"}
    assert len(lines) == (len(expected) + 1) // 2
    assert {len(line) for line in lines} == {len(expected)}
    tops = [[HALF_BLOCKS[c][0] for c in line] for line in lines]
    bottoms = [[HALF_BLOCKS[c][1] for c in line] for line in lines]
    decoded = [row for pair in zip(tops, bottoms, strict=True) for row in pair]
    assert decoded[: len(expected)] == expected
    # An odd number of rows leaves the last line's lower half: segno fills it dark (blank).
    assert decoded[len(expected) :] in ([], [[1] * len(expected)])


def test_the_terminal_shows_the_quiet_zone_as_drawn_light_modules() -> None:
    lines = terminal_qr(LINK).splitlines()
    assert set(lines[0]) == set(lines[1]) == {"\u2588"}  # the first four rows are all light


# --- refusals and atomic writes -------------------------------------------------------------


@pytest.mark.parametrize("name", ["claim.jpg", "claim", "claim.png.txt", "claim.eps"])
def test_other_formats_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(QrError, match=r"must end in \.png or \.svg"):
        write_qr(LINK, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("link", "message"), [("", "link is empty"), ("x" * 3000, "too long")])
def test_links_no_qr_code_can_hold_are_refused(tmp_path: Path, link: str, message: str) -> None:
    with pytest.raises(QrError, match=message):
        write_qr(link, tmp_path / "claim.png")
    with pytest.raises(QrError, match=message):
        terminal_qr(link)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(QrError, match="does not exist"):
        write_qr(LINK, tmp_path / "nowhere" / "claim.png")


def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = write_qr(LINK, tmp_path / "claim.svg")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_rewrite_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "claim.png"
    path.write_bytes(b"old")
    write_qr(LINK, path)

    assert png_dark_pixels(path.read_bytes())[0] == expected_matrix(LINK, scale=8)
    assert [p.name for p in tmp_path.iterdir()] == ["claim.png"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "claim.png"
    path.write_bytes(b"old")

    def fail(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        write_qr(LINK, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["claim.png"]
