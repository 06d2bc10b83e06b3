"""The lifecycle cards (end reminder, ending early, extension, invitation nudge, closing note)
and the lifecycle notices: the right buttons in the right states for the right viewer, actions
that carry only the engagement id, the inputs the handlers read, and hostile user content
shown literally and bounded."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from cards import verbs
from cards.common import REASON_MAX, clip
from cards.engagement import (
    DESCRIPTION_MAX,
    approval_card,
    notice_card,
    notice_text,
    submitted_card,
)
from cards.lifecycle import (
    closing_note_card,
    end_reminder_card,
    extension_approval_card,
    invitation_nudge_card,
    revoke_confirm_card,
)
from core import texts
from core.model import Engagement, EngagementState, Notice, ViewerRole
from tests.unit.test_cards import (
    APPROVER,
    EVIL,
    REQUESTER,
    STRANGER,
    TODAY,
    Walk,
    active,
    check,
    decided,
    ended,
    engagement,
    has_live_markdown,
    unescape,
)

Card = dict[str, Any]
EXTENSION = date(2025, 7, 31)
NOT_ACTIVE = [state for state in EngagementState if state is not EngagementState.ACTIVE]
TEAMS_MESSAGE_LIMIT = 28_000  # bytes Teams accepts in one message, card included


def in_state(state: EngagementState, **changes: Any) -> Engagement:
    if state is EngagementState.PENDING_APPROVAL:
        return engagement(**changes)
    if state in {EngagementState.OFFBOARDING, EngagementState.OFFBOARDING_FAILED}:
        return ended(state, **changes)
    if state is EngagementState.ENDED:
        return ended(**changes)
    return active(state, **changes)


def executes(walk: Walk) -> list[str]:
    """The verbs of the card's Action.Execute buttons, those in opened forms included."""
    return [a["verb"] for a in walk.actions if a["type"] == "Action.Execute"]


def action(walk: Walk, verb: str) -> Card:
    (found,) = [a for a in walk.actions if a.get("verb") == verb]
    return found


def status_line(card: Card) -> str:
    return unescape(check(card).block("status")["text"])


def every_lifecycle_card(subject: Engagement, viewer: str | None = APPROVER) -> list[Card]:
    return [
        end_reminder_card(subject, today=TODAY),
        revoke_confirm_card(subject, reason="Contract cancelled"),
        extension_approval_card(subject, viewer_id=viewer),
        invitation_nudge_card(subject, days_pending=3),
        closing_note_card(subject),
    ]


# --- every lifecycle card ------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(EngagementState))
@pytest.mark.parametrize(
    "answer", [{}, {"extension_end_date": EXTENSION}, {"let_it_end": True}], ids=str
)
def test_every_lifecycle_action_carries_only_the_engagement_id(
    state: EngagementState, answer: dict[str, Any]
) -> None:
    for card in every_lifecycle_card(in_state(state, **answer)):
        walk = check(card)
        for execute in (a for a in walk.actions if a["type"] == "Action.Execute"):
            assert execute["data"] == {verbs.ENGAGEMENT_ID: 7}


def test_lifecycle_cards_never_show_directory_ids() -> None:
    subject = ended(sponsor_id=REQUESTER, ended_by_id=REQUESTER, extension_end_date=EXTENSION)
    for card in every_lifecycle_card(subject):
        dumped = json.dumps(card)
        assert REQUESTER not in dumped and APPROVER not in dumped


# --- the end reminder ----------------------------------------------------------------------------


def test_reminder_offers_extend_end_now_and_let_it_end_while_active() -> None:
    card = end_reminder_card(active(), today=TODAY)
    walk = check(card)
    extend, end_now, let_it_end = card["actions"]
    assert (extend["type"], extend["title"]) == ("Action.ShowCard", texts.EXTEND_BUTTON)
    assert (end_now["verb"], end_now["title"]) == (verbs.END_NOW, texts.END_NOW_BUTTON)
    assert end_now["style"] == "destructive"
    assert (let_it_end["verb"], let_it_end["title"]) == (
        verbs.LET_IT_END,
        texts.LET_IT_END_BUTTON,
    )
    assert sorted(executes(walk)) == sorted(
        [verbs.EXTEND_REQUEST, verbs.END_NOW, verbs.LET_IT_END]
    )
    # End now and Let it end must not be held up by the extension form's required date.
    assert end_now["associatedInputs"] == let_it_end["associatedInputs"] == "none"
    body = texts.REMINDER_BODY.format(
        freelancer="Jane Doe", channel="Website redesign", team="Marketing"
    )
    assert body in walk.shown_text


