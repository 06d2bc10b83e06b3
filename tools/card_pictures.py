"""Renders the README's card pictures: `python -m tools.card_pictures`.

Builds the intake card, the approval card as the approver sees it and the channel welcome card
from sample data, and renders them with the official Adaptive Cards renderer in headless Chromium
with the Teams light host config (tools/render_cards.js) into docs/images/card-<name>.png.
Needs node, `npm ci` and Chromium (/usr/bin/chromium or CHROMIUM_PATH).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cards.engagement import approval_card
from cards.intake import intake_card
from cards.welcome import welcome_card
from core.model import Engagement, TeamInstallation, ViewerRole

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
RENDERER = ROOT / "tools" / "render_cards.js"

TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
APPROVER_ID = "aad-megan"


def _team(name: str, group_id: str) -> TeamInstallation:
    return TeamInstallation(
        team_id=f"19:{group_id}@thread.tacv2",
        aad_group_id=group_id,
        name=name,
        tenant_id="contoso",
        service_url="https://smba.trafficmanager.net/emea/",
        reference={},
    )


TEAMS = [_team("Marketing", "group-marketing"), _team("Product Engineering", "group-product")]

SAMPLE = Engagement(
    id=12,
    requester_id="aad-alex",
    requester_name="Alex Wilber",
    tenant_id="contoso",
    project_title="Spring campaign landing pages",
    description=(
        "Design and build three landing pages for the spring campaign, with the brand team's "
        "new templates. Access to the campaign assets only."
    ),
    freelancer_name="Jordan Lee",
    freelancer_email="jordan.lee@fabrikam-studio.com",
    start_date=date(2026, 3, 9),
    end_date=date(2026, 5, 29),
    team_id="group-marketing",
    team_name="Marketing",
    channel_name="Spring campaign - Jordan Lee",
    created_at=NOW,
    updated_at=NOW,
    approver_id=APPROVER_ID,
    approver_name="Megan Bowen",
)


def pictures() -> dict[str, dict[str, Any]]:
    """The README's cards by picture name."""
    return {
        "card-intake": intake_card(TEAMS, today=TODAY, selected_team_id="group-marketing"),
        "card-approval": approval_card(SAMPLE, role=ViewerRole.APPROVER),
        "card-welcome": welcome_card(SAMPLE),
    }


def render(cards: dict[str, dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Renders `cards` to `out_dir/<name>.png`; returns the renderer's report per card."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed")
    payload = [{"name": name, "card": card} for name, card in cards.items()]
    result = subprocess.run(
        [node, str(RENDERER), str(out_dir)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"render_cards.js failed ({result.returncode}): {result.stderr}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.card_pictures", description=__doc__)
    parser.add_argument("--out", type=Path, default=IMAGES, help="default docs/images/")
    args = parser.parse_args(argv)
    try:
        report = render(pictures(), args.out)
    except RuntimeError as problem:
        print(problem, file=sys.stderr)
        return 1
    for name, shown in report.items():
        shown_file = Path(shown["file"]).resolve()
        where = shown_file.relative_to(ROOT) if shown_file.is_relative_to(ROOT) else shown_file
        print(f"{name}: {shown['width']}x{shown['height']} -> {where}")
        if shown["events"]:
            print(f"  renderer events: {shown['events']}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
