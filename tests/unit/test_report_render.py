"""The report opens in headless Chromium and its screenshot shows the plots.

Skipped only when Chromium is absent locally (CI installs Debian's ``chromium``). The PNG is
decoded with zlib (no Pillow needed) and checked for the colours the plots paint.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from testbed.report import write_report
from testbed.report.sample import sample_records
from testbed.report.svg import OUTCOME_COLOURS, TIER_COLOURS
from testbed.scoring import score

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw RGB(A) rows of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour_type in (2, 6)
    channels = 4 if colour_type == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    offset = 0
    for _ in range(height):
        kind, line = raw[offset], bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r) for r in rows] if channels == 3 else [
        b"".join(r[i:i + 3] for i in range(0, len(r), 4)) for r in rows]


def hex_rgb(colour: str, opacity: float = 1.0) -> tuple[int, int, int]:
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return tuple(round(opacity * c + (1 - opacity) * 255) for c in rgb)  # type: ignore[return-value]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_screenshot_shows_the_plots(tmp_path: Path) -> None:
    records = sample_records()
    report = write_report(tmp_path / "report.html", score(records), records)
    screenshot = tmp_path / "report.png"
    completed = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={screenshot}", "--window-size=1280,2000", report.as_uri()],
        capture_output=True, timeout=120, check=False)
    assert screenshot.is_file(), completed.stderr.decode(errors="replace")[-2000:]
    width, height, rows = decode_png(screenshot.read_bytes())
    assert (width, height) == (1280, 2000)
    colours: dict[tuple[int, int, int], int] = {}
    for row in rows[::2]:
        for i in range(0, len(row), 6):
            pixel = (row[i], row[i + 1], row[i + 2])
            colours[pixel] = colours.get(pixel, 0) + 1
    assert len(colours) > 200, f"only {len(colours)} distinct colours: a blank page?"

    def painted(rgb: tuple[int, int, int], tolerance: int = 8, at_least: int = 30) -> bool:
        return sum(n for c, n in colours.items()
                   if all(abs(a - b) <= tolerance for a, b in zip(c, rgb, strict=True))) >= at_least

    # the stacked infection curve (fill-opacity 0.85 over white) ...
    assert painted(hex_rgb(TIER_COLOURS["workstation"], 0.85), at_least=2000)
    assert painted(hex_rgb(TIER_COLOURS["launch-pad"], 0.85), at_least=2000)
    # ... and the topology's outcome colours (dots of hosts)
    assert painted(hex_rgb(OUTCOME_COLOURS["infected-quarantined"]))
    assert painted(hex_rgb(OUTCOME_COLOURS["clean"]))