def test_reminder_extend_form_asks_for_a_required_date_after_the_current_end() -> None:
    card = end_reminder_card(active(end_date=date(2025, 6, 30)), today=TODAY)
    walk = check(card)
    (new_end,) = walk.inputs
    assert new_end["type"] == "Input.Date"
    assert new_end["id"] == verbs.NEW_END_DATE
    assert new_end["label"] == texts.NEW_END_DATE_LABEL
    assert new_end["min"] == "2025-07-01"
    assert new_end["isRequired"] is True
    assert new_end["errorMessage"] == texts.NEW_END_DATE_ERROR.format(end="30 Jun 2025")
    # The date lives in the Extend… form, which submits it with the extension verb.
    (form,) = [a for a in card["actions"] if a["type"] == "Action.ShowCard"]
    assert form["card"]["body"] == [new_end]
    (submit,) = form["card"]["actions"]
    assert (submit["verb"], submit["title"]) == (verbs.EXTEND_REQUEST, texts.EXTEND_SUBMIT)
    assert submit["associatedInputs"] == "auto"


def test_reminder_min_date_rolls_over_month_and_year_ends() -> None:
    walk = check(end_reminder_card(active(end_date=date(2025, 12, 31)), today=TODAY))
    assert walk.input(verbs.NEW_END_DATE)["min"] == "2026-01-01"


@pytest.mark.parametrize(
    ("days", "title"),
    [
        (14, texts.REMINDER_TITLE_DAYS.format(ref="FC-7", days=14, date="8 Jun 2025")),
        (2, texts.REMINDER_TITLE_DAYS.format(ref="FC-7", days=2, date="8 Jun 2025")),
        (1, texts.REMINDER_TITLE_TOMORROW.format(ref="FC-7", date="8 Jun 2025")),
        (0, texts.REMINDER_TITLE_TODAY.format(ref="FC-7", date="8 Jun 2025")),
        (-3, texts.REMINDER_TITLE_PAST.format(ref="FC-7", date="8 Jun 2025")),
    ],
)
def test_reminder_title_counts_the_days_to_the_end_date(days: int, title: str) -> None:
    today = date(2025, 6, 8) - timedelta(days=days)
    walk = check(end_reminder_card(active(), today=today))
    assert unescape(walk.text_blocks[0]["text"]) == title


def test_reminder_title_says_ends_in_days_with_the_plural() -> None:
    walk = check(end_reminder_card(active(), today=date(2025, 6, 1)))
    assert unescape(walk.text_blocks[0]["text"]) == "FC-7 ends in 7 days, on 8 Jun 2025"


def test_reminder_shows_freelancer_team_channel_and_dates() -> None:
    walk = check(end_reminder_card(active(), today=TODAY))
    facts = {unescape(t): unescape(v) for t, v in walk.facts}
    assert facts[texts.FACT_FREELANCER] == "Jane Doe (jane@contoso.com)"
    assert facts[texts.FACT_TEAM] == "Marketing"
    assert facts[texts.FACT_CHANNEL] == "Website redesign"
    assert facts[texts.FACT_DATES] == "10 Mar 2025 to 8 Jun 2025"
    assert facts[texts.FACT_PROJECT] == "Website redesign"


def test_reminder_with_an_extension_waiting_has_no_buttons_and_says_for_whom() -> None:
    card = end_reminder_card(active(extension_end_date=EXTENSION), today=TODAY)
    walk = check(card)
    assert not walk.actions and not walk.inputs
    assert status_line(card) == texts.REMINDER_EXTENSION_WAITING.format(
        date="31 Jul 2025", approver="Alex Approver", end="8 Jun 2025"
    )


