"""The complete intake form (justification, organisation, profile link, data classification,
budget, hours; the draft's notice and buttons; the time zone of the dates), the preview with
Confirm and Edit, and the new facts on the approver's and the requester's cards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from cards import verbs
from cards.common import format_budget
from cards.engagement import approval_card, submitted_card
from cards.intake import (
    DATE_ECHO_MAX,
    DATES_ZONE_ID,
    MESSAGE_ID,
    NOTICE_ID,
    error_block_id,
    intake_card,
    max_length,
    preview_card,
)
from core import texts
from core.intake import (
    FIELD_BUDGET,
    FIELD_CHANNEL_NAME,
    FIELD_CLASSIFICATION,
    FIELD_DESCRIPTION,
    FIELD_END_DATE,
    FIELD_FREELANCER_EMAIL,
    FIELD_FREELANCER_NAME,
    FIELD_FREELANCER_ORG,
    FIELD_HOURS,
    FIELD_JUSTIFICATION,
    FIELD_PROFILE_URL,
    FIELD_PROJECT_TITLE,
    FIELD_START_DATE,
    FIELD_TEAM,
    FORM_PROBLEM,
    INTAKE_FIELDS,
    LIMITS,
)
from core.model import DataClassification, ViewerRole
from tests.unit.test_cards import (
    PREVIEW_NOTE,
    TEAMS,
    TODAY,
    USER_VALUES,
    Walk,
    check,
    engagement,
    intake_preview,
    team,
    unescape,
)

Card = dict[str, Any]
Builder = Callable[[], Card]

NEW_TEXT_FIELDS = (
    FIELD_JUSTIFICATION,
    FIELD_FREELANCER_ORG,
    FIELD_PROFILE_URL,
    FIELD_BUDGET,
    FIELD_HOURS,
)
NEW_FIELDS = (*NEW_TEXT_FIELDS, FIELD_CLASSIFICATION)
# The fields typed into an Input.Text (the others are pickers).
TEXT_FIELDS = tuple(
    f
    for f in INTAKE_FIELDS
    if f not in (FIELD_START_DATE, FIELD_END_DATE, FIELD_TEAM, FIELD_CLASSIFICATION)
)
# What the approver needs besides the summary, as a complete engagement carries it.
TERMS = {
    "justification": "The agency is booked until June.\nWe launch in May.",
    "freelancer_org": "Upwork",
    "profile_url": "https://www.upwork.com/freelancers/jane",
    "data_classification": DataClassification.CONFIDENTIAL,
    "budget": Decimal("12500"),
    "hours": 1200,
}


def form(**kwargs: Any) -> Walk:
    return check(intake_card(TEAMS, today=TODAY, **kwargs))


def facts(walk: Walk) -> dict[str, str]:
    return {unescape(title): unescape(value) for title, value in walk.facts}


def after(card: Card, element_id: str) -> Card:
    """The element right under the one with `element_id` in the card's body."""
    body = card["body"]
    position = next(n for n, e in enumerate(body) if e.get("id") == element_id)
    element: Card = body[position + 1]
    return element


# --- the form's new fields ---------------------------------------------------------------------


def test_the_justification_is_a_multiline_text_whose_label_follows_the_policy() -> None:
    required = form().input(FIELD_JUSTIFICATION)
    assert required["type"] == "Input.Text"
    assert required["label"] == texts.LABEL_JUSTIFICATION
    assert required["isMultiline"] is True
    assert required["maxLength"] == LIMITS[FIELD_JUSTIFICATION][1] == 2000
    assert required["placeholder"] == texts.PLACEHOLDER_JUSTIFICATION
    assert required["value"] == ""
    optional = form(justification_required=False).input(FIELD_JUSTIFICATION)
    assert optional["label"] == texts.LABEL_JUSTIFICATION_OPTIONAL
    # The server checks the policy: no client-side requirement hides the value from it.
    assert "isRequired" not in required and "isRequired" not in optional


@pytest.mark.parametrize(
    ("field", "label", "placeholder", "style"),
    [
        (FIELD_FREELANCER_ORG, texts.LABEL_FREELANCER_ORG, texts.PLACEHOLDER_FREELANCER_ORG, None),
        (FIELD_PROFILE_URL, texts.LABEL_PROFILE_URL, texts.PLACEHOLDER_PROFILE_URL, "Url"),
        (FIELD_BUDGET, texts.LABEL_BUDGET, texts.PLACEHOLDER_BUDGET, None),
        (FIELD_HOURS, texts.LABEL_HOURS, texts.PLACEHOLDER_HOURS, None),
    ],
)
def test_the_optional_fields_are_one_line_texts_as_long_as_intake_accepts(
    field: str, label: str, placeholder: str, style: str | None
) -> None:
    element = form().input(field)
    assert element["type"] == "Input.Text"
    assert (element["label"], element["placeholder"]) == (label, placeholder)
    assert element["maxLength"] == LIMITS[field][1]
    assert element.get("style") == style
    assert "isMultiline" not in element


