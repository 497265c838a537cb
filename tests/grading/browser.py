"""Helpers for tests that look at pages in headless Chromium (Debian's package)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageColor


def require_chromium() -> None:
    """Skip the calling test, with the reason, where Chromium is not installed."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (the test setup installs Debian's chromium package)")


def colour_pixels(image: Image.Image, colour: str, tolerance: int = 40) -> int:
    """How many pixels lie within ``tolerance`` (per channel) of ``colour``."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    target = np.array(ImageColor.getrgb(colour), dtype=np.int16)
    return int((np.abs(pixels - target).max(axis=2) <= tolerance).sum())


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


class TextOf(HTMLParser):
    """The visible text of an HTML document (without style and script contents)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)

    @classmethod
    def of(cls, html: str) -> str:
        parser = cls()
        parser.feed(html)
        return " ".join(" ".join(parser.parts).split())


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("chromium")
    return subprocess.run(
        [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