def test_reminder_after_let_it_end_has_no_buttons_and_says_it_ends_as_planned() -> None:
    card = end_reminder_card(active(let_it_end=True), today=TODAY)
    walk = check(card)
    assert not walk.actions and not walk.inputs
    assert status_line(card) == texts.REMINDER_LETTING_END.format(end="8 Jun 2025")


@pytest.mark.parametrize("state", NOT_ACTIVE)
def test_reminder_of_an_engagement_that_is_not_active_has_no_buttons_and_gives_its_state(
    state: EngagementState,
) -> None:
    card = end_reminder_card(in_state(state), today=TODAY)
    walk = check(card)
    assert not walk.actions and not walk.inputs
    assert status_line(card) == texts.LIFECYCLE_STATUS.format(
        ref="FC-7", state=texts.STATE_LABELS[state.value]
    )
    assert unescape(walk.text_blocks[0]["text"]) == "FC-7: Website redesign"


def test_reminder_shows_an_error_message_first_in_attention_colour() -> None:
    error = texts.EXTENSION_NOT_LATER.format(end="8 Jun 2025")
    card = end_reminder_card(active(), today=TODAY, message=error, attention=True)
    first = check(card).block("message")
    assert card["body"][0] is first
    assert (unescape(first["text"]), first["color"]) == (error, "attention")
    assert check(card).actions  # the buttons stay, so the user can try again


def test_reminder_shows_a_confirmation_first_in_good_colour() -> None:
    done = texts.LET_IT_END_RECORDED.format(ref="FC-7", end="8 Jun 2025")
    card = end_reminder_card(active(let_it_end=True), today=TODAY, message=done)
    first = card["body"][0]
    assert (unescape(first["text"]), first["color"]) == (done, "good")


def test_reminder_without_a_message_has_no_message_block() -> None:
    walk = check(end_reminder_card(active(), today=TODAY, message=""))
    assert "message" not in walk.ids


# --- the confirmation of ending early ------------------------------------------------------------


def test_revoke_confirmation_asks_and_explains_what_happens() -> None:
    walk = check(revoke_confirm_card(active(), reason="Contract cancelled"))
    assert unescape(walk.text_blocks[0]["text"]) == "End FC-7 now?"
    explanation = texts.REVOKE_CONFIRM_BODY.format(
        freelancer="Jane Doe",
        channel="Website redesign",
        team="Marketing",
        approver="Alex Approver",
    )
    assert explanation in walk.shown_text
    for what in ("channel", "guest account disabled", "another engagement", "you and"):
        assert what in explanation


def test_revoke_confirmation_prefills_the_reason_as_a_required_bounded_input() -> None:
    walk = check(revoke_confirm_card(active(), reason="Contract cancelled"))
    (reason,) = walk.inputs
    assert reason["type"] == "Input.Text"
    assert reason["id"] == verbs.REVOKE_REASON
    assert reason["value"] == "Contract cancelled"
    assert reason["isRequired"] is True
    assert reason["errorMessage"] == texts.REVOKE_REASON_ERROR
    assert reason["maxLength"] == 500
    assert reason["label"] == texts.REVOKE_REASON_LABEL


def test_revoke_confirmation_has_confirm_and_keep_it() -> None:
    walk = check(revoke_confirm_card(active(), reason="x"))
    confirm, keep = walk.actions
    assert (confirm["verb"], confirm["title"], confirm["style"]) == (
        verbs.REVOKE_CONFIRM,
        texts.REVOKE_CONFIRM_BUTTON,
        "destructive",
    )
    assert confirm["associatedInputs"] == "auto"  # sends the reason
    assert (keep["verb"], keep["title"]) == (verbs.REVOKE_CANCEL, texts.REVOKE_CANCEL_BUTTON)
    assert keep["associatedInputs"] == "none"  # keeping it needs no reason


def test_revoke_confirmation_offers_ending_a_failed_set_up() -> None:
    walk = check(revoke_confirm_card(in_state(EngagementState.PROVISIONING_FAILED), reason="x"))
    assert executes(walk) == [verbs.REVOKE_CONFIRM, verbs.REVOKE_CANCEL]


