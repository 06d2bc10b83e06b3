"""Every card renders to PNG with the official renderer in headless Chromium (Teams light host
config), and the README's pictures are there and match the cards as they are built now."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from tests.cards.test_official_renderer import BUILDERS, Builder
from tests.support.node_tools import ROOT, require_chromium, require_node, run_node
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


def file_name(card_name: str) -> str:
    return card_name.replace("/", "__").replace("+", "-")


def render(cards: dict[str, dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Every card through tools/render_cards.js in one Chromium; the renderer's report."""
    require_node("adaptivecards", "adaptivecards-designer", "playwright-core")
    chromium = require_chromium()
    result = run_node(
        "render_cards.js",
        str(out_dir),
        stdin=[{"name": name, "card": card} for name, card in cards.items()],
        env={"CHROMIUM_PATH": chromium},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert set(report) == set(cards)
    return report


def rendered_in_the_browser() -> dict[str, Builder]:
    """The validator's cards (tests/cards/test_official_renderer.py checks all of them) but each
    notice once rather than in every state, and without the hostile-text variants: those are
    about escaping and size, which the validator and tests/cards/test_hostile_rendering.py
    check. A PNG of each of the 1,000+ cards took 90 s of the suite and rendered nothing new."""
    chosen: dict[str, Builder] = {}
    notices: set[str] = set()
    for name, builder in BUILDERS.items():
        if name.startswith("hostile/"):
            continue
        if name.startswith("notice/"):
            notice = name.split("/")[1]
            if notice in notices:
                continue
            notices.add(notice)
        chosen[name] = builder
    return chosen


def test_every_card_renders_to_a_png_in_headless_chromium(tmp_path: Path) -> None:
    # Every builder, state and viewer (see rendered_in_the_browser).
    cards = {file_name(name): builder() for name, builder in rendered_in_the_browser().items()}
    report = render(cards, tmp_path)
    for name, shown in report.items():
        assert shown["events"] == [], f"{name}: {shown['events']}"
        width, height = png_size(tmp_path / f"{name}.png")
        assert (shown["width"], width) == (CARD_WIDTH, CARD_WIDTH * SCALE), name
        assert height >= 40 * SCALE, f"{name} rendered as an empty box ({height} px high)"
    approver_view = file_name("approval/pending_approval/approver")
    # Eight facts, a description, an input and two buttons: several hundred pixels high.
    assert 300 * SCALE <= png_size(tmp_path / f"{approver_view}.png")[1] <= 1200 * SCALE
    assert (tmp_path / f"{approver_view}.png").stat().st_size > 20_000  # text, not a blank box


def test_readme_pictures_show_the_cards_as_they_are_built_now(tmp_path: Path) -> None:
    # A card that gains or loses a line changes its height; the committed picture must follow.
    report = render(pictures(), tmp_path)
    for name in report:
        committed = png_size(IMAGES / f"{name}.png")
        fresh = png_size(tmp_path / f"{name}.png")
        assert abs(committed[1] - fresh[1]) <= 2 * SCALE, (
            f"docs/images/{name}.png is {committed}, the card now renders at {fresh}: "
            "re-render with `python -m tools.card_pictures`"
        )


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
