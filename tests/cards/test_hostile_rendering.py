"""Hostile content in every card that shows text from users or the directory: markdown and HTML
injection, 10,000 characters, control characters, right-to-left text with bidi overrides, emoji
(ZWJ sequences, skin tones, flags), Adaptive Cards' {{DATE()}} functions, and the texts that
grow most when escaped or encoded.

Whatever comes in, a card shows it literally (no live markdown, no date function), without
control characters or bidi overrides, bounded (no text anywhere near 10,000 characters), within
Teams' message size, and with right-to-left letters and emoji intact. The same cards go through
the official Adaptive Cards library and renderer (tests/cards/test_official_renderer.py,
tests/cards/test_rendering.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from cards.admin import (
    audit_page_card,
    engagement_page_card,
    export_card,
    policy_card,
    report_card,
    timeline_card,
)
from cards.common import CARD_BUDGET, card_size, text_card
from cards.engagement import approval_card, engagement_list_card, notice_card, submitted_card
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
from core.admin import Page, Timeline
from core.intake import (
    FIELD_CHANNEL_NAME,
    FIELD_FREELANCER_EMAIL,
    FORM_PROBLEM,
    INTAKE_FIELDS,
)
from core.intake_service import IntakePreview
from core.model import Engagement, EngagementState, Notice, ViewerRole
from core.policy import PolicyKey, PolicyLine, PolicyView
from tests.support.cards import walk
from tests.unit.test_admin_cards import AT, EXPIRES, LINKS, record, report
from tests.unit.test_cards import (
    APPROVER,
    REQUESTER,
    TODAY,
    decided,
    has_live_markdown,
    intake_preview,
    team,
    unescape,
)

Card = dict[str, Any]

# Teams refuses a bot message over ~28 KB with 413 MessageSizeTooBig
# (/work/shared/platform/graph-teams-facts.md, C6, from limits-specifications-teams.md).
TEAMS_MESSAGE_LIMIT = 28_000
# The longest text a card shows: a profile link as typed in the form's input (2048), or a
# description (2000); everything else is shorter.
LONGEST_TEXT = 2_100

MARKDOWN = "**bold** [link](https://evil.example) <b>x</b> # heading\n- list"
HUGE = ((MARKDOWN + " and more words ") * 200)[:10_000]
# Every C0 control but tab and line feed, then a CR LF, DEL, C1 controls (NEL among them).
CONTROL = (
    "Ja"
    + "".join(chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))
    + "ne\r\nDoe\x7f\x85\x9b\tend"
)
# Hebrew and Arabic, an override that would show "exe.png" as "gnp.exe", an isolate.
RTL = "שלום עולם \u202egnp.exe\u202c مرحبا \u2066isolated\u2069"
# Family and technologist (ZWJ sequences, one with a skin tone), two flags, the rainbow flag
# (variation selector and ZWJ), a thumbs-up with a skin tone.
EMOJI = (
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 "
    "\U0001f9d1\U0001f3fd\u200d\U0001f4bb \U0001f1fa\U0001f1e6\U0001f1ef\U0001f1f5 "
    "\U0001f3f3\ufe0f\u200d\U0001f308 \U0001f44d\U0001f3fd"
)
TEMPLATE = "{{DATE(2025-01-01T00:00:00Z, SHORT)}} at {{TIME(2025-01-01T00:00:00Z)}}"
STARS = "*" * 10_000  # every character escaped: the text that grows most in a card
WIDE = "\U0001f9d1\u200d\U0001f4bb" * 3_400  # ~10,000 code points of 3 and 4 UTF-8 bytes

HOSTILE = {
    "markdown": MARKDOWN,
    "huge": HUGE,
    "control": CONTROL,
    "rtl": RTL,
    "emoji": EMOJI,
    "template": TEMPLATE,
    "stars": STARS,
    "wide": WIDE,
}
# What the reader must see of each, somewhere on the card (after unescaping).
KEPT = {
    "markdown": MARKDOWN,
    "huge": HUGE[:60],
    "control": "Jane\nDoe\tend",
    "rtl": "שלום עולם gnp.exe مرحبا isolated",
    "emoji": EMOJI,
    "template": TEMPLATE,
    "stars": "*" * 60,
    "wide": "\U0001f9d1\u200d\U0001f4bb" * 20,
}
# Control characters (tabs and line feeds are text), bidi embeddings, overrides and isolates.
HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


# --- hostile data ------------------------------------------------------------------------------


def hostile(text: str, state: EngagementState, **changes: Any) -> Engagement:
    """An engagement in `state` whose every text, from the requester, the approver, an admin or
    the directory, is `text`."""
    fields = (
        "project_title",
        "description",
        "justification",
        "freelancer_name",
        "freelancer_email",
        "freelancer_org",
        "profile_url",
        "requester_name",
        "approver_name",
        "decided_by_name",
        "decision_reason",
        "failure_reason",
        "team_name",
        "channel_name",
        "end_reason",
        "ended_by_name",
    )
    subject = decided(state, sponsor_id=REQUESTER, **dict.fromkeys(fields, text))
    if state is EngagementState.PENDING_APPROVAL:
        subject = replace(subject, decided_by_name=None, decided_at=None)
    return replace(subject, **changes)


def hostile_preview(text: str) -> IntakePreview:
    fields = (
        "project_title",
        "description",
        "justification",
        "freelancer_name",
        "freelancer_email",
        "freelancer_org",
        "profile_url",
        "channel_name",
    )
    preview = intake_preview(
        notes=(texts.PREFLIGHT_GUEST_EXISTS.format(name=text), text),
        **dict.fromkeys(fields, text),
    )
    return replace(preview, team=team(text, "group-hostile"))


PENDING = EngagementState.PENDING_APPROVAL
ACTIVE = EngagementState.ACTIVE

# Every card builder that shows user- or directory-supplied text, fed `text` everywhere.
CARDS: dict[str, Callable[[str], Card]] = {
    "intake/form": lambda text: intake_card(
        [team(text, "group-1"), team(text, "group-2")],
        today=TODAY,
        values=dict.fromkeys(INTAKE_FIELDS, text),
        errors={
            FIELD_FREELANCER_EMAIL: text,
            FIELD_CHANNEL_NAME: texts.ERR_CHANNEL_TAKEN.format(name=text, team=text),
            FORM_PROBLEM: text,
        },
        time_zone=text,
        notice=texts.DRAFT_RESUMED.format(when=text),
        draft=True,
    ),
    "intake/preview": lambda text: preview_card(hostile_preview(text), message=text),
    "engagement/approval-approver": lambda text: approval_card(
        hostile(text, PENDING),
        role=ViewerRole.APPROVER,
        message=text,
        refresh_user_ids=[f"29:user-{n}" for n in range(60)],
    ),
    "engagement/approval-approver-stage-2": lambda text: approval_card(
        hostile(text, PENDING, approval_stage=2, stages=2),
        role=ViewerRole.APPROVER,
        message=text,
    ),
    "engagement/approval-requester": lambda text: approval_card(
        hostile(text, PENDING, approval_stage=2, stages=2), role=ViewerRole.REQUESTER
    ),
    "engagement/approval-other": lambda text: approval_card(
        hostile(text, PENDING), role=ViewerRole.OTHER, message=text
    ),
    "engagement/approval-changes-requested": lambda text: approval_card(
        hostile(text, EngagementState.CHANGES_REQUESTED, decided_by_name=None),
        role=ViewerRole.REQUESTER,
    ),
    "engagement/approval-cancelled": lambda text: approval_card(
        hostile(text, EngagementState.CANCELLED), role=ViewerRole.OTHER
    ),
    "engagement/approval-expired": lambda text: approval_card(
        hostile(text, EngagementState.EXPIRED, decided_by_name=None), role=ViewerRole.REQUESTER
    ),
    "engagement/approval-rejected": lambda text: approval_card(
        hostile(text, EngagementState.REJECTED), role=ViewerRole.OTHER
    ),
    "engagement/approval-failed": lambda text: approval_card(
        hostile(text, EngagementState.PROVISIONING_FAILED), role=ViewerRole.REQUESTER
    ),
    "engagement/changes-requested": lambda text: changes_requested_card(
        hostile(text, EngagementState.CHANGES_REQUESTED),
        teams=[team(text, "group-1"), team(text, "group-2")],
        today=TODAY,
        comment=text,
        comment_by=text,
        values=dict.fromkeys(INTAKE_FIELDS, text),
        errors={FIELD_FREELANCER_EMAIL: text, FORM_PROBLEM: text},
        time_zone=text,
    ),
    "engagement/changes-requested-prefilled": lambda text: changes_requested_card(
        hostile(text, EngagementState.CHANGES_REQUESTED),
        teams=[team(text, "group-1")],
        today=TODAY,
        comment=text,
        comment_by=text,
    ),
    "engagement/submitted": lambda text: submitted_card(hostile(text, PENDING)),
    "engagement/list": lambda text: engagement_list_card(
        text, [hostile(text, PENDING), hostile(text, ACTIVE, id=8)], empty_text=text
    ),
    "engagement/list-empty": lambda text: engagement_list_card(text, [], empty_text=text),
    "engagement/notice-rejected": lambda text: notice_card(
        hostile(text, EngagementState.REJECTED), Notice.REJECTED
    ),
    "engagement/notice-extension-rejected": lambda text: notice_card(
        hostile(text, ACTIVE), Notice.EXTENSION_REJECTED, text
    ),
    "engagement/notice-ended": lambda text: notice_card(
        hostile(text, EngagementState.ENDED), Notice.ENDED
    ),
    "engagement/notice-cancelled": lambda text: notice_card(
        hostile(text, EngagementState.CANCELLED), Notice.CANCELLED
    ),
    "engagement/notice-reminder": lambda text: notice_card(
        hostile(text, PENDING), Notice.APPROVAL_REMINDER
    ),
    "engagement/notice-escalated": lambda text: notice_card(
        hostile(text, PENDING), Notice.ESCALATED, text
    ),
    "engagement/notice-delegated": lambda text: notice_card(
        hostile(text, PENDING), Notice.DELEGATED, text
    ),
    "lifecycle/reminder": lambda text: end_reminder_card(
        hostile(text, ACTIVE), today=TODAY, message=text, attention=True
    ),
    "lifecycle/reminder-waiting": lambda text: end_reminder_card(
        hostile(text, ACTIVE, extension_end_date=date(2025, 7, 1)), today=TODAY
    ),
    "lifecycle/revoke": lambda text: revoke_confirm_card(hostile(text, ACTIVE), reason=text),
    "lifecycle/extension": lambda text: extension_approval_card(
        hostile(text, ACTIVE, extension_end_date=date(2025, 7, 1)),
        viewer_id=APPROVER,
        message=text,
    ),
    "lifecycle/nudge": lambda text: invitation_nudge_card(hostile(text, ACTIVE), days_pending=4),
    "lifecycle/closing-note": lambda text: closing_note_card(hostile(text, EngagementState.ENDED)),
    "welcome": lambda text: welcome_card(hostile(text, ACTIVE)),
    "text": lambda text: text_card(text, title=text, attention=True),
    "admin/requests": lambda text: engagement_page_card(
        text,
        Page([hostile(text, state, id=n + 1) for n, state in enumerate(EngagementState)], 2, True),
        command="/requests",
        args=text,
        empty_text=text,
        today=TODAY,
    ),
    "admin/audit": lambda text: audit_page_card(
        text,
        Page(
            [
                record(actor_name=text, detail=text, action=text),
                record(actor_name=text, detail=text, action=f"command.{text}"),
            ],
            1,
            False,
        ),
        command="/audit",
        args=text,
        empty_text=text,
    ),
    "admin/timeline": lambda text: timeline_card(
        Timeline(
            hostile(text, EngagementState.OFFBOARDING_FAILED),
            [record(actor_name=text, detail=text, action=text)],
            3,
        )
    ),
    "admin/report": lambda text: report_card(report(active_by_team=((text, 3), (text, 1)))),
    "admin/export": lambda text: export_card([(text, LINKS[0][1])], expires_at=EXPIRES),
    "admin/policy": lambda text: policy_card(
        PolicyView([PolicyLine(key, text, text, AT) for key in PolicyKey]), message=text
    ),
}

# The builders CARDS feeds; a new builder that shows outside text must be added to both.
FED = {
    intake_card,
    changes_requested_card,
    preview_card,
    approval_card,
    submitted_card,
    engagement_list_card,
    notice_card,
    end_reminder_card,
    revoke_confirm_card,
    extension_approval_card,
    invitation_nudge_card,
    closing_note_card,
    welcome_card,
    text_card,
    engagement_page_card,
    audit_page_card,
    timeline_card,
    report_card,
    export_card,
    policy_card,
}

# One card per builder and hostile text; the official renderer's checks build them too.
HOSTILE_CARDS: dict[str, Callable[[], Card]] = {
    f"hostile/{card}/{kind}": (lambda build=build, text=text: build(text))
    for card, build in CARDS.items()
    for kind, text in HOSTILE.items()
}


# --- what a card shows ---------------------------------------------------------------------------


def markdown_texts(card: Card) -> list[str]:
    """The texts a card renders as markdown: TextBlocks and facts."""
    shown: list[str] = []
    for node in walk(card):
        if node.get("type") == "TextBlock":
            shown.append(node["text"])
        elif node.get("type") == "FactSet":
            shown.extend(text for fact in node["facts"] for text in (fact["title"], fact["value"]))
    return shown


def literal_texts(card: Card) -> list[str]:
    """The texts a card shows as they are: inputs (labels, values, placeholders, errors), the
    choices of a list, and button titles."""
    shown: list[str] = []
    for node in walk(card):
        kind = str(node.get("type", ""))
        if kind.startswith("Input."):
            shown.extend(
                str(node[key])
                for key in ("label", "value", "placeholder", "errorMessage")
                if key in node
            )
            shown.extend(choice["title"] for choice in node.get("choices", []))
        elif kind.startswith("Action.") and "title" in node:  # a refresh action has none
            shown.append(node["title"])
    return shown


def strings(node: Any) -> Iterator[str]:
    """Every string anywhere in the card, keys and action data included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def visible_text(card: Card) -> str:
    """Everything a reader sees on the card, markdown escapes undone."""
    return "\n".join([*map(unescape, markdown_texts(card)), *literal_texts(card)])