@pytest.mark.parametrize(
    "state",
    [
        EngagementState.PENDING_APPROVAL,
        EngagementState.REJECTED,
        EngagementState.OFFBOARDING,
        EngagementState.OFFBOARDING_FAILED,
        EngagementState.ENDED,
    ],
)
def test_revoke_confirmation_of_what_cannot_be_ended_says_so_without_buttons(
    state: EngagementState,
) -> None:
    card = revoke_confirm_card(in_state(state), reason="x")
    walk = check(card)
    assert not walk.actions and not walk.inputs
    assert status_line(card) == texts.CANNOT_END_IN_STATE.format(
        ref="FC-7", state=texts.STATE_LABELS[state.value]
    )


def test_revoke_confirmation_while_provisioning_says_to_wait() -> None:
    card = revoke_confirm_card(in_state(EngagementState.PROVISIONING), reason="x")
    assert not check(card).actions
    assert status_line(card) == texts.CANNOT_END_WHILE_PROVISIONING.format(ref="FC-7")


def test_revoke_reason_prefill_is_cut_to_the_input_limit_without_a_marker() -> None:
    walk = check(revoke_confirm_card(active(), reason="r" * 10_000))
    assert walk.input(verbs.REVOKE_REASON)["value"] == "r" * 500


# --- the extension request -----------------------------------------------------------------------


def test_approver_sees_approve_extension_and_reject_with_a_required_reason() -> None:
    card = extension_approval_card(active(extension_end_date=EXTENSION), viewer_id=APPROVER)
    walk = check(card)
    approve, reject_form = card["actions"]
    assert (approve["verb"], approve["title"], approve["style"]) == (
        verbs.EXTENSION_APPROVE,
        texts.EXTENSION_APPROVE_BUTTON,
        "positive",
    )
    assert approve["associatedInputs"] == "none"  # not held up by the reject reason
    assert (reject_form["type"], reject_form["title"]) == (
        "Action.ShowCard",
        texts.EXTENSION_REJECT_BUTTON,
    )
    (reason,) = walk.inputs
    assert reject_form["card"]["body"] == [reason]
    assert reason["type"] == "Input.Text"
    assert reason["id"] == verbs.REJECT_REASON
    assert reason["isRequired"] is True
    assert reason["errorMessage"] == texts.EXTENSION_REJECT_ERROR
    assert reason["maxLength"] == 500
    (reject,) = reject_form["card"]["actions"]
    assert (reject["verb"], reject["style"], reject["associatedInputs"]) == (
        verbs.EXTENSION_REJECT,
        "destructive",
        "auto",
    )


def test_extension_card_names_requester_and_dates() -> None:
    walk = check(extension_approval_card(active(extension_end_date=EXTENSION), viewer_id=APPROVER))
    assert unescape(walk.text_blocks[0]["text"]) == texts.EXTENSION_APPROVAL_TITLE.format(
        requester="Rita Requester", ref="FC-7", date="31 Jul 2025"
    )
    facts = {unescape(t): unescape(v) for t, v in walk.facts}
    assert facts[texts.FACT_CURRENT_END] == "8 Jun 2025"
    assert facts[texts.FACT_REQUESTED_END] == "31 Jul 2025"
    assert facts[texts.FACT_FREELANCER] == "Jane Doe"
    assert facts[texts.FACT_TEAM] == "Marketing"
    assert facts[texts.FACT_CHANNEL] == "Website redesign"


@pytest.mark.parametrize("viewer", [REQUESTER, STRANGER, None])
def test_anyone_but_the_approver_sees_the_extension_waiting_without_buttons(
    viewer: str | None,
) -> None:
    card = extension_approval_card(active(extension_end_date=EXTENSION), viewer_id=viewer)
    walk = check(card)
    assert not walk.actions and not walk.inputs
    assert status_line(card) == texts.APPROVAL_WAITING.format(approver="Alex Approver")


def test_extension_card_without_an_approver_gives_nobody_buttons() -> None:
    subject = active(extension_end_date=EXTENSION, approver_id=None, approver_name=None)
    walk = check(extension_approval_card(subject, viewer_id=None))
    assert not walk.actions and not walk.inputs


