"""Every card builder, for every state and every viewer, passes the official Adaptive Cards
library (npm adaptivecards 3.0.6 in Node, with the Teams host config): zero parse events and
zero validation events. tools/validate_cards.js does the checking; all cards go in one Node run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

import cards.admin
import cards.common
import cards.engagement
import cards.help
import cards.intake
import cards.lifecycle
import cards.welcome
from cards.admin import (
    audit_page_card,
    engagement_page_card,
    export_card,
    policy_card,
    report_card,
    timeline_card,
)
from cards.common import text_card
from cards.engagement import approval_card, engagement_list_card, notice_card, submitted_card
from cards.help import help_card
from cards.intake import changes_requested_card, intake_card, preview_card
from cards.lifecycle import (
    closing_note_card,
    end_reminder_card,
    extension_approval_card,
    invitation_nudge_card,
    revoke_confirm_card,
)
from cards.welcome import welcome_card
from core import texts
from core.intake import FIELD_END_DATE, FIELD_FREELANCER_EMAIL, FIELD_PROJECT_TITLE
from core.model import Engagement, EngagementState, Notice, ViewerRole
from tests.cards.test_approval_cards import APPROVAL_CARDS
from tests.cards.test_hostile_rendering import HOSTILE_CARDS
from tests.cards.test_intake_cards import INTAKE_CARDS
from tests.cards.test_policy_card import POLICY_CARDS
from tests.support.node_tools import require_node, run_node
from tests.unit.test_admin_cards import ADMIN_CARDS, EVIL_ADMIN_CARDS
from tests.unit.test_cards import (
    APPROVER,
    EVERY_CARD,
    EVIL_CARDS,
    REQUESTER,
    STRANGER,
    TEAMS,
    TODAY,
    USER_VALUES,
    decided,
    engagement,
)

Card = dict[str, Any]
Builder = Callable[[], Card]

VIEWERS = {"approver": APPROVER, "requester": REQUESTER, "stranger": STRANGER, "anyone": None}
LONG = "A long line of text that wraps across the card. " * 40


SET_UP = {
    EngagementState.ACTIVE,
    EngagementState.OFFBOARDING,
    EngagementState.OFFBOARDING_FAILED,
    EngagementState.ENDED,
}
ENDING = {EngagementState.OFFBOARDING, EngagementState.OFFBOARDING_FAILED, EngagementState.ENDED}


def in_state(state: EngagementState, **changes: Any) -> Engagement:
    """An engagement as it looks in `state`: decided ones carry who decided, when and why; set-up
    ones their sponsor; ending and ended ones who ended them, when and why."""
    if state is EngagementState.PENDING_APPROVAL:
        return engagement(**changes)
    lifecycle: dict[str, Any] = {}
    if state in SET_UP:
        lifecycle["sponsor_id"] = REQUESTER
    if state in ENDING:
        lifecycle |= {
            "end_reason": "Contract cancelled",
            "ended_by_id": REQUESTER,
            "ended_by_name": "Rita Requester",
            "ended_at": datetime(2025, 5, 2, 11, 0, tzinfo=UTC),
        }
    return decided(
        state,
        decision_reason="Budget is frozen",
        failure_reason="Graph said: Insufficient privileges (User.Invite.All).",
        **(lifecycle | changes),
    )


# The shapes of the requester's answer to the end reminder that change what the cards show.
ANSWERS: dict[str, dict[str, Any]] = {
    "open": {},
    "extension-waiting": {"extension_end_date": date(2025, 7, 31)},
    "let-it-end": {"let_it_end": True},
}


def _approval(state: EngagementState, role: ViewerRole, **kwargs: Any) -> Builder:
    return lambda: approval_card(in_state(state), role=role, **kwargs)


def _notice(notice: Notice, state: EngagementState) -> Builder:
    return lambda: notice_card(in_state(state), notice)


def _of_state(builder: Callable[[Engagement], Card], state: EngagementState) -> Builder:
    return lambda: builder(in_state(state))


def _reminder(state: EngagementState, answer: str, **kwargs: Any) -> Builder:
    return lambda: end_reminder_card(in_state(state, **ANSWERS[answer]), **kwargs)


def _extension(state: EngagementState, answer: str, viewer: str | None, **kwargs: Any) -> Builder:
    return lambda: extension_approval_card(
        in_state(state, **ANSWERS[answer]), viewer_id=viewer, **kwargs
    )


def _lifecycle_builders() -> dict[str, Builder]:
    """The lifecycle cards in every state, for every answer to the reminder and every viewer."""
    every: dict[str, Builder] = {}
    for state in EngagementState:
        for answer in ANSWERS:
            every[f"reminder/{state.value}/{answer}"] = _reminder(state, answer, today=TODAY)
            for viewer_name, viewer in VIEWERS.items():
                every[f"extension/{state.value}/{answer}/{viewer_name}"] = _extension(
                    state, answer, viewer
                )
        every[f"revoke/{state.value}"] = lambda state=state: revoke_confirm_card(
            in_state(state), reason="Contract cancelled"
        )
        every[f"nudge/{state.value}"] = lambda state=state: invitation_nudge_card(
            in_state(state), days_pending=3
        )
        every[f"closing/{state.value}"] = _of_state(closing_note_card, state)
    # Every countdown wording, and the messages a turn shows when it re-renders a card.
    end = in_state(EngagementState.ACTIVE).end_date
    for days in (-2, 0, 1, 2, 14):
        every[f"reminder/active/in-{days}-days"] = _reminder(
            EngagementState.ACTIVE, "open", today=end - timedelta(days=days)
        )
    every["reminder/active/error"] = _reminder(
        EngagementState.ACTIVE,
        "open",
        today=TODAY,
        message=texts.EXTENSION_NOT_LATER.format(end="8 Jun 2025"),
        attention=True,
    )
    every["reminder/active/confirmation"] = _reminder(
        EngagementState.ACTIVE,
        "let-it-end",
        today=TODAY,
        message=texts.LET_IT_END_RECORDED.format(ref="FC-7", end="8 Jun 2025"),
    )
    every["extension/active/extension-waiting/approver+error"] = _extension(
        EngagementState.ACTIVE,
        "extension-waiting",
        APPROVER,
        message=texts.REJECT_REASON_REQUIRED,
        attention=True,
    )
    every["revoke/active/long-reason"] = lambda: revoke_confirm_card(
        in_state(EngagementState.ACTIVE), reason=LONG
    )
    every["revoke/active/no-reason"] = lambda: revoke_confirm_card(
        in_state(EngagementState.ACTIVE), reason=""
    )
    every["nudge/active/today"] = lambda: invitation_nudge_card(
        in_state(EngagementState.ACTIVE), days_pending=0
    )
    every["closing/ended/end-date-reached"] = lambda: closing_note_card(
        in_state(EngagementState.ENDED, ended_by_id=None, ended_by_name=None, end_reason=None)
    )
    every["closing/ended/long"] = lambda: closing_note_card(
        in_state(EngagementState.ENDED, end_reason=LONG, project_title=LONG)
    )
    return every


def _builders() -> dict[str, Builder]:
    every: dict[str, Builder] = {}
    # The unit tests' representative cards and their markdown-injection variants.
    every |= {f"unit/{name}": builder for name, builder in EVERY_CARD.items()}
    every |= {f"evil/{name}": builder for name, builder in EVIL_CARDS.items()}
    # The approval card in every state, for every role (only the approver of a pending one
    # gets inputs and decisions, the requester Cancel while it waits), plus the message and
    # refresh variants; the stages, the form sent back for changes and the private summary.
    for state in EngagementState:
        for role in ViewerRole:
            every[f"approval/{state.value}/{role.value}"] = _approval(state, role)
        every[f"approval/{state.value}/message+refresh"] = _approval(
            state,
            ViewerRole.APPROVER,
            message=texts.ALREADY_DECIDED.format(state="approved", name="Alex Approver"),
            refresh_user_ids=[f"29:user-{n}" for n in range(70)],
        )
    every |= APPROVAL_CARDS
    # Every notice, about an engagement in every state (and the approver's reason, if any).
    for notice in Notice:
        for state in EngagementState:
            every[f"notice/{notice.value}/{state.value}"] = _notice(notice, state)
    every["notice/extension_rejected/active/with-reason"] = lambda: notice_card(
        in_state(EngagementState.ACTIVE), Notice.EXTENSION_REJECTED, LONG
    )
    every |= _lifecycle_builders()
    # Lists: one row per state, empty, long.
    every["list/every-state"] = lambda: engagement_list_card(
        texts.STATUS_TITLE,
        [replace(in_state(state), id=n + 1) for n, state in enumerate(EngagementState)],
        empty_text=texts.NO_ENGAGEMENTS,
    )
    every["list/empty"] = lambda: engagement_list_card(
        texts.PENDING_TITLE, [], empty_text=texts.NO_PENDING
    )
    # Intake: fresh, one team, preselected, every field wrong, long values, no teams.
    every["intake/fresh"] = lambda: intake_card(TEAMS, today=TODAY)
    every["intake/one-team"] = lambda: intake_card(TEAMS[:1], today=TODAY)
    every["intake/preselected"] = lambda: intake_card(
        TEAMS, today=TODAY, selected_team_id="group-engineering"
    )
    every["intake/all-errors"] = lambda: intake_card(
        TEAMS,
        today=TODAY,
        values=USER_VALUES,
        errors={field: f"{field} is wrong" for field in USER_VALUES} | {"form": "Try again"},
    )
    every["intake/long-values"] = lambda: intake_card(
        TEAMS,
        today=TODAY,
        values={FIELD_PROJECT_TITLE: LONG, FIELD_FREELANCER_EMAIL: LONG},
        errors={FIELD_END_DATE: LONG},
    )
    every["intake/no-teams"] = lambda: intake_card([], today=TODAY)
    # The complete form's other shapes, the preview, the terms on the approver's card, /policy.
    every |= INTAKE_CARDS
    every |= POLICY_CARDS
    # The rest, in each of their shapes.
    for state in EngagementState:
        every[f"submitted/{state.value}"] = _of_state(submitted_card, state)
        every[f"welcome/{state.value}"] = _of_state(welcome_card, state)
    every["welcome/long"] = lambda: welcome_card(engagement(project_title=LONG))
    every["help/commands"] = lambda: help_card(
        [("/request", texts.CMD_REQUEST_HELP), ("/status", texts.CMD_STATUS_HELP)]
    )
    every["help/greeting"] = lambda: help_card([("/help", texts.CMD_HELP_HELP)], greeting=True)
    every["help/none"] = lambda: help_card([])
    every["text/plain"] = lambda: text_card("Done.")
    every["text/titled-attention"] = lambda: text_card(
        "Nothing changed.", title="No", attention=True
    )
    # The admin commands' cards (pages, timeline, report, export), and hostile content in them.
    every |= ADMIN_CARDS
    every |= EVIL_ADMIN_CARDS
    # Every builder that shows outside text, fed each hostile text (tests/cards/
    # test_hostile_rendering.py): huge, escaped, right-to-left, emoji and control characters
    # must neither break the official parser nor the renderer.
    every |= HOSTILE_CARDS
    return every


BUILDERS = _builders()
# The builder functions this file calls; a new public builder must be added above.
COVERED = {
    approval_card,
    engagement_list_card,
    help_card,
    intake_card,
    changes_requested_card,
    preview_card,
    notice_card,
    submitted_card,
    text_card,
    welcome_card,
    end_reminder_card,
    revoke_confirm_card,
    extension_approval_card,
    invitation_nudge_card,
    closing_note_card,
    engagement_page_card,
    audit_page_card,
    timeline_card,
    report_card,
    export_card,
    policy_card,
}


@pytest.fixture(scope="module")
def official_events() -> dict[str, list[dict[str, str]]]:
    """Every card's parse and validation events from the official library (one Node run)."""
    require_node("adaptivecards", "adaptivecards-designer")
    payload = [{"name": name, "card": builder()} for name, builder in BUILDERS.items()]
    result = run_node("validate_cards.js", stdin=payload)
    assert result.returncode in (0, 1), result.stderr
    report: dict[str, list[dict[str, str]]] = json.loads(result.stdout)
    assert set(report) == set(BUILDERS)
    return report


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_card_has_no_parse_or_validation_events(
    name: str, official_events: dict[str, list[dict[str, str]]]
) -> None:
    events = official_events[name]
    assert events == [], f"card {name!r}: " + "; ".join(
        f"{e['phase']}/{e['event']}: {e['message']}" for e in events
    )