CASES = sorted(HOSTILE_CARDS)


@pytest.fixture(scope="module")
def built() -> dict[str, Card]:
    return {name: build() for name, build in HOSTILE_CARDS.items()}


# --- the tests ---------------------------------------------------------------------------------


def test_every_card_builder_with_user_or_directory_text_is_fed_hostile_text() -> None:
    import cards.admin
    import cards.common
    import cards.engagement
    import cards.help
    import cards.intake
    import cards.lifecycle
    import cards.welcome

    public = {
        name
        for module in (
            cards.admin,
            cards.common,
            cards.engagement,
            cards.help,
            cards.intake,
            cards.lifecycle,
            cards.welcome,
        )
        for name, value in vars(module).items()
        if name.endswith("_card")
        and not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", "") == module.__name__
    }
    # The envelope and the help card (the bot's own command list) show no outside text.
    assert public - {f.__name__ for f in FED} == {"adaptive_card", "help_card"}


@pytest.mark.parametrize("name", CASES)
def test_no_markdown_link_emphasis_html_or_date_function_is_live(
    name: str, built: dict[str, Card]
) -> None:
    shown = markdown_texts(built[name])
    for text in shown:
        assert not has_live_markdown(text), text[:200]
        assert "{{" not in text, text[:200]
    assert "[link](https" not in json.dumps(shown, ensure_ascii=False)