@pytest.mark.parametrize("viewer", [APPROVER, REQUESTER, None])
def test_decided_extension_shows_the_current_end_date_without_buttons(
    viewer: str | None,
) -> None:
    card = extension_approval_card(active(end_date=EXTENSION), viewer_id=viewer)
    walk = check(card)
    assert not walk.actions and not walk.inputs
    assert status_line(card) == texts.EXTENSION_NONE_WAITING.format(ref="FC-7", end="31 Jul 2025")
    assert unescape(walk.text_blocks[0]["text"]) == texts.EXTENSION_TITLE.format(ref="FC-7")
    assert texts.FACT_REQUESTED_END not in {unescape(t) for t, _ in walk.facts}


@pytest.mark.parametrize("state", NOT_ACTIVE)
def test_extension_of_an_engagement_that_is_not_active_has_no_buttons(
    state: EngagementState,
) -> None:
    card = extension_approval_card(
        in_state(state, extension_end_date=EXTENSION), viewer_id=APPROVER
    )
    walk = check(card)
    assert not walk.actions and not walk.inputs
    assert status_line(card) == texts.LIFECYCLE_STATUS.format(
        ref="FC-7", state=texts.STATE_LABELS[state.value]
    )


def test_extension_card_shows_the_handlers_message_first() -> None:
    card = extension_approval_card(
        active(extension_end_date=EXTENSION),
        viewer_id=APPROVER,
        message=texts.REJECT_REASON_REQUIRED,
        attention=True,
    )
    first = card["body"][0]
    assert (unescape(first["text"]), first["color"]) == (texts.REJECT_REASON_REQUIRED, "attention")


# --- the invitation nudge ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "ago"), [(0, "today"), (1, "1 day ago"), (3, "3 days ago"), (-1, "today")]
)
def test_nudge_says_since_when_the_invitation_waits(days: int, ago: str) -> None:
    walk = check(invitation_nudge_card(active(), days_pending=days))
    assert (
        f"Jane Doe hasn't accepted the invitation for FC-7 yet (sent {ago}); they won't see "
        "the channel until they do." in walk.shown_text
    )


def test_nudge_hints_at_the_spam_folder_and_the_address_invited() -> None:
    shown = check(invitation_nudge_card(active(), days_pending=3)).shown_text
    assert texts.NUDGE_HINT.format(email="jane@contoso.com") in shown
    assert "spam" in texts.NUDGE_HINT


def test_nudge_offers_resend_while_active() -> None:
    walk = check(invitation_nudge_card(active(), days_pending=3))
    (resend,) = walk.actions
    assert (resend["verb"], resend["title"]) == (
        verbs.RESEND_INVITATION,
        texts.RESEND_INVITATION_BUTTON,
    )
    assert resend["associatedInputs"] == "none"


@pytest.mark.parametrize("state", NOT_ACTIVE)
def test_nudge_offers_no_resend_unless_active(state: EngagementState) -> None:
    card = invitation_nudge_card(in_state(state), days_pending=3)
    assert not check(card).actions
    assert status_line(card) == texts.LIFECYCLE_STATUS.format(
        ref="FC-7", state=texts.STATE_LABELS[state.value]
    )


# --- the closing note ----------------------------------------------------------------------------


def test_closing_note_says_who_ended_it_when_and_why() -> None:
    walk = check(closing_note_card(ended()))
    shown = walk.shown_text
    assert unescape(walk.text_blocks[0]["text"]) == "FC-7 has ended"
    assert "Rita Requester ended it on 2 May 2025: Contract cancelled." in shown
    assert texts.CLOSING_ACCESS_REMOVED.format(freelancer="Jane Doe") in shown
    assert texts.CLOSING_CHANNEL_KEPT in shown
    assert not walk.actions and not walk.inputs


def test_closing_note_says_the_end_date_was_reached_when_nobody_ended_it() -> None:
    subject = ended(ended_by_id=None, ended_by_name=None, end_reason=None, ended_at=None)
    shown = check(closing_note_card(subject)).shown_text
    assert "It ended on 8 Jun 2025: the end date was reached." in shown


