"""Headless Chromium from Debian's package, driven from its command line: the DOM a page has
once loaded, and a screenshot of it.

`make test` installs the package where it is missing. Outside CI a machine without it skips
the browser tests; under CI (`CI` set) a missing browser fails them instead, so a green CI run
always means the pages were looked at in a real browser.
"""

from __future__ import annotations

import asyncio
import html.parser
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots kept after the run, for a person to look at.
ARTIFACTS = ROOT / "var" / "test-artifacts"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make test installs Debian's package)")
        pytest.skip("chromium is not installed (make test installs Debian's package)")
    return found


async def _chromium(*args: str, timeout: float = 90.0) -> bytes:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            *(["--no-sandbox"] if os.geteuid() == 0 else []),  # root has no user namespace sandbox
            *args,
        ]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", ""), "HOME": profile},
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise AssertionError(f"chromium exited {process.returncode}: {err.decode()[-2000:]}")
        return out


async def dump_dom(url: str) -> str:
    """The page's DOM after it loaded, as Chromium serialises it."""
    return (await _chromium("--dump-dom", url)).decode("utf-8")


async def screenshot(url: str, name: str, *, size: tuple[int, int] = (1280, 1400)) -> Path:
    """A PNG of the page, kept under var/test-artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.unlink(missing_ok=True)
    await _chromium(f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url)
    assert path.exists() and path.stat().st_size > 0, "chromium wrote no screenshot"
    return path


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) bytes of an 8-bit PNG, as Chromium writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unexpected PNG format"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
        rows.append(
            bytes(line)
            if channels == 3
            else bytes(b for i in range(0, stride, 4) for b in line[i : i + 3])
        )
        previous = line
    return width, height, rows


def count_colour(path: Path, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    """Pixels of about this colour in a screenshot: proof that something of it was drawn."""
    _, _, rows = png_pixels(path)
    found = 0
    for row in rows:
        for i in range(0, len(row), 3):
            if all(abs(row[i + c] - rgb[c]) <= tolerance for c in range(3)):
                found += 1
    return found


class _Tables(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(dom: str) -> list[list[list[str]]]:
    """Every table of a page as rows of cell texts."""
    parser = _Tables()
    parser.feed(dom)
    return parser.tables