@pytest.mark.parametrize("name", CASES)
def test_no_control_character_or_bidi_override_is_left_anywhere(
    name: str, built: dict[str, Card]
) -> None:
    for text in strings(built[name]):
        found = HIDDEN.search(text)
        assert found is None, f"{found.group()!r} in {text[:80]!r}"


@pytest.mark.parametrize("name", CASES)
def test_every_text_is_bounded(name: str, built: dict[str, Card]) -> None:
    # As the reader sees it: the escapes of a text full of markdown characters don't count.
    for text in map(unescape, strings(built[name])):
        assert len(text) <= LONGEST_TEXT, f"{len(text)} characters: {text[:80]!r}"


@pytest.mark.parametrize("name", CASES)
def test_the_card_fits_in_a_teams_message(name: str, built: dict[str, Card]) -> None:
    size = card_size(built[name])  # bytes of UTF-8 JSON; raises on what can't be encoded
    assert size <= CARD_BUDGET < TEAMS_MESSAGE_LIMIT, size


@pytest.mark.parametrize("name", CASES)
def test_the_reader_sees_what_was_typed_with_rtl_letters_and_emoji_intact(
    name: str, built: dict[str, Card]
) -> None:
    kind = name.rsplit("/", 1)[1]
    assert KEPT[kind] in visible_text(built[name])


