"""The README's pictures exist, are small PNGs, and every picture under docs/images/ is shown.

They are made by `make screenshots` (`stack.screenshots`); this checks what was committed.
"""

from __future__ import annotations

import re
import struct

from stack.screenshots import MAX_PNG_BYTES, WINDOW
from tests import layout

ROOT = layout.ROOT
IMAGES = ROOT / "docs" / "images"
# Markdown images: ![alt](path)
IMAGE_LINK = re.compile(r"!\[([^\]]+)\]\(([^)\s]+)\)")


def _readme_images() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {path: alt for alt, path in IMAGE_LINK.findall(text)}


def test_the_readme_shows_at_least_three_pictures_each_with_words() -> None:
    shown = _readme_images()
    assert len(shown) >= 3, shown
    for path, alt in shown.items():
        assert path.startswith("docs/images/") and path.endswith(".png"), path
        assert alt.strip(), f"{path}: no alternative text"


def test_each_picture_is_a_png_of_the_window_and_under_the_size_limit() -> None:
    for path in _readme_images():
        data = (ROOT / path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
        assert struct.unpack(">II", data[16:24]) == WINDOW, path
        assert len(data) < MAX_PNG_BYTES, f"{path}: {len(data)} bytes"


def test_every_committed_picture_is_shown() -> None:
    committed = {f"docs/images/{png.name}" for png in IMAGES.glob("*.png")}
    assert committed <= set(_readme_images()), committed - set(_readme_images())