def test_data_classification_offers_the_three_levels_in_order_and_defaults_to_internal() -> None:
    choice = form().input(FIELD_CLASSIFICATION)
    assert choice["type"] == "Input.ChoiceSet"
    assert (choice["style"], choice["isMultiSelect"]) == ("compact", False)
    assert choice["label"] == texts.LABEL_CLASSIFICATION
    assert choice["choices"] == [
        {"title": texts.CLASSIFICATION_LABELS[level], "value": level}
        for level in ("public", "internal", "confidential")
    ]
    assert choice["value"] == "internal"


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("confidential", "confidential"),
        ("public", "public"),
        ("secret", "internal"),
        ("", "internal"),
    ],
)
def test_data_classification_keeps_a_valid_choice_and_defaults_anything_else(
    typed: str, shown: str
) -> None:
    assert form(values={FIELD_CLASSIFICATION: typed}).input(FIELD_CLASSIFICATION)["value"] == shown


def test_the_new_fields_come_in_the_intake_order() -> None:
    ids = [i["id"] for i in form().inputs]
    assert tuple(ids) == INTAKE_FIELDS
    assert ids.index(FIELD_JUSTIFICATION) == ids.index(FIELD_DESCRIPTION) + 1
    assert ids.index(FIELD_FREELANCER_ORG) == ids.index(FIELD_FREELANCER_EMAIL) + 1


def test_every_new_field_keeps_what_the_user_typed() -> None:
    walk = form(values=USER_VALUES)
    for field in NEW_FIELDS:
        assert walk.input(field)["value"] == USER_VALUES[field], field


@pytest.mark.parametrize("field", NEW_FIELDS)
def test_an_error_is_shown_under_each_new_field(field: str) -> None:
    message = f"{field} is wrong: *check* it"
    card = intake_card(TEAMS, today=TODAY, values=USER_VALUES, errors={field: message})
    walk = check(card)
    under = after(card, field)
    assert under["id"] == error_block_id(field)
    assert unescape(under["text"]) == message
    assert (under["color"], under["size"]) == ("attention", "small")
    assert walk.input(field)["errorMessage"] == message
    assert [i["id"] for i in walk.inputs if "errorMessage" in i] == [field]


def test_a_problem_of_the_whole_form_is_shown_at_the_top_not_under_a_field() -> None:
    card = intake_card(TEAMS, today=TODAY, errors={FORM_PROBLEM: texts.PREFLIGHT_UNAVAILABLE})
    walk = check(card)
    top = [unescape(b["text"]) for b in walk.text_blocks[:3]]
    assert top[1:] == [texts.INTAKE_FIX_ERRORS, texts.PREFLIGHT_UNAVAILABLE]
    assert not [i for i in walk.inputs if "errorMessage" in i]


def test_every_echoed_value_is_cut_to_what_its_field_accepts() -> None:
    huge = "x" * 10_000
    walk = form(values=dict.fromkeys(INTAKE_FIELDS, huge))
    for field in TEXT_FIELDS:
        value = walk.input(field)["value"]
        assert value == "x" * max_length(field), field
    assert max_length(FIELD_CHANNEL_NAME) == 50
    assert walk.input(FIELD_START_DATE)["value"] == "x" * DATE_ECHO_MAX
    # Lists keep only values they offer.
    assert "value" not in walk.input(FIELD_TEAM)
    assert walk.input(FIELD_CLASSIFICATION)["value"] == "internal"


@pytest.mark.parametrize("typed", ["2025-02-30", "12/01/2026", "12 January 2026"])
def test_a_date_the_server_refused_is_given_back_as_typed(typed: str) -> None:
    walk = form(values={FIELD_END_DATE: typed}, errors={FIELD_END_DATE: texts.ERR_DATE})
    assert walk.input(FIELD_END_DATE)["value"] == typed