def test_a_huge_value_is_cut_to_what_its_field_holds_in_the_form() -> None:
    card = CARDS["intake/form"](HUGE)
    values = {
        node["id"]: node.get("value")
        for node in walk(card)
        if str(node.get("type", "")).startswith("Input.")
    }
    assert values["project_title"] == HUGE[:100]
    assert values["description"] == HUGE[:2000]
    assert values["profile_url"] == HUGE[:2048]
    assert values["channel_name"] == HUGE[:50]
    assert values["data_classification"] == "internal"
    assert values["start_date"] == HUGE[:40]
    assert values["team_id"] is None


def test_a_form_full_of_wide_characters_is_cut_rather_than_refused_by_teams() -> None:
    # Every field at its limit with 4-byte characters would be ~25 KB of values alone.
    card = CARDS["intake/form"](WIDE)
    description = next(n for n in walk(card) if n.get("id") == "description")["value"]
    assert 0 < len(description) < 2000
    assert card_size(card) <= CARD_BUDGET


def test_a_lone_surrogate_is_dropped_so_the_card_can_still_be_sent() -> None:
    # Python strings can hold one (a JSON "\ud800" decodes to it); UTF-8 can't encode it.
    for build in CARDS.values():
        card = build("Jane \ud800Doe")
        assert "Jane Doe" in visible_text(card)
        assert card_size(card) <= CARD_BUDGET
