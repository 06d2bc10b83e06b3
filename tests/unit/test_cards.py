"""The card builders: valid Adaptive Cards 1.5, the right inputs and actions for the right
viewer, the user's values and errors kept, and user content that can't inject markdown."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from cards import verbs
from cards.common import SCHEMA, plain, text_card
from cards.engagement import (
    MAX_REFRESH_USERS,
    approval_card,
    engagement_list_card,
    notice_card,
    notice_text,
    submitted_card,
)
from cards.help import help_card
from cards.intake import changes_requested_card, error_block_id, intake_card, preview_card
from cards.lifecycle import (
    closing_note_card,
    end_reminder_card,
    extension_approval_card,
    invitation_nudge_card,
    revoke_confirm_card,
)
from cards.welcome import welcome_card
from core import texts
from core.intake import (
    FIELD_BUDGET,
    FIELD_CHANNEL_NAME,
    FIELD_CLASSIFICATION,
    FIELD_END_DATE,
    FIELD_FREELANCER_EMAIL,
    FIELD_FREELANCER_ORG,
    FIELD_HOURS,
    FIELD_JUSTIFICATION,
    FIELD_PROFILE_URL,
    FIELD_PROJECT_TITLE,
    FIELD_START_DATE,
    FIELD_TEAM,
    INTAKE_FIELDS,
    LIMITS,
    IntakeForm,
)
from core.intake_service import IntakePreview
from core.model import (
    DataClassification,
    Engagement,
    EngagementState,
    IntakeDraft,
    Notice,
    TeamInstallation,
    ViewerRole,
)

Card = dict[str, Any]

TODAY = date(2025, 3, 3)
NOW = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
APPROVER = "aad-approver-0001"
REQUESTER = "aad-requester-0002"
STRANGER = "aad-stranger-0003"
TENANT = "tenant-0b5e-secret-ish"
SERVICE_URL = "https://smba.trafficmanager.net/emea/"

# --- a walker over card JSON, with the Adaptive Cards 1.5 subset the cards may use -------------

_COMMON = {"type", "id", "spacing", "separator", "isVisible", "height", "fallback", "requires"}
_INPUT = _COMMON | {"label", "isRequired", "errorMessage", "value"}
ELEMENT_PROPS: dict[str, set[str]] = {
    "TextBlock": _COMMON
    | {
        "text",
        "wrap",
        "size",
        "weight",
        "color",
        "isSubtle",
        "maxLines",
        "horizontalAlignment",
        "fontType",
        "style",
    },
    "FactSet": _COMMON | {"facts"},
    "Container": _COMMON
    | {"items", "style", "bleed", "verticalContentAlignment", "selectAction", "minHeight", "rtl"},
    "ColumnSet": _COMMON
    | {"columns", "style", "bleed", "selectAction", "minHeight", "horizontalAlignment"},
    "Column": _COMMON
    | {
        "items",
        "width",
        "style",
        "bleed",
        "verticalContentAlignment",
        "selectAction",
        "minHeight",
        "rtl",
    },
    "ActionSet": _COMMON | {"actions"},
    "Input.Text": _INPUT
    | {"placeholder", "isMultiline", "maxLength", "style", "regex", "inlineAction"},
    "Input.Date": _INPUT | {"placeholder", "min", "max"},
    "Input.ChoiceSet": _INPUT | {"choices", "isMultiSelect", "style", "placeholder", "wrap"},
}
ACTION_PROPS: dict[str, set[str]] = {
    "Action.Execute": {
        "type",
        "id",
        "title",
        "iconUrl",
        "style",
        "verb",
        "data",
        "associatedInputs",
        "fallback",
        "tooltip",
        "isEnabled",
        "mode",
    },
    # A button that opens a small form inside the card (Extend…, Reject…).
    "Action.ShowCard": {
        "type",
        "id",
        "title",
        "iconUrl",
        "style",
        "card",
        "fallback",
        "tooltip",
        "isEnabled",
        "mode",
    },
}
SHOW_CARD_PROPS = {"type", "body", "actions", "fallbackText", "speak", "lang", "rtl"}
CARD_PROPS = {
    "type",
    "$schema",
    "version",
    "body",
    "actions",
    "refresh",
    "fallbackText",
    "speak",
    "lang",
    "minHeight",
    "msteams",
    "verticalContentAlignment",
    "rtl",
    "metadata",
}
ENUMS: dict[str, set[str]] = {
    "size": {"small", "default", "medium", "large", "extralarge"},
    "weight": {"lighter", "default", "bolder"},
    "color": {"default", "dark", "light", "accent", "good", "warning", "attention"},
    "spacing": {"none", "small", "default", "medium", "large", "extralarge", "padding"},
    "associatedInputs": {"auto", "none"},
}
STYLE_ENUMS: dict[str, set[str]] = {
    "Action.Execute": {"default", "positive", "destructive"},
    "Action.ShowCard": {"default", "positive", "destructive"},
    "Input.Text": {"text", "tel", "url", "email", "password"},
    "Input.ChoiceSet": {"compact", "expanded", "filtered"},
    "Container": {"default", "emphasis", "good", "attention", "warning", "accent"},
}
SECRET_KEY = re.compile(r"password|secret|token|credential|key|cert", re.IGNORECASE)


class Walk:
    """Everything a card shows or submits, gathered while checking each part is valid AC 1.5."""

    def __init__(self, card: Card) -> None:
        self.inputs: list[Card] = []
        self.actions: list[Card] = []
        self.text_blocks: list[Card] = []
        self.facts: list[tuple[str, str]] = []
        self.ids: list[str] = []
        assert card["type"] == "AdaptiveCard"
        assert card["$schema"] == SCHEMA
        assert card["version"] == "1.5"
        assert set(card) <= CARD_PROPS, set(card) - CARD_PROPS
        for element in card["body"]:
            self._element(element)
        for action in card.get("actions", []):
            self._action(action)
        if "refresh" in card:
            refresh = card["refresh"]
            assert set(refresh) <= {"action", "userIds"}
            self._action(refresh["action"], counted=False)

    def _element(self, element: Card) -> None:
        kind = element["type"]
        assert kind in ELEMENT_PROPS, f"not an allowed AC 1.5 element: {kind}"
        assert set(element) <= ELEMENT_PROPS[kind], (kind, set(element) - ELEMENT_PROPS[kind])
        self._enums(kind, element)
        if "id" in element:
            self.ids.append(element["id"])
        if kind == "TextBlock":
            assert isinstance(element["text"], str) and element["text"].strip()
            self.text_blocks.append(element)
        elif kind == "FactSet":
            for fact in element["facts"]:
                assert set(fact) == {"title", "value"}
                self.facts.append((fact["title"], fact["value"]))
        elif kind.startswith("Input."):
            assert element.get("id"), f"input without id: {element}"
            assert element.get("label"), f"input without label: {element}"
            self.inputs.append(element)
            if kind == "Input.ChoiceSet":
                for choice in element["choices"]:
                    assert set(choice) == {"title", "value"}
        for child in element.get("items", []):
            self._element(child)
        for column in element.get("columns", []):
            assert column["type"] == "Column"
            self._element(column)
        for action in element.get("actions", []):
            self._action(action)

    def _action(self, action: Card, *, counted: bool = True) -> None:
        kind = action["type"]
        assert kind in ACTION_PROPS, f"not an allowed action: {kind}"
        assert set(action) <= ACTION_PROPS[kind], set(action) - ACTION_PROPS[kind]
        if kind == "Action.Execute":
            assert action["verb"] in verbs.ALL_VERBS
        self._enums(kind, action)
        if counted:
            assert action.get("title")
            if "id" in action:
                self.ids.append(action["id"])
            self.actions.append(action)
        if kind == "Action.ShowCard":
            shown = action["card"]
            assert shown["type"] == "AdaptiveCard"
            assert set(shown) <= SHOW_CARD_PROPS, set(shown) - SHOW_CARD_PROPS
            for element in shown["body"]:
                self._element(element)
            for inner in shown.get("actions", []):
                self._action(inner)

    @staticmethod
    def _enums(kind: str, part: Card) -> None:
        for prop, allowed in ENUMS.items():
            if prop in part:
                assert str(part[prop]).lower() in allowed, (kind, prop, part[prop])
        if "style" in part and kind in STYLE_ENUMS:
            assert str(part["style"]).lower() in STYLE_ENUMS[kind], (kind, part["style"])

    @property
    def shown(self) -> list[str]:
        """Every markdown string the card displays (TextBlocks and facts)."""
        return [b["text"] for b in self.text_blocks] + [s for fact in self.facts for s in fact]

    @property
    def shown_text(self) -> str:
        return "\n".join(unescape(s) for s in self.shown)

    def input(self, input_id: str) -> Card:
        (found,) = [i for i in self.inputs if i["id"] == input_id]
        return found

    def block(self, block_id: str) -> Card:
        (found,) = [b for b in self.text_blocks if b.get("id") == block_id]
        return found


def check(card: Card) -> Walk:
    """Checks every builder's output must pass, returning what the card holds."""
    walk = Walk(card)
    assert len(walk.ids) == len(set(walk.ids)), f"duplicate ids: {walk.ids}"
    assert json.loads(json.dumps(card)) == card  # JSON-serializable, nothing but plain data
    for key in _keys(card):
        assert not SECRET_KEY.search(key), f"secret-like field {key!r}"
    dumped = json.dumps(card)
    for private in (TENANT, SERVICE_URL, REQUESTER, APPROVER, STRANGER, "conversation-ref"):
        assert private not in dumped
    for action in walk.actions:
        # An engagement's id, the version of the intake draft a preview showed, or the round of
        # changes a form sent back answers: never facts.
        assert set(action.get("data", {})) <= {
            verbs.ENGAGEMENT_ID,
            verbs.DRAFT_VERSION,
            verbs.REVISION,
        }
    return walk


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def unescape(text: str) -> str:
    """What a CommonMark renderer shows for backslash escapes (and our `{{` breaker)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text).replace("\u200b", "")


def has_live_markdown(text: str) -> bool:
    """Whether `text` holds an unescaped markdown-significant character."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in "[]*_`~<":
            return True
        i += 1
    return bool(re.search(r"(?m)^[ \t]*([-+#>=]|\d+[.)])", text))


# --- fixtures ------------------------------------------------------------------------------


def engagement(**changes: Any) -> Engagement:
    base = Engagement(
        id=7,
        requester_id=REQUESTER,
        requester_name="Rita Requester",
        tenant_id=TENANT,
        project_title="Website redesign",
        description="Redesign the public website.",
        freelancer_name="Jane Doe",
        freelancer_email="jane@contoso.com",
        start_date=date(2025, 3, 10),
        end_date=date(2025, 6, 8),
        team_id="group-marketing",
        team_name="Marketing",
        channel_name="Website redesign",
        created_at=NOW,
        updated_at=NOW,
        approver_id=APPROVER,
        approver_name="Alex Approver",
    )
    return replace(base, **changes)


def decided(state: EngagementState, **changes: Any) -> Engagement:
    decision: dict[str, Any] = {
        "state": state,
        "decided_by_id": APPROVER,
        "decided_by_name": "Alex Approver",
        "decided_at": datetime(2025, 3, 4, 15, 0, tzinfo=UTC),
    }
    return engagement(**(decision | changes))


def active(state: EngagementState = EngagementState.ACTIVE, **changes: Any) -> Engagement:
    """An engagement that was set up (active unless `state` says otherwise), the requester
    recorded as the guest's sponsor."""
    return decided(state, **({"sponsor_id": REQUESTER} | changes))


def ended(state: EngagementState = EngagementState.ENDED, **changes: Any) -> Engagement:
    """An engagement its requester ended early, with when and why."""
    ending: dict[str, Any] = {
        "end_reason": "Contract cancelled",
        "ended_by_id": REQUESTER,
        "ended_by_name": "Rita Requester",
        "ended_at": datetime(2025, 5, 2, 11, 0, tzinfo=UTC),
    }
    return active(state, **(ending | changes))


def team(name: str, group_id: str) -> TeamInstallation:
    return TeamInstallation(
        team_id=f"19:{group_id}@thread.tacv2",
        aad_group_id=group_id,
        name=name,
        tenant_id=TENANT,
        service_url=SERVICE_URL,
        reference={"conversation": {"id": "conversation-ref"}},
    )


TEAMS = [team("Marketing", "group-marketing"), team("Engineering", "group-engineering")]

USER_VALUES = {
    FIELD_PROJECT_TITLE: "Website redesign",
    "description": "New look **now**",
    FIELD_JUSTIFICATION: "The agency is booked until June.\nWe launch in May.",
    "freelancer_name": "Jane Doe",
    FIELD_FREELANCER_EMAIL: "jane@contoso",
    FIELD_FREELANCER_ORG: "Upwork",
    FIELD_PROFILE_URL: "http://www.upwork.com/freelancers/jane",
    FIELD_START_DATE: "2025-03-10",
    FIELD_END_DATE: "2025-03-01",
    FIELD_CLASSIFICATION: "confidential",
    FIELD_BUDGET: "12,500",
    FIELD_HOURS: "120 h",
    FIELD_TEAM: "group-engineering",
    FIELD_CHANNEL_NAME: "web#site",
}

PREVIEW_ZONE = "Europe/Berlin"
PREVIEW_NOTE = texts.PREFLIGHT_GUEST_EXISTS.format(name="Jane Doe (Guest)")


def intake_form(**changes: Any) -> IntakeForm:
    """A request that passed every check (as `parse_intake` makes it)."""
    form = IntakeForm(
        project_title="Website redesign",
        description="Redesign the public website.",
        justification="The agency is booked until June.",
        freelancer_name="Jane Doe",
        freelancer_email="jane@contoso.com",
        freelancer_org="Upwork",
        profile_url="https://www.upwork.com/freelancers/jane",
        start_date=date(2025, 3, 10),
        end_date=date(2025, 6, 8),
        data_classification=DataClassification.CONFIDENTIAL,
        budget=Decimal("12500.50"),
        hours=120,
        team_id="group-marketing",
        channel_name="Ext - Website redesign",
    )
    # model_copy skips validation: the tests may give values parse_intake would refuse.
    return form.model_copy(update=changes)


def intake_preview(
    *, notes: tuple[str, ...] = (PREVIEW_NOTE,), version: int = 3, **changes: Any
) -> IntakePreview:
    draft = IntakeDraft(
        tenant_id=TENANT,
        user_id=REQUESTER,
        values={},
        time_zone=PREVIEW_ZONE,
        created_at=NOW,
        updated_at=NOW,
        previewed=True,
        version=version,
    )
    return IntakePreview(intake_form(**changes), TEAMS[0], draft, PREVIEW_ZONE, notes)


EVIL = "[click](https://evil.example) **bold** _it_ <b>x</b>\n- item\n# head"


Builder = Callable[[], Card]


def _notice_builder(notice: Notice) -> Builder:
    return lambda: notice_card(engagement(), notice)


# One rendering of every builder, in each of its shapes; built lazily, inside the tests, so a
# builder that breaks fails its own test instead of the collection.
EVERY_CARD: dict[str, Builder] = {
    "help": lambda: help_card([("/request", texts.CMD_REQUEST_HELP)]),
    "help-greeting": lambda: help_card([("/help", texts.CMD_HELP_HELP)], greeting=True),
    "intake": lambda: intake_card(TEAMS, today=TODAY),
    "intake-errors": lambda: intake_card(
        TEAMS,
        today=TODAY,
        values=USER_VALUES,
        errors={FIELD_FREELANCER_EMAIL: texts.ERR_EMAIL, FIELD_END_DATE: "x"},
    ),
    "intake-no-teams": lambda: intake_card([], today=TODAY),
    "intake-draft": lambda: intake_card(
        TEAMS,
        today=TODAY,
        values=USER_VALUES,
        justification_required=False,
        time_zone=PREVIEW_ZONE,
        notice=texts.DRAFT_RESUMED.format(when="3 Mar 2025"),
        draft=True,
    ),
    "preview": lambda: preview_card(intake_preview()),
    "preview-minimal": lambda: preview_card(
        intake_preview(
            notes=(),
            justification="",
            freelancer_org=None,
            profile_url=None,
            budget=None,
            hours=None,
        ),
        message=texts.PREVIEW_OUT_OF_DATE,
    ),
    "submitted": lambda: submitted_card(engagement()),
    "approval-approver": lambda: approval_card(
        engagement(), role=ViewerRole.APPROVER, refresh_user_ids=["29:a"], message="Hm."
    ),
    "approval-requester": lambda: approval_card(engagement(), role=ViewerRole.REQUESTER),
    "approval-other": lambda: approval_card(engagement(), role=ViewerRole.OTHER),
    "approval-approved": lambda: approval_card(
        decided(EngagementState.PROVISIONING), role=ViewerRole.OTHER
    ),
    "approval-rejected": lambda: approval_card(
        decided(EngagementState.REJECTED, decision_reason="Budget"), role=ViewerRole.APPROVER
    ),
    "approval-failed": lambda: approval_card(
        decided(EngagementState.PROVISIONING_FAILED, failure_reason="Graph said no."),
        role=ViewerRole.REQUESTER,
    ),
    "changes-requested": lambda: changes_requested_card(
        engagement(state=EngagementState.CHANGES_REQUESTED, decision_reason="Shorter, please"),
        teams=TEAMS,
        today=TODAY,
        comment="Shorter, please",
        comment_by="Alex Approver",
    ),
    "list": lambda: engagement_list_card(
        "Yours", [engagement(), engagement(id=8)], empty_text="-"
    ),
    "list-empty": lambda: engagement_list_card("Yours", [], empty_text=texts.NO_ENGAGEMENTS),
    "welcome": lambda: welcome_card(engagement()),
    "text": lambda: text_card("Hello", title="Hi"),
    "text-attention": lambda: text_card("No.", attention=True),
    "reminder": lambda: end_reminder_card(active(), today=TODAY),
    "reminder-message": lambda: end_reminder_card(
        active(), today=TODAY, message="Pick a later date.", attention=True
    ),
    "reminder-extension-waiting": lambda: end_reminder_card(
        active(extension_end_date=date(2025, 7, 1)), today=TODAY
    ),
    "reminder-let-it-end": lambda: end_reminder_card(active(let_it_end=True), today=TODAY),
    "reminder-ended": lambda: end_reminder_card(ended(), today=TODAY),
    "revoke-confirm": lambda: revoke_confirm_card(active(), reason="Contract cancelled"),
    "revoke-confirm-ended": lambda: revoke_confirm_card(ended(), reason="Done"),
    "extension-approver": lambda: extension_approval_card(
        active(extension_end_date=date(2025, 7, 1)), viewer_id=APPROVER, message="Hm."
    ),
    "extension-requester": lambda: extension_approval_card(
        active(extension_end_date=date(2025, 7, 1)), viewer_id=REQUESTER
    ),
    "extension-decided": lambda: extension_approval_card(active(), viewer_id=APPROVER),
    "nudge": lambda: invitation_nudge_card(active(), days_pending=3),
    "nudge-ended": lambda: invitation_nudge_card(ended(), days_pending=9),
    "closing-note": lambda: closing_note_card(ended()),
    "closing-note-end-date": lambda: closing_note_card(
        ended(ended_by_id=None, ended_by_name=None, end_reason=None, ended_at=None)
    ),
} | {f"notice-{notice.value}": _notice_builder(notice) for notice in Notice}


# --- every card ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EVERY_CARD))
def test_every_card_is_valid_adaptive_card_1_5_with_labelled_uniquely_ided_inputs(
    name: str,
) -> None:
    check(EVERY_CARD[name]())


def test_the_walker_rejects_what_cards_must_not_contain() -> None:
    good = text_card("ok")
    unknown = {**good, "body": [{"type": "Media", "sources": []}]}
    unlabelled = {**good, "body": [{"type": "Input.Text", "id": "x"}]}
    duplicate = {
        **good,
        "body": [
            {"type": "Input.Text", "id": "x", "label": "X"},
            {"type": "Input.Date", "id": "x", "label": "Y"},
        ],
    }
    bad_verb = {**good, "actions": [{"type": "Action.Execute", "title": "Go", "verb": "nope"}]}
    hidden_submit = {
        **good,
        "actions": [
            {
                "type": "Action.ShowCard",
                "title": "More",
                "card": {
                    "type": "AdaptiveCard",
                    "body": [],
                    "actions": [{"type": "Action.Submit", "title": "Go"}],
                },
            }
        ],
    }
    hidden_unlabelled = {
        **good,
        "actions": [
            {
                "type": "Action.ShowCard",
                "title": "More",
                "card": {"type": "AdaptiveCard", "body": [{"type": "Input.Date", "id": "d"}]},
            }
        ],
    }
    submit = {**good, "actions": [{"type": "Action.Submit", "title": "Go"}]}
    old = {**good, "version": "1.2"}
    leaky = {
        **good,
        "actions": [
            {
                "type": "Action.Execute",
                "title": "Go",
                "verb": verbs.APPROVE,
                "data": {verbs.ENGAGEMENT_ID: 1, "approved": True},
            }
        ],
    }
    for broken in (
        unknown,
        unlabelled,
        duplicate,
        bad_verb,
        submit,
        old,
        leaky,
        hidden_submit,
        hidden_unlabelled,
    ):
        with pytest.raises(AssertionError):
            check(broken)


def test_every_engagement_state_has_a_label_the_cards_can_show() -> None:
    assert set(texts.STATE_LABELS) == {state.value for state in EngagementState}


# --- intake --------------------------------------------------------------------------------


def test_intake_inputs_are_the_intake_fields_in_order_with_their_labels() -> None:
    walk = check(intake_card(TEAMS, today=TODAY))
    assert tuple(i["id"] for i in walk.inputs) == INTAKE_FIELDS
    assert walk.input(FIELD_PROJECT_TITLE)["label"] == texts.LABEL_PROJECT_TITLE
    assert walk.input(FIELD_TEAM)["label"] == texts.LABEL_TEAM
    assert walk.input(FIELD_PROJECT_TITLE)["maxLength"] == LIMITS[FIELD_PROJECT_TITLE][1]
    assert walk.input("description")["isMultiline"] is True
    assert walk.input(FIELD_FREELANCER_EMAIL)["style"].lower() == "email"
    assert walk.input(FIELD_CHANNEL_NAME)["maxLength"] == 50
    assert walk.input(FIELD_CHANNEL_NAME)["value"] == ""


def test_intake_defaults_start_today_and_end_ninety_days_later() -> None:
    walk = check(intake_card(TEAMS, today=TODAY))
    start, end = walk.input(FIELD_START_DATE), walk.input(FIELD_END_DATE)
    assert start["type"] == end["type"] == "Input.Date"
    assert start["value"] == start["min"] == "2025-03-03"
    assert end["value"] == (TODAY + timedelta(days=90)).isoformat()


def test_intake_offers_the_installed_teams_and_submits_with_the_intake_verb() -> None:
    walk = check(intake_card(TEAMS, today=TODAY))
    choice = walk.input(FIELD_TEAM)
    assert choice["type"] == "Input.ChoiceSet"
    assert choice["style"] == "compact"
    assert choice["choices"] == [
        {"title": "Marketing", "value": "group-marketing"},
        {"title": "Engineering", "value": "group-engineering"},
    ]
    assert "value" not in choice  # two teams, none chosen: the user picks
    submit = walk.actions[0]
    assert submit["verb"] == verbs.INTAKE_SUBMIT
    assert submit["title"] == texts.INTAKE_SUBMIT
    assert submit["associatedInputs"] == "auto"


def test_intake_does_no_client_side_validation_that_would_hide_values_from_the_server() -> None:
    walk = check(intake_card(TEAMS, today=TODAY, values=USER_VALUES))
    assert not [i for i in walk.inputs if i.get("isRequired") or i.get("regex")]


def test_intake_preselects_the_selected_team() -> None:
    walk = check(intake_card(TEAMS, today=TODAY, selected_team_id="group-engineering"))
    assert walk.input(FIELD_TEAM)["value"] == "group-engineering"


def test_intake_prefers_the_users_own_team_choice_and_ignores_unknown_ids() -> None:
    chosen = check(
        intake_card(
            TEAMS,
            today=TODAY,
            values={FIELD_TEAM: "group-marketing"},
            selected_team_id="group-engineering",
        )
    )
    assert chosen.input(FIELD_TEAM)["value"] == "group-marketing"
    unknown = check(intake_card(TEAMS, today=TODAY, selected_team_id="group-gone"))
    assert "value" not in unknown.input(FIELD_TEAM)


def test_intake_preselects_the_only_team() -> None:
    walk = check(intake_card(TEAMS[:1], today=TODAY))
    assert walk.input(FIELD_TEAM)["value"] == "group-marketing"


def test_intake_keeps_every_value_the_user_typed() -> None:
    walk = check(intake_card(TEAMS, today=TODAY, values=USER_VALUES, errors={"x": "y"}))
    for field, value in USER_VALUES.items():
        assert walk.input(field)["value"] == value, field


def test_intake_shows_a_summary_and_one_message_under_each_wrong_field() -> None:
    errors = {FIELD_FREELANCER_EMAIL: texts.ERR_EMAIL, FIELD_END_DATE: texts.ERR_END_BEFORE_START}
    card = intake_card(TEAMS, today=TODAY, values=USER_VALUES, errors=errors)
    walk = check(card)

    summary = walk.text_blocks[1]  # right under the title, above the form
    assert unescape(summary["text"]) == texts.INTAKE_FIX_ERRORS
    assert summary["color"] == "attention"

    body = card["body"]
    for field, message in errors.items():
        position = next(n for n, e in enumerate(body) if e.get("id") == field)
        under = body[position + 1]
        assert under["type"] == "TextBlock"
        assert under["id"] == error_block_id(field)
        assert unescape(under["text"]) == message
        assert (under["color"], under["size"], under["wrap"]) == ("attention", "small", True)
        assert walk.input(field)["errorMessage"] == message

    messages = [b for b in walk.text_blocks if b.get("color") == "attention"]
    assert len(messages) == 1 + len(errors)
    assert not [i for i in walk.inputs if i["id"] not in errors and "errorMessage" in i]


def test_intake_error_messages_with_markdown_characters_are_shown_literally() -> None:
    message = texts.ERR_CHANNEL_CHARS.format(chars="# * _")
    walk = check(intake_card(TEAMS, today=TODAY, errors={FIELD_CHANNEL_NAME: message}))
    shown = walk.block(error_block_id(FIELD_CHANNEL_NAME))["text"]
    assert unescape(shown) == message
    assert not has_live_markdown(shown)


def test_intake_without_errors_shows_no_error_text() -> None:
    walk = check(intake_card(TEAMS, today=TODAY, values=USER_VALUES))
    assert not [b for b in walk.text_blocks if b.get("color") == "attention"]
    assert texts.INTAKE_FIX_ERRORS not in walk.shown_text


def test_intake_suggests_a_channel_name_from_the_project_title() -> None:
    walk = check(intake_card(TEAMS, today=TODAY, values={FIELD_PROJECT_TITLE: "Web: v2/beta"}))
    placeholder = walk.input(FIELD_CHANNEL_NAME)["placeholder"]
    assert placeholder == texts.PLACEHOLDER_CHANNEL_SUGGESTION.format(suggestion="Web v2 beta")
    assert walk.input(FIELD_CHANNEL_NAME)["value"] == ""


def test_intake_without_teams_says_so_and_shows_no_form() -> None:
    walk = check(intake_card([], today=TODAY, values=USER_VALUES))
    assert not walk.inputs and not walk.actions
    assert texts.NO_TEAMS in walk.shown_text


# --- approval (the per-role views in every state: tests/cards/test_approval_cards.py) ---------


def test_approver_sees_the_decisions_carrying_only_the_engagement_id() -> None:
    walk = check(approval_card(engagement(), role=ViewerRole.APPROVER))
    approve, reject, changes, delegate = walk.actions
    assert (approve["verb"], approve["title"], approve["style"]) == (
        verbs.APPROVE,
        texts.APPROVE,
        "positive",
    )
    assert (reject["verb"], reject["title"], reject["style"]) == (
        verbs.REJECT,
        texts.REJECT,
        "destructive",
    )
    assert (changes["verb"], changes["title"]) == (verbs.REQUEST_CHANGES, texts.REQUEST_CHANGES)
    assert (delegate["verb"], delegate["title"]) == (verbs.DELEGATE, texts.DELEGATE)
    for action in walk.actions:
        assert action["data"] == {verbs.ENGAGEMENT_ID: 7}
        assert action["associatedInputs"] == "auto"

    reason, delegate_to = walk.inputs
    assert reason["id"] == verbs.REJECT_REASON
    assert reason["label"] == texts.DECISION_COMMENT_LABEL
    assert reason["isMultiline"] is True
    assert reason["maxLength"] == 500
    assert delegate_to["id"] == verbs.DELEGATE_TO
    assert delegate_to["label"] == texts.DELEGATE_TO_LABEL
    assert delegate_to["style"].lower() == "email"
    assert delegate_to["maxLength"] == 320


@pytest.mark.parametrize("role", [ViewerRole.REQUESTER, ViewerRole.OTHER])
def test_anyone_but_the_approver_sees_no_decision(role: ViewerRole) -> None:
    walk = check(approval_card(engagement(), role=role))
    assert not walk.inputs
    assert {a["verb"] for a in walk.actions} <= {verbs.CANCEL_REQUEST}
    assert texts.APPROVAL_WAITING.format(approver="Alex Approver") in walk.shown_text


def test_approval_card_without_an_approver_says_who_decides_in_general() -> None:
    subject = engagement(approver_id=None, approver_name=None)
    walk = check(approval_card(subject, role=ViewerRole.OTHER))
    assert not walk.actions and not walk.inputs
    assert texts.APPROVAL_WAITING.format(approver=texts.UNKNOWN_APPROVER) in walk.shown_text


@pytest.mark.parametrize(
    "state",
    [
        EngagementState.PROVISIONING,
        EngagementState.ACTIVE,
        EngagementState.PROVISIONING_FAILED,
        EngagementState.REJECTED,
    ],
)
def test_approver_gets_no_buttons_once_decided(state: EngagementState) -> None:
    subject = decided(state, decision_reason="No budget")
    walk = check(approval_card(subject, role=ViewerRole.APPROVER))
    assert not walk.actions and not walk.inputs
    assert texts.STATE_LABELS[state.value] in walk.shown_text


@pytest.mark.parametrize("role", list(ViewerRole))
def test_approved_card_shows_who_approved_and_when(role: ViewerRole) -> None:
    walk = check(approval_card(decided(EngagementState.ACTIVE), role=role))
    line = unescape(walk.block("decision")["text"])
    assert line == texts.DECIDED_APPROVED.format(name="Alex Approver", when="4 Mar 2025")


@pytest.mark.parametrize("role", list(ViewerRole))
def test_rejected_card_shows_who_rejected_when_and_why(role: ViewerRole) -> None:
    card = approval_card(
        decided(EngagementState.REJECTED, decision_reason="Use the agency"), role=role
    )
    line = unescape(check(card).block("decision")["text"])
    assert line == texts.DECIDED_REJECTED.format(
        name="Alex Approver", when="4 Mar 2025", reason="Use the agency"
    )


def test_approval_card_shows_the_engagement_summary() -> None:
    shown = check(approval_card(engagement(), role=ViewerRole.APPROVER)).shown_text
    for expected in (
        "FC-7",
        "Website redesign",
        "Redesign the public website.",
        "Rita Requester",
        "Jane Doe (jane@contoso.com)",
        "10 Mar 2025 to 8 Jun 2025",
        "Marketing",
        texts.STATE_LABELS["pending_approval"],
    ):
        assert expected in shown, expected


@pytest.mark.parametrize("role", list(ViewerRole))
def test_message_is_shown_first_as_a_warning(role: ViewerRole) -> None:
    message = texts.ALREADY_DECIDED.format(state="approved", name="Alex Approver")
    card = approval_card(decided(EngagementState.PROVISIONING), role=role, message=message)
    first = card["body"][0]
    assert unescape(first["text"]) == message
    assert first["color"] == "warning"


@pytest.mark.parametrize("role", list(ViewerRole))
def test_no_refresh_without_user_ids(role: ViewerRole) -> None:
    assert "refresh" not in approval_card(engagement(), role=role)
    assert "refresh" not in approval_card(engagement(), role=role, refresh_user_ids=["", ""])


@pytest.mark.parametrize("role", list(ViewerRole))
def test_refresh_re_renders_by_engagement_id_for_at_most_60_users(role: ViewerRole) -> None:
    users = [f"29:user-{n}" for n in range(75)]
    card = approval_card(engagement(), role=role, refresh_user_ids=users)
    check(card)
    refresh = card["refresh"]
    assert refresh["userIds"] == users[:MAX_REFRESH_USERS] and MAX_REFRESH_USERS == 60
    assert refresh["action"] == {
        "type": "Action.Execute",
        "verb": verbs.REFRESH,
        "data": {verbs.ENGAGEMENT_ID: 7},
    }


def test_refresh_lists_each_user_once() -> None:
    card = approval_card(
        engagement(), role=ViewerRole.OTHER, refresh_user_ids=["29:a", "29:b", "29:a"]
    )
    assert card["refresh"]["userIds"] == ["29:a", "29:b"]


# --- notices -------------------------------------------------------------------------------


@pytest.mark.parametrize("notice", list(Notice))
def test_every_notice_renders_a_complete_text(notice: Notice) -> None:
    subject = decided(
        EngagementState.REJECTED, decision_reason="Too expensive", failure_reason="Graph down."
    )
    text = notice_text(subject, notice)
    assert text.strip()
    assert "FC-7" in text
    assert "{" not in text and "}" not in text  # every placeholder filled
    walk = check(notice_card(subject, notice))
    assert text in walk.shown_text


def test_a_notice_without_a_text_fails_loudly() -> None:
    # A member added to Notice without a case in notice_text reaches assert_never (mypy flags
    # it too), so the parametrized test above fails for it instead of sending an empty card.
    with pytest.raises(AssertionError):
        notice_text(engagement(), cast(Notice, "brand_new_notice"))


def test_notices_have_different_texts() -> None:
    rendered = {notice_text(engagement(), notice) for notice in Notice}
    assert len(rendered) == len(Notice)


def test_rejected_notice_gives_the_decision_reason_and_who_rejected() -> None:
    subject = decided(EngagementState.REJECTED, decision_reason="Use the agency")
    assert notice_text(subject, Notice.REJECTED) == texts.NOTICE_REJECTED.format(
        ref="FC-7", name="Alex Approver", reason="Use the agency"
    )


def test_failure_notices_give_the_failure_reason() -> None:
    subject = engagement(failure_reason="the team is archived.")
    assert "the team is archived." in notice_text(subject, Notice.PROVISIONING_FAILED)
    assert "the team is archived." in notice_text(subject, Notice.ROUTING_FAILED)


def test_provisioned_notice_says_when_the_guest_account_was_reused() -> None:
    fresh = notice_text(engagement(), Notice.PROVISIONED)
    reused = notice_text(engagement(guest_reused=True), Notice.PROVISIONED)
    assert fresh == texts.NOTICE_PROVISIONED.format(
        ref="FC-7", channel="Website redesign", team="Marketing", freelancer="Jane Doe"
    )
    assert reused == texts.NOTICE_PROVISIONED_REUSED.format(
        ref="FC-7", channel="Website redesign", team="Marketing", freelancer="Jane Doe"
    )


def test_sent_for_approval_names_the_approver() -> None:
    assert notice_text(engagement(), Notice.SENT_FOR_APPROVAL) == (
        texts.NOTICE_SENT_FOR_APPROVAL.format(ref="FC-7", approver="Alex Approver")
    )


@pytest.mark.parametrize(
    ("notice", "expected"),
    [
        (
            Notice.CANCELLED,
            texts.NOTICE_CANCELLED.format(requester="Rita Requester", ref="FC-7"),
        ),
        (Notice.EXPIRED, texts.NOTICE_EXPIRED.format(ref="FC-7")),
        (
            Notice.APPROVAL_REMINDER,
            texts.NOTICE_APPROVAL_REMINDER.format(ref="FC-7", requester="Rita Requester"),
        ),
        (Notice.ESCALATED, texts.NOTICE_ESCALATED.format(ref="FC-7", detail="Megan Manager")),
        (Notice.DELEGATED, texts.NOTICE_DELEGATED.format(ref="FC-7", detail="Megan Manager")),
        (Notice.STAGE_APPROVED, texts.NOTICE_STAGE_APPROVED.format(ref="FC-7")),
    ],
)
def test_approval_notices_say_what_happened(notice: Notice, expected: str) -> None:
    assert notice_text(engagement(), notice, " Megan Manager ") == expected
    walk = check(notice_card(engagement(), notice, "Megan Manager"))
    assert expected in walk.shown_text


@pytest.mark.parametrize("notice", [Notice.ESCALATED, Notice.DELEGATED])
def test_a_handover_notice_without_a_name_names_the_current_approver(notice: Notice) -> None:
    subject = engagement(approver_name="Megan Manager")
    assert "Megan Manager" in notice_text(subject, notice)
    assert "Megan Manager" in notice_text(subject, notice, "  ")
    unknown = notice_text(engagement(approver_name=None), notice)
    assert texts.UNKNOWN_APPROVER in unknown


def test_approval_notices_are_coloured_by_what_they_mean() -> None:
    def colour(notice: Notice) -> str | None:
        return cast(str | None, notice_card(engagement(), notice)["body"][1].get("color"))

    assert colour(Notice.STAGE_APPROVED) == "good"
    assert colour(Notice.EXPIRED) == "warning"
    assert colour(Notice.APPROVAL_REMINDER) == "warning"
    assert colour(Notice.CANCELLED) is None


# --- other cards ---------------------------------------------------------------------------


def test_submitted_card_summarises_the_request() -> None:
    walk = check(submitted_card(engagement()))
    facts = {unescape(t): unescape(v) for t, v in walk.facts}
    assert unescape(walk.text_blocks[0]["text"]) == texts.SUBMITTED_TITLE.format(ref="FC-7")
    assert texts.SUBMITTED_BODY in walk.shown_text
    assert facts[texts.FACT_REQUESTER] == "Rita Requester"
    assert facts[texts.FACT_FREELANCER] == "Jane Doe (jane@contoso.com)"
    assert facts[texts.FACT_DATES] == "10 Mar 2025 to 8 Jun 2025"
    assert facts[texts.FACT_TEAM] == "Marketing"
    assert facts[texts.FACT_CHANNEL] == "Website redesign"
    assert facts[texts.FACT_STATE] == texts.STATE_LABELS["pending_approval"]


def test_list_card_has_one_row_per_engagement_with_its_essentials() -> None:
    items = [
        engagement(),
        engagement(
            id=8,
            project_title="Data lake",
            freelancer_name="Bo Li",
            state=EngagementState.ACTIVE,
            end_date=date(2025, 12, 31),
        ),
    ]
    card = engagement_list_card(texts.STATUS_TITLE, items, empty_text=texts.NO_ENGAGEMENTS)
    check(card)
    rows = [e for e in card["body"] if e["type"] == "ColumnSet"]
    assert len(rows) == 2
    second = Walk({**card, "body": [rows[1]]}).shown_text
    for expected in ("FC-8", "Data lake", "Bo Li", texts.STATE_LABELS["active"], "31 Dec 2025"):
        assert expected in second
    assert texts.NO_ENGAGEMENTS not in check(card).shown_text


def test_empty_list_card_says_so() -> None:
    walk = check(engagement_list_card(texts.PENDING_TITLE, [], empty_text=texts.NO_PENDING))
    assert texts.PENDING_TITLE in walk.shown_text and texts.NO_PENDING in walk.shown_text


def test_welcome_card_greets_the_freelancer_with_project_dates_and_contact() -> None:
    shown = check(welcome_card(engagement())).shown_text
    assert texts.WELCOME_CHANNEL_TITLE.format(freelancer="Jane Doe") in shown
    assert (
        texts.WELCOME_CHANNEL_BODY.format(
            project="Website redesign",
            start="10 Mar 2025",
            end="8 Jun 2025",
            requester="Rita Requester",
        )
        in shown
    )


def test_help_card_lists_the_commands_and_greets_only_when_asked() -> None:
    commands = [("/request", texts.CMD_REQUEST_HELP), ("/status", texts.CMD_STATUS_HELP)]
    plain_help = check(help_card(commands))
    assert [(unescape(t), unescape(v)) for t, v in plain_help.facts] == commands
    assert texts.WELCOME_TITLE not in plain_help.shown_text
    greeting = check(help_card(commands, greeting=True)).shown_text
    assert texts.WELCOME_TITLE in greeting and texts.WELCOME_BODY in greeting


def test_text_card_shows_title_and_text_and_marks_refusals() -> None:
    walk = check(text_card("Nothing was changed.", title="Sorry", attention=True))
    title, text = walk.text_blocks
    assert unescape(title["text"]) == "Sorry"
    assert (unescape(text["text"]), text["color"]) == ("Nothing was changed.", "attention")
    assert "color" not in check(text_card("Fine.")).text_blocks[0]


# --- user content can't inject markdown ----------------------------------------------------


def _evil_engagement(
    state: EngagementState = EngagementState.PENDING_APPROVAL, **changes: Any
) -> Engagement:
    return decided(
        state,
        **changes,
        project_title=EVIL,
        description=EVIL,
        freelancer_name=EVIL,
        requester_name=EVIL,
        approver_name=EVIL,
        decided_by_name=EVIL,
        decision_reason=EVIL,
        failure_reason=EVIL,
        team_name=EVIL,
        channel_name=EVIL,
        end_reason=EVIL,
        ended_by_name=EVIL,
        sponsor_id=REQUESTER,
    )


def _evil_pending() -> Engagement:
    return replace(_evil_engagement(), decided_by_name=None, decided_at=None)


def _evil_approval(state: EngagementState, role: ViewerRole) -> Builder:
    return lambda: approval_card(_evil_engagement(state, approval_stage=2, stages=2), role=role)


def _evil_notice(notice: Notice, detail: str | None = None) -> Builder:
    return lambda: notice_card(_evil_engagement(), notice, detail)


def _evil_closing_note(state: EngagementState) -> Builder:
    return lambda: closing_note_card(_evil_engagement(state))


EVIL_CARDS: dict[str, Builder] = (
    {
        "approval-live": lambda: approval_card(
            _evil_pending(), role=ViewerRole.APPROVER, message=EVIL
        ),
        "approval-waiting": lambda: approval_card(_evil_pending(), role=ViewerRole.REQUESTER),
        "changes-requested": lambda: changes_requested_card(
            _evil_engagement(EngagementState.CHANGES_REQUESTED),
            teams=[team(EVIL, "g1")],
            today=TODAY,
            comment=EVIL,
            comment_by=EVIL,
            errors={"x": EVIL},
        ),
        "submitted": lambda: submitted_card(_evil_pending()),
        "list": lambda: engagement_list_card(EVIL, [_evil_pending()], empty_text=EVIL),
        "list-empty": lambda: engagement_list_card(EVIL, [], empty_text=EVIL),
        "welcome": lambda: welcome_card(_evil_pending()),
        "text": lambda: text_card(EVIL, title=EVIL),
        "help": lambda: help_card([(EVIL, EVIL)]),
        "intake": lambda: intake_card(
            [team(EVIL, "g1")], today=TODAY, values={FIELD_PROJECT_TITLE: EVIL}, errors={"x": EVIL}
        ),
    }
    | {
        f"approval-{state.value}-{role.value}": _evil_approval(state, role)
        for state in EngagementState
        for role in ViewerRole
    }
    | {f"notice-{notice.value}": _evil_notice(notice) for notice in Notice}
    | {
        f"notice-{notice.value}-detail": _evil_notice(notice, detail=EVIL)
        for notice in (
            Notice.EXTENSION_REJECTED,
            Notice.EXTENDED_BY_ADMIN,
            Notice.ESCALATED,
            Notice.DELEGATED,
        )
    }
    | {
        "reminder-live": lambda: end_reminder_card(
            _evil_engagement(EngagementState.ACTIVE), today=TODAY, message=EVIL
        ),
        "reminder-waiting": lambda: end_reminder_card(
            _evil_engagement(EngagementState.ACTIVE, extension_end_date=date(2025, 7, 1)),
            today=TODAY,
        ),
        "revoke-confirm": lambda: revoke_confirm_card(
            _evil_engagement(EngagementState.ACTIVE), reason=EVIL
        ),
        "extension-live": lambda: extension_approval_card(
            _evil_engagement(EngagementState.ACTIVE, extension_end_date=date(2025, 7, 1)),
            viewer_id=APPROVER,
            message=EVIL,
        ),
        "nudge": lambda: invitation_nudge_card(
            _evil_engagement(EngagementState.ACTIVE), days_pending=4
        ),
    }
    | {
        f"closing-note-{state.value}": _evil_closing_note(state)
        for state in (EngagementState.OFFBOARDING, EngagementState.ENDED)
    }
)


@pytest.mark.parametrize("name", sorted(EVIL_CARDS))
def test_user_content_cannot_inject_markdown(name: str) -> None:
    walk = check(EVIL_CARDS[name]())
    for shown in walk.shown:
        assert not has_live_markdown(shown), shown
    assert "[click](https" not in json.dumps([walk.shown])


def test_user_content_is_shown_literally() -> None:
    shown = check(approval_card(_evil_engagement(), role=ViewerRole.APPROVER)).shown_text
    assert EVIL in shown  # after the renderer removes the escapes, the user sees what they typed


def test_input_values_are_kept_raw_not_escaped() -> None:
    walk = check(intake_card(TEAMS, today=TODAY, values={FIELD_PROJECT_TITLE: EVIL}))
    assert walk.input(FIELD_PROJECT_TITLE)["value"] == EVIL


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("[click](https://evil)", r"\[click\](https://evil)"),
        ("**bold** _it_ ~~s~~ `c`", r"\*\*bold\*\* \_it\_ \~\~s\~\~ \`c\`"),
        ("<b>x</b>", r"\<b>x\</b>"),
        ("- a\n+ b\n1. c\n 2) d", "\\- a\n\\+ b\n1\\. c\n 2\\) d"),
        ("# e\n> f\n===", "\\# e\n\\> f\n\\==="),
        ("a\\b", "a\\\\b"),
        ("{{DATE(2025-01-01T00:00:00Z)}}", "{\u200b{DATE(2025-01-01T00:00:00Z)}}"),
        ("FC-12 on 3 Mar 2025. Set-up failed #2", "FC-12 on 3 Mar 2025. Set-up failed #2"),
    ],
)
def test_plain_escapes_markdown_and_leaves_ordinary_text_alone(raw: str, escaped: str) -> None:
    assert plain(raw) == escaped
    assert unescape(plain(raw)) == raw


def test_builders_used_in_these_tests_cover_every_public_builder() -> None:
    import cards.common
    import cards.engagement
    import cards.help
    import cards.intake
    import cards.lifecycle
    import cards.welcome

    builders: set[str] = set()
    modules = (
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
    covered: set[Callable[..., Any]] = {
        help_card,
        intake_card,
        changes_requested_card,
        preview_card,
        submitted_card,
        approval_card,
        engagement_list_card,
        notice_card,
        welcome_card,
        text_card,
        end_reminder_card,
        revoke_confirm_card,
        extension_approval_card,
        invitation_nudge_card,
        closing_note_card,
    }
    assert builders - {"adaptive_card"} == {f.__name__ for f in covered}
