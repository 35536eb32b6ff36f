"""The report opens in headless Chromium and its screenshot shows the plots.

Skipped only when Chromium is absent locally (CI installs Debian's ``chromium``). The PNG is
decoded with zlib and numpy (no Pillow needed) and checked for the colours the plots paint.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from testbed.report import write_report
from testbed.report.sample import sample_records
from testbed.report.svg import OUTCOME_COLOURS, TIER_COLOURS
from testbed.scoring import score

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def decode_png(data: bytes) -> np.ndarray:
    """The RGB pixels (height x width x 3) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        chunk = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        if chunk == b"IHDR":
            header = body
        elif chunk == b"IDAT":
            idat += body
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour_type in (2, 6)
    channels = 4 if colour_type == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    image = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        start = y * (stride + 1)
        row_filter = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1)
        if row_filter == 0:  # None
            row = line.copy()
        elif row_filter == 1:  # Sub: a running sum per channel, modulo 256
            row = (np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint64)
                   & 255).astype(np.uint8).reshape(stride)
        elif row_filter == 2:  # Up
            row = line + previous
        else:  # Average and Paeth depend on the decoded left byte: byte by byte
            out, up = bytearray(line.tobytes()), previous.tobytes()
            for i in range(stride):
                left = out[i - channels] if i >= channels else 0
                if row_filter == 3:
                    out[i] = (out[i] + ((left + up[i]) >> 1)) & 0xFF
                    continue
                up_left = up[i - channels] if i >= channels else 0
                estimate = left + up[i] - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up[i]), abs(estimate - up_left)
                predictor = left if pa <= pb and pa <= pc else up[i] if pb <= pc else up_left
                out[i] = (out[i] + predictor) & 0xFF
            row = np.frombuffer(bytes(out), dtype=np.uint8)
        image[y] = row
        previous = row
    return image.reshape(height, width, channels)[:, :, :3]


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
    pixels = decode_png(screenshot.read_bytes())
    assert pixels.shape == (2000, 1280, 3)
    flat = pixels.reshape(-1, 3).astype(np.int16)
    packed = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    distinct = len(np.unique(packed))
    assert distinct > 200, f"only {distinct} distinct colours: a blank page?"

    def painted(rgb: tuple[int, int, int], tolerance: int = 8, at_least: int = 60) -> bool:
        near = np.all(np.abs(flat - np.array(rgb, dtype=np.int16)) <= tolerance, axis=1)
        return int(near.sum()) >= at_least

    # the stacked infection curve (fill-opacity 0.85 over white) ...
    assert painted(hex_rgb(TIER_COLOURS["workstation"], 0.85), at_least=8000)
    assert painted(hex_rgb(TIER_COLOURS["launch-pad"], 0.85), at_least=8000)
    # ... and the topology's outcome colours (dots of hosts)
    assert painted(hex_rgb(OUTCOME_COLOURS["infected-quarantined"]))
    assert painted(hex_rgb(OUTCOME_COLOURS["clean"]))