def test_every_public_builder_is_checked() -> None:
    builders: set[str] = set()
    modules = (
        cards.admin,
        cards.common,
        cards.engagement,
        cards.help,
        cards.intake,
        cards.lifecycle,
        cards.welcome,
    )
    for module in modules:
        builders |= {
            name
            for name, value in vars(module).items()
            if name.endswith("_card")
            and not name.startswith("_")
            and callable(value)
            and getattr(value, "__module__", "") == module.__name__
        }
    missing = builders - {"adaptive_card"} - {f.__name__ for f in COVERED}
    assert not missing, f"add {sorted(missing)} to tests/cards/test_official_renderer.py"


def test_the_checker_reports_broken_cards() -> None:
    require_node("adaptivecards", "adaptivecards-designer")
    good = text_card("ok")
    broken = {
        **good,
        "body": [
            {"type": "TextBlok", "text": "x"},
            {"type": "TextBlock", "text": "y", "size": "gigantic"},
            {"type": "Input.Text"},
        ],
        "actions": [{"type": "Action.Bogus", "title": "x"}],
    }
    result = run_node(
        "validate_cards.js",
        stdin=[{"name": "good", "card": good}, {"name": "bad", "card": broken}],
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["good"] == []
    found = {(e["phase"], e["event"]) for e in report["bad"]}
    assert found >= {
        ("Parse", "UnknownElementType"),
        ("Parse", "InvalidPropertyValue"),
        ("Parse", "UnknownActionType"),
        ("Validation", "PropertyCantBeNull"),
    }