def test_team_names_in_the_list_are_made_safe_and_bounded() -> None:
    teams = [team("Mar\u202eketing\x00" + "x" * 1000, "g1"), team("", "g2")]
    choices = check(intake_card(teams, today=TODAY)).input(FIELD_TEAM)["choices"]
    assert choices[0]["title"].startswith("Marketingxxx") and len(choices[0]["title"]) <= 256
    assert choices[1] == {"title": texts.UNNAMED_TEAM, "value": "g2"}


def test_the_time_zone_of_the_dates_is_said_under_them_when_known() -> None:
    card = intake_card(TEAMS, today=TODAY, time_zone="Europe/Berlin")
    check(card)
    zone = after(card, FIELD_END_DATE)
    assert zone["id"] == DATES_ZONE_ID
    assert unescape(zone["text"]) == texts.INTAKE_DATES_ZONE.format(zone="Europe/Berlin")
    assert zone["isSubtle"] is True and zone.get("color") is None
    assert DATES_ZONE_ID not in form().ids


def test_the_time_zone_comes_after_the_end_dates_error() -> None:
    card = intake_card(
        TEAMS, today=TODAY, time_zone="Asia/Tokyo", errors={FIELD_END_DATE: texts.ERR_DATE}
    )
    assert after(card, FIELD_END_DATE)["id"] == error_block_id(FIELD_END_DATE)
    assert after(card, error_block_id(FIELD_END_DATE))["id"] == DATES_ZONE_ID


def test_a_notice_about_the_draft_is_shown_above_the_form() -> None:
    notice = texts.DRAFT_RESUMED.format(when="3 Mar 2025")
    card = intake_card(TEAMS, today=TODAY, notice=notice, draft=True)
    walk = check(card)
    block = walk.block(NOTICE_ID)
    assert unescape(block["text"]) == notice
    assert block.get("color") != "attention"
    first_input = next(n for n, e in enumerate(card["body"]) if e["type"].startswith("Input."))
    assert card["body"].index(block) < first_input
    assert NOTICE_ID not in form().ids


def test_submit_and_save_for_later_send_the_inputs_and_nothing_else() -> None:
    submit, save = form().actions
    assert (submit["verb"], submit["title"], submit["style"]) == (
        verbs.INTAKE_SUBMIT,
        texts.INTAKE_SUBMIT,
        "positive",
    )
    assert (save["verb"], save["title"]) == (verbs.INTAKE_SAVE_DRAFT, texts.INTAKE_SAVE_DRAFT)
    for action in (submit, save):
        assert action["associatedInputs"] == "auto"
        assert "data" not in action


def test_only_a_form_with_a_draft_offers_to_discard_it_without_sending_the_inputs() -> None:
    assert verbs.INTAKE_DISCARD not in [a["verb"] for a in form().actions]
    *_, discard = form(draft=True).actions
    assert (discard["verb"], discard["title"]) == (verbs.INTAKE_DISCARD, texts.INTAKE_DISCARD)
    assert discard["associatedInputs"] == "none"
    assert "data" not in discard


def test_the_intake_verbs_are_declared() -> None:
    new = {
        verbs.INTAKE_CONFIRM: "intake.confirm",
        verbs.INTAKE_EDIT: "intake.edit",
        verbs.INTAKE_SAVE_DRAFT: "intake.save",
        verbs.INTAKE_DISCARD: "intake.discard",
    }
    for verb, name in new.items():
        assert verb == name and verb in verbs.ALL_VERBS
    assert verbs.DRAFT_VERSION == "draft_version"


# --- the preview -------------------------------------------------------------------------------


def test_the_preview_shows_every_fact_of_the_request() -> None:
    walk = check(preview_card(intake_preview()))
    assert unescape(walk.text_blocks[0]["text"]) == texts.PREVIEW_TITLE
    assert unescape(walk.text_blocks[1]["text"]) == texts.PREVIEW_INTRO
    assert facts(walk) == {
        texts.FACT_PROJECT: "Website redesign",
        texts.FACT_FREELANCER: "Jane Doe (jane@contoso.com)",
        texts.FACT_FREELANCER_ORG: "Upwork",
        texts.FACT_PROFILE_URL: "https://www.upwork.com/freelancers/jane",
        texts.FACT_DATES: "10 Mar 2025 to 8 Jun 2025",
        texts.FACT_ACCESS_ENDS: "9 Jun 2025 00:00 (Europe/Berlin), 8 Jun 2025 22:00 UTC",
        texts.FACT_CLASSIFICATION: texts.CLASSIFICATION_LABELS["confidential"],
        texts.FACT_BUDGET: "12,500.50",
        texts.FACT_HOURS: "120",
        texts.FACT_TEAM: "Marketing",
        texts.FACT_CHANNEL: "Ext - Website redesign",
    }
    shown = walk.shown_text
    for heading, text in (
        (texts.FACT_DESCRIPTION, "Redesign the public website."),
        (texts.FACT_JUSTIFICATION, "The agency is booked until June."),
    ):
        assert f"{heading}\n{text}" in shown


