"""Headless Chromium for the tests that check how an HTML page renders (the fleet report).

``render(page, out_dir)`` loads a local HTML file the way a person opens it in a browser (file://, no
server, no network), returns the DOM Chromium built (``--dump-dom``) and writes a screenshot PNG, kept
as a test artifact. ``png_pixels`` decodes that screenshot (8-bit RGB/RGBA, no interlace: what Chromium
writes) with the standard library, so a test can count the pixels of a colour. ``scripts/chromium.sh``
installs Debian's chromium when it is missing.
"""

from __future__ import annotations

import pathlib
import shutil
import struct
import subprocess
import tempfile
import zlib

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]
PROJECT = pathlib.Path(__file__).resolve().parent.parent


def chromium():
    """Path of the chromium binary, installed by scripts/chromium.sh when missing."""
    found = shutil.which("chromium")
    if found:
        return found
    proc = subprocess.run([str(PROJECT / "scripts" / "chromium.sh")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def _run(page, extra, timeout=120):
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, pathlib.Path(page).resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout,
        )
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def render(page, out_dir, name="page", width=1600, height=1000):
    """(DOM as Chromium serialised it, path of the screenshot PNG) of a local HTML file."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dom = _run(page, ["--dump-dom"]).stdout
    shot = out_dir / f"{name}.png"
    _run(page, [f"--screenshot={shot}", f"--window-size={width},{height}"])
    assert shot.is_file() and shot.stat().st_size > 0, f"no screenshot written to {shot}"
    return dom, shot


def png_pixels(path):
    """(width, height, rows): rows[y] is a list of (r, g, b) tuples."""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG layout {header}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            up_left = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[x] = (line[x] + pred) & 0xFF
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows


def count_colour(rows, rgb, tolerance=6):
    """Pixels within ``tolerance`` of ``rgb`` on every channel."""
    return sum(1 for row in rows for px in row if all(abs(a - b) <= tolerance for a, b in zip(px, rgb, strict=True)))


def rows_with_colour(rows, rgb, tolerance=6, minimum=50):
    """Indexes of the pixel rows holding at least ``minimum`` pixels of ``rgb``."""
    return [y for y, row in enumerate(rows)
            if sum(1 for px in row if all(abs(a - b) <= tolerance for a, b in zip(px, rgb, strict=True))) >= minimum]
