"""The cards render to PNG with the official renderer in headless Chromium (Teams light host
config), and the README's pictures are there and look like cards."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from cards.engagement import approval_card
from tests.support.node_tools import ROOT, require_chromium, require_node, run_node
from tests.unit.test_cards import APPROVER, engagement
from tools.card_pictures import IMAGES, pictures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCALE = 2  # render_cards.js uses deviceScaleFactor 2
CARD_WIDTH = 460


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_card_renders_to_a_png_in_headless_chromium(tmp_path: Path) -> None:
    require_node("adaptivecards", "adaptivecards-designer", "playwright-core")
    chromium = require_chromium()
    card = approval_card(engagement(), viewer_id=APPROVER)
    result = run_node(
        "render_cards.js",
        str(tmp_path),
        stdin=[{"name": "approval", "card": card}],
        env={"CHROMIUM_PATH": chromium},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["approval"]
    assert report["events"] == []
    png = tmp_path / "approval.png"
    width, height = png_size(png)
    assert (report["width"], width) == (CARD_WIDTH, CARD_WIDTH * SCALE)
    # Eight facts, a description, an input and two buttons: several hundred pixels high.
    assert 300 * SCALE <= height <= 1200 * SCALE, height
    assert png.stat().st_size > 20_000  # text and buttons, not an empty box


def test_readme_shows_the_intake_approval_and_welcome_pictures() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("card-intake", "card-approval", "card-welcome"):
        assert name in pictures()
        picture = IMAGES / f"{name}.png"
        assert f"docs/images/{name}.png" in readme, f"README.md does not show {name}"
        width, height = png_size(picture)
        assert width == CARD_WIDTH * SCALE and 100 * SCALE <= height <= 1200 * SCALE, (
            f"{picture} is {width}x{height}: re-render with `python -m tools.card_pictures`"
        )