def test_closing_note_of_someone_without_a_recorded_time_leaves_the_date_out() -> None:
    shown = check(closing_note_card(ended(ended_at=None, end_reason=""))).shown_text
    assert (
        texts.CLOSING_ENDED_BY_UNDATED.format(
            name="Rita Requester", reason=texts.NO_REASON_GIVEN + "."
        )
        in shown
    )


def test_closing_note_is_the_same_while_access_is_being_removed() -> None:
    # The note is posted during offboarding, before the engagement reaches "ended".
    during = check(closing_note_card(ended(EngagementState.OFFBOARDING))).shown_text
    after = check(closing_note_card(ended())).shown_text
    assert during == after


# --- notices -------------------------------------------------------------------------------------


def test_ended_notice_gives_the_end_reason() -> None:
    assert notice_text(ended(), Notice.ENDED) == texts.NOTICE_ENDED.format(
        ref="FC-7",
        reason="Contract cancelled",
        freelancer="Jane Doe",
        channel="Website redesign",
        team="Marketing",
    )


def test_ended_notice_without_a_reason_says_the_end_date_was_reached() -> None:
    subject = ended(end_reason=None, ended_by_id=None, ended_by_name=None)
    assert "(the end date was reached)" in notice_text(subject, Notice.ENDED)


def test_ended_notice_does_not_double_the_full_stop_of_a_reason() -> None:
    text = notice_text(ended(end_reason="Contract cancelled."), Notice.ENDED)
    assert "(Contract cancelled)." in text


@pytest.mark.parametrize("notice", [Notice.OFFBOARDING_FAILED, Notice.OFFBOARDING_FAILED_ADMIN])
def test_offboarding_failure_notices_give_the_failure_reason(notice: Notice) -> None:
    subject = ended(EngagementState.OFFBOARDING_FAILED, failure_reason="Graph said no")
    text = notice_text(subject, notice)
    assert "failed: Graph said no. " in text
    assert "FC-7" in text and "Jane Doe" in text


def test_offboarding_failure_notice_for_admins_says_how_to_retry() -> None:
    subject = ended(EngagementState.OFFBOARDING_FAILED, failure_reason="Graph said no.")
    assert "/retry FC-7" in notice_text(subject, Notice.OFFBOARDING_FAILED_ADMIN)


def test_extended_notice_names_the_approver_and_the_new_end_date() -> None:
    assert notice_text(active(end_date=EXTENSION), Notice.EXTENDED) == (
        texts.NOTICE_EXTENDED.format(approver="Alex Approver", ref="FC-7", end="31 Jul 2025")
    )


def test_extension_rejected_notice_gives_the_approvers_reason_from_the_detail() -> None:
    text = notice_text(active(), Notice.EXTENSION_REJECTED, "Budget is frozen")
    assert text == texts.NOTICE_EXTENSION_REJECTED.format(
        approver="Alex Approver", ref="FC-7", reason="Budget is frozen.", end="8 Jun 2025"
    )
    card_text = check(notice_card(active(), Notice.EXTENSION_REJECTED, "Budget is frozen"))
    assert text in card_text.shown_text


@pytest.mark.parametrize("detail", [None, "", "   "])
def test_extension_rejected_notice_without_a_reason_says_none_was_given(
    detail: str | None,
) -> None:
    text = notice_text(active(), Notice.EXTENSION_REJECTED, detail)
    assert f": {texts.NO_REASON_GIVEN}. It still ends on 8 Jun 2025." in text


def test_extension_rejected_notice_bounds_a_huge_reason() -> None:
    text = notice_text(active(), Notice.EXTENSION_REJECTED, "x" * 10_000)
    assert len(text) < REASON_MAX + 200
    assert "x…" in text


def test_invitation_resent_notice_names_the_freelancer() -> None:
    assert notice_text(active(), Notice.INVITATION_RESENT) == (
        texts.NOTICE_INVITATION_RESENT.format(freelancer="Jane Doe", ref="FC-7")
    )