def test_the_preview_leaves_out_what_was_not_given() -> None:
    walk = check(
        preview_card(
            intake_preview(
                justification="", freelancer_org=None, profile_url=None, budget=None, hours=None
            )
        )
    )
    shown = facts(walk)
    for absent in (
        texts.FACT_FREELANCER_ORG,
        texts.FACT_PROFILE_URL,
        texts.FACT_BUDGET,
        texts.FACT_HOURS,
    ):
        assert absent not in shown
    assert shown[texts.FACT_CLASSIFICATION] == texts.CLASSIFICATION_LABELS["confidential"]
    assert texts.FACT_JUSTIFICATION not in walk.shown_text


@pytest.mark.parametrize(
    ("zone", "end", "expected"),
    [
        ("UTC", date(2025, 6, 8), "9 Jun 2025 00:00 (UTC), 9 Jun 2025 00:00 UTC"),
        (
            "America/Los_Angeles",
            date(2025, 6, 8),
            "9 Jun 2025 00:00 (America/Los_Angeles), 9 Jun 2025 07:00 UTC",
        ),
        (
            "Asia/Kolkata",
            date(2025, 12, 31),
            "1 Jan 2026 00:00 (Asia/Kolkata), 31 Dec 2025 18:30 UTC",
        ),
        # The night the clocks go back: that midnight is still summer time (UTC+2).
        (
            "Europe/Berlin",
            date(2025, 10, 25),
            "26 Oct 2025 00:00 (Europe/Berlin), 25 Oct 2025 22:00 UTC",
        ),
    ],
)
def test_access_ends_at_the_local_midnight_after_the_end_date_shown_in_utc_too(
    zone: str, end: date, expected: str
) -> None:
    preview = intake_preview(end_date=end)
    preview = type(preview)(preview.form, preview.team, preview.draft, zone, preview.notes)
    assert facts(check(preview_card(preview)))[texts.FACT_ACCESS_ENDS] == expected


def test_confirm_carries_only_the_draft_version_and_edit_nothing() -> None:
    confirm, edit = check(preview_card(intake_preview(version=42))).actions
    assert (confirm["verb"], confirm["title"], confirm["style"]) == (
        verbs.INTAKE_CONFIRM,
        texts.PREVIEW_CONFIRM,
        "positive",
    )
    assert confirm["data"] == {verbs.DRAFT_VERSION: 42}
    assert (edit["verb"], edit["title"]) == (verbs.INTAKE_EDIT, texts.PREVIEW_EDIT)
    assert "data" not in edit
    # The preview has no inputs: the values are in the draft, not on the card.
    assert confirm["associatedInputs"] == edit["associatedInputs"] == "none"


def test_what_pre_flight_found_is_shown_as_information() -> None:
    other = texts.PREFLIGHT_GUEST_DISABLED.format(name="Jane Doe (Guest)")
    walk = check(preview_card(intake_preview(notes=(PREVIEW_NOTE, other))))
    notes = [b for b in walk.text_blocks if unescape(b["text"]) in (PREVIEW_NOTE, other)]
    assert [unescape(b["text"]) for b in notes] == [PREVIEW_NOTE, other]
    assert all(b["color"] == "accent" for b in notes)


def test_a_message_on_the_preview_is_shown_in_attention_colour() -> None:
    walk = check(preview_card(intake_preview(), message=texts.PREVIEW_OUT_OF_DATE))
    block = walk.block(MESSAGE_ID)
    assert unescape(block["text"]) == texts.PREVIEW_OUT_OF_DATE
    assert block["color"] == "attention"
    assert MESSAGE_ID not in check(preview_card(intake_preview())).ids


def test_the_profile_link_is_shown_as_text_never_as_a_link() -> None:
    url = "https://evil.example/[x](https://phish.example)"
    card = preview_card(intake_preview(profile_url=url))
    walk = check(card)
    assert facts(walk)[texts.FACT_PROFILE_URL] == url
    shown = dict(walk.facts)[texts.FACT_PROFILE_URL]
    assert "[x](" not in shown
    assert not [a for a in walk.actions if a["type"] == "Action.OpenUrl"]
    assert "selectAction" not in str(card)