@pytest.mark.parametrize(
    ("notice", "color"),
    [
        (Notice.ENDED, "good"),
        (Notice.EXTENDED, "good"),
        (Notice.OFFBOARDING_FAILED, "attention"),
        (Notice.OFFBOARDING_FAILED_ADMIN, "attention"),
        (Notice.EXTENSION_REJECTED, "warning"),
        (Notice.INVITATION_RESENT, None),
    ],
)
def test_lifecycle_notices_are_coloured_like_the_others(notice: Notice, color: str) -> None:
    card = notice_card(ended(), notice)
    assert card["body"][1].get("color") == color


def test_notice_card_keeps_working_without_a_detail() -> None:
    for notice in Notice:
        assert notice_card(active(), notice) == notice_card(active(), notice, None)


# --- sponsor and ended facts on the other cards --------------------------------------------------


def _facts(card: Card) -> dict[str, str]:
    return {unescape(t): unescape(v) for t, v in check(card).facts}


def test_summary_shows_the_requester_as_sponsor_once_recorded() -> None:
    with_sponsor = _facts(approval_card(active(), role=ViewerRole.REQUESTER))
    assert with_sponsor[texts.FACT_SPONSOR] == "Rita Requester"
    assert texts.FACT_SPONSOR not in _facts(approval_card(engagement(), role=ViewerRole.REQUESTER))
    assert texts.FACT_SPONSOR not in _facts(submitted_card(engagement()))
    assert _facts(notice_card(active(), Notice.PROVISIONED))[texts.FACT_SPONSOR] == (
        "Rita Requester"
    )


@pytest.mark.parametrize(
    "state",
    [EngagementState.OFFBOARDING, EngagementState.OFFBOARDING_FAILED, EngagementState.ENDED],
)
def test_summary_of_an_ending_engagement_says_when_by_whom_and_why(
    state: EngagementState,
) -> None:
    expected = "2 May 2025, by Rita Requester: Contract cancelled"
    assert (
        _facts(approval_card(ended(state), role=ViewerRole.REQUESTER))[texts.FACT_ENDED]
        == expected
    )
    assert _facts(notice_card(ended(state), Notice.ENDED))[texts.FACT_ENDED] == expected


def test_summary_of_an_engagement_that_reached_its_end_date_says_so() -> None:
    subject = ended(end_reason=None, ended_by_id=None, ended_by_name=None, ended_at=None)
    assert _facts(approval_card(subject, role=ViewerRole.REQUESTER))[texts.FACT_ENDED] == (
        "8 Jun 2025: the end date was reached"
    )


@pytest.mark.parametrize(
    "state",
    [
        EngagementState.PENDING_APPROVAL,
        EngagementState.ACTIVE,
        EngagementState.PROVISIONING_FAILED,
    ],
)
def test_summary_of_an_engagement_that_is_not_ending_has_no_ended_fact(
    state: EngagementState,
) -> None:
    assert texts.FACT_ENDED not in _facts(
        approval_card(in_state(state), role=ViewerRole.REQUESTER)
    )


# --- hostile user content ------------------------------------------------------------------------

LONG = ("[x](https://evil.example) **b** <i>" * 400)[:10_000]
CONTROL = "Jane\x00\x07\x1b[31m Doe\r\nnext\x7f\x85line\x0b\x0c\tend"
RTL = "\u202eexe.txt\u202c \u2067ltr\u2069 \u200fمرحبا بالعالم שלום"
EMOJI = "🚀 Launch 👩🏽\u200d💻 ✨ 🇩🇪"
HOSTILE = {"markdown": EVIL, "long": LONG, "control": CONTROL, "rtl": RTL, "emoji": EMOJI}
BIDI_OVERRIDES = re.compile("[\u202a-\u202e\u2066-\u2069]")


def hostile(text: str, state: EngagementState = EngagementState.ACTIVE) -> Engagement:
    return in_state(
        state,
        project_title=text,
        freelancer_name=text,
        requester_name=text,
        approver_name=text,
        team_name=text,
        channel_name=text,
        end_reason=text,
        ended_by_name=text,
        failure_reason=text,
        description=text,
        decided_by_name=text,
        decision_reason=text,
        extension_end_date=EXTENSION if state is EngagementState.ACTIVE else None,
    )