def test_budgets_read_like_amounts() -> None:
    assert format_budget(Decimal("12500")) == "12,500"
    assert format_budget(Decimal("12500.00")) == "12,500"
    assert format_budget(Decimal("12500.5")) == "12,500.50"
    assert format_budget(Decimal("0.99")) == "0.99"
    assert format_budget(Decimal("1000000000")) == "1,000,000,000"


# --- the approver's and the requester's cards ----------------------------------------------------


def test_the_approval_card_shows_what_the_approver_needs_to_decide() -> None:
    walk = check(approval_card(engagement(**TERMS), role=ViewerRole.APPROVER))
    shown = facts(walk)
    assert shown[texts.FACT_FREELANCER_ORG] == "Upwork"
    assert shown[texts.FACT_PROFILE_URL] == "https://www.upwork.com/freelancers/jane"
    assert shown[texts.FACT_CLASSIFICATION] == texts.CLASSIFICATION_LABELS["confidential"]
    assert shown[texts.FACT_BUDGET] == "12,500"
    assert shown[texts.FACT_HOURS] == "1,200"
    assert f"{texts.FACT_JUSTIFICATION}\n{TERMS['justification']}" in walk.shown_text
    # The decision buttons stay at the end.
    assert [a["verb"] for a in walk.actions] == [
        verbs.APPROVE,
        verbs.REJECT,
        verbs.REQUEST_CHANGES,
        verbs.DELEGATE,
    ]


def test_the_approval_card_leaves_out_terms_that_were_not_given() -> None:
    walk = check(approval_card(engagement(), role=ViewerRole.APPROVER))
    shown = facts(walk)
    for absent in (
        texts.FACT_FREELANCER_ORG,
        texts.FACT_PROFILE_URL,
        texts.FACT_BUDGET,
        texts.FACT_HOURS,
    ):
        assert absent not in shown
    # Every engagement has a classification (internal unless the requester chose).
    assert shown[texts.FACT_CLASSIFICATION] == texts.CLASSIFICATION_LABELS["internal"]
    assert texts.FACT_JUSTIFICATION not in walk.shown_text


def test_the_submitted_card_shows_the_terms_that_go_to_the_approver() -> None:
    shown = facts(check(submitted_card(engagement(**TERMS))))
    assert shown[texts.FACT_CLASSIFICATION] == texts.CLASSIFICATION_LABELS["confidential"]
    assert shown[texts.FACT_BUDGET] == "12,500"
    assert shown[texts.FACT_FREELANCER_ORG] == "Upwork"


# --- builders the official renderer checks too (tests/cards/test_official_renderer.py) -----------

INTAKE_CARDS: dict[str, Builder] = {
    "intake/draft-notice-zone": lambda: intake_card(
        TEAMS,
        today=TODAY,
        values=USER_VALUES,
        justification_required=False,
        time_zone="America/Los_Angeles",
        notice=texts.DRAFT_RESUMED.format(when="3 Mar 2025"),
        draft=True,
    ),
    "intake/form-problem": lambda: intake_card(
        TEAMS,
        today=TODAY,
        values=USER_VALUES,
        errors={FORM_PROBLEM: texts.PREFLIGHT_UNAVAILABLE, FIELD_FREELANCER_NAME: "x"},
        time_zone="UTC",
        draft=True,
    ),
    "intake/huge-values": lambda: intake_card(
        TEAMS, today=TODAY, values=dict.fromkeys(INTAKE_FIELDS, "x" * 10_000)
    ),
    "preview/full": lambda: preview_card(intake_preview()),
    "preview/minimal+message": lambda: preview_card(
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
    "preview/long": lambda: preview_card(
        intake_preview(description="word " * 400, justification="why " * 500)
    ),
    "approval/terms/approver": lambda: approval_card(
        engagement(**TERMS), role=ViewerRole.APPROVER
    ),
    "approval/terms/requester": lambda: approval_card(
        engagement(**TERMS), role=ViewerRole.REQUESTER
    ),
    "submitted/terms": lambda: submitted_card(engagement(**TERMS)),
}


@pytest.mark.parametrize("name", sorted(INTAKE_CARDS))
def test_every_shape_of_these_cards_is_valid_adaptive_card_1_5(name: str) -> None:
    check(INTAKE_CARDS[name]())


def test_a_project_title_is_not_needed_for_a_channel_suggestion() -> None:
    placeholder = form(values={FIELD_PROJECT_TITLE: ""}).input(FIELD_CHANNEL_NAME)["placeholder"]
    assert placeholder == texts.PLACEHOLDER_CHANNEL_NAME