def hostile_cards(text: str) -> dict[str, Callable[[], Card]]:
    live = hostile(text)
    over = hostile(text, EngagementState.ENDED)
    return {
        "reminder": lambda: end_reminder_card(
            replace(live, extension_end_date=None), today=TODAY, message=text
        ),
        "reminder-waiting": lambda: end_reminder_card(live, today=TODAY),
        "revoke": lambda: revoke_confirm_card(live, reason=text),
        "extension": lambda: extension_approval_card(live, viewer_id=APPROVER, message=text),
        "nudge": lambda: invitation_nudge_card(live, days_pending=2),
        "closing": lambda: closing_note_card(over),
        "approval-ended": lambda: approval_card(over, role=ViewerRole.REQUESTER),
        "approval-live": lambda: approval_card(
            hostile(text, EngagementState.PENDING_APPROVAL),
            role=ViewerRole.APPROVER,
            message=text,
        ),
        "approval-rejected": lambda: approval_card(
            hostile(text, EngagementState.REJECTED), role=ViewerRole.OTHER
        ),
    } | {
        f"notice-{notice.value}": (lambda notice=notice: notice_card(over, notice, text))
        for notice in Notice
    }


CASES = [(kind, name) for kind in HOSTILE for name in hostile_cards("x")]


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_hostile_user_content_is_escaped_stripped_and_bounded(kind: str, name: str) -> None:
    card = hostile_cards(HOSTILE[kind])[name]()
    walk = check(card)
    for shown in walk.shown:
        assert not has_live_markdown(shown), shown
        assert not BIDI_OVERRIDES.search(shown), shown
        hidden = [c for c in shown if unicodedata.category(c) == "Cc" and c not in "\n\t"]
        assert not hidden, (name, hidden)
        assert len(unescape(shown)) <= DESCRIPTION_MAX + 100, len(shown)
    for field in walk.inputs:
        assert len(field.get("value", "")) <= field.get("maxLength", 10**9)
    assert len(json.dumps(card, ensure_ascii=False).encode()) < TEAMS_MESSAGE_LIMIT


@pytest.mark.parametrize("text", [EMOJI, "مرحبا بالعالم", "שלום עולם", "Zoë Ångström-Łukasz"])
def test_emoji_and_right_to_left_names_are_shown_intact(text: str) -> None:
    subject = active(project_title=text, freelancer_name=text)
    for card in (
        end_reminder_card(subject, today=TODAY),
        invitation_nudge_card(subject, days_pending=3),
        closing_note_card(replace(subject, state=EngagementState.ENDED)),
    ):
        assert text in check(card).shown_text


def test_hostile_reason_is_shown_literally_in_the_closing_note() -> None:
    shown = check(closing_note_card(ended(end_reason=EVIL))).shown_text
    assert EVIL in shown


def test_control_characters_do_not_reach_the_revoke_reason_prefill() -> None:
    walk = check(revoke_confirm_card(active(), reason=CONTROL))
    assert walk.input(verbs.REVOKE_REASON)["value"] == "Jane[31m Doe\nnextline\tend"


@pytest.mark.parametrize(
    ("raw", "limit", "clipped"),
    [
        ("short", 10, "short"),
        ("abcdefghij", 10, "abcdefghij"),
        ("abcdefghijk", 10, "abcdefghi…"),
        ("abc    defgh", 8, "abc…"),
        ("a\r\nb\rc", 10, "a\nb\nc"),
        ("\u202egnp.exe", 10, "gnp.exe"),
        ("tab\tkept\x00", 10, "tab\tkept"),
    ],
)
def test_clip_strips_hidden_characters_and_marks_cut_text(
    raw: str, limit: int, clipped: str
) -> None:
    assert clip(raw, limit) == clipped
    assert len(clip(raw, limit)) <= limit


def test_clip_without_a_marker_just_cuts() -> None:
    assert clip("abcdefghijk", 10, mark=False) == "abcdefghij"


def test_an_active_engagement_with_leftover_end_fields_shows_no_ended_fact() -> None:
    # An approved, active engagement with an ended_by left over is not shown as ended.
    subject = decided(EngagementState.ACTIVE, ended_by_name="Someone", end_reason="x")
    assert texts.FACT_ENDED not in _facts(approval_card(subject, role=ViewerRole.REQUESTER))
