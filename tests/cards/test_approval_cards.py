"""Approvals (issue 4): the approval card as each role sees it in each state of a request
(waiting in stage 1 or 2, sent back for changes, rejected, cancelled, expired, approved), the
form that sends a request back to its requester for changes, and the notices of approvals.

Only the approver of a waiting request gets decisions; the requester gets Cancel while the
request waits, and never a decision on their own request; anyone else gets a summary that says
nothing about the freelancer, the terms or why the request was made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from cards import verbs
from cards.engagement import MAX_REFRESH_USERS, approval_card
from cards.intake import NOTICE_ID, changes_requested_card, error_block_id
from core import texts
from core.approvals import WAITING_STATES, revision_values
from core.intake import (
    FIELD_BUDGET,
    FIELD_CLASSIFICATION,
    FIELD_END_DATE,
    FIELD_FREELANCER_EMAIL,
    FIELD_PROJECT_TITLE,
    FIELD_START_DATE,
    FIELD_TEAM,
    INTAKE_FIELDS,
)
from core.model import DataClassification, Engagement, EngagementState, ViewerRole
from tests.unit.test_cards import (
    REQUESTER,
    TEAMS,
    TODAY,
    USER_VALUES,
    Walk,
    check,
    decided,
    engagement,
    unescape,
)

Card = dict[str, Any]
Builder = Callable[[], Card]

DECISIONS = {verbs.APPROVE, verbs.REJECT, verbs.REQUEST_CHANGES, verbs.DELEGATE}
WHEN = datetime(2025, 3, 20, 8, 0, tzinfo=UTC)
# What only the requester and the approver may read: the freelancer's address, the terms and
# the texts of the request (someone not involved sees none of it).
PRIVATE = {
    "justification": "The agency is booked until June; we launch in May.",
    "description": "Rebuild the checkout of the public website.",
    "freelancer_email": "jane.private@contoso.com",
    "freelancer_org": "Upwork",
    "profile_url": "https://www.upwork.com/freelancers/jane",
    "budget": Decimal("12500"),
    "hours": 120,
    "data_classification": DataClassification.CONFIDENTIAL,
    "failure_reason": "Graph said no for jane.private@contoso.com.",
}
PRIVATE_SHOWN = (
    "The agency is booked",
    "Rebuild the checkout",
    "jane.private",
    "Upwork",
    "upwork.com",
    "12,500",
    "120",
    texts.CLASSIFICATION_LABELS["confidential"],
    "Graph said no",
)


def pending(stage: int = 1, stages: int = 2, **changes: Any) -> Engagement:
    return engagement(approval_stage=stage, stages=stages, **changes)


def changes_requested(**changes: Any) -> Engagement:
    sent_back = {
        "state": EngagementState.CHANGES_REQUESTED,
        "decision_reason": "Please shorten it to two months.",
    }
    return engagement(**(sent_back | changes))


def cancelled(**changes: Any) -> Engagement:
    cancel = {
        "state": EngagementState.CANCELLED,
        "decided_by_id": REQUESTER,
        "decided_by_name": "Rita Requester",
        "decided_at": WHEN,
    }
    return engagement(**(cancel | changes))


def expired(**changes: Any) -> Engagement:
    return engagement(**({"state": EngagementState.EXPIRED, "decided_at": WHEN} | changes))


# A request in each shape the approval card distinguishes.
SHAPES: dict[str, Callable[..., Engagement]] = {
    "pending-single": lambda **c: pending(1, 1, **c),
    "pending-stage-1-of-2": lambda **c: pending(1, 2, **c),
    "pending-stage-2-of-2": lambda **c: pending(2, 2, **c),
    "changes_requested": changes_requested,
    "rejected": lambda **c: decided(
        EngagementState.REJECTED, decision_reason="Budget is frozen", **c
    ),
    "cancelled": cancelled,
    "expired": expired,
    "provisioning": lambda **c: decided(EngagementState.PROVISIONING, **c),
    "provisioning_failed": lambda **c: decided(
        EngagementState.PROVISIONING_FAILED, **({"failure_reason": "Graph said no."} | c)
    ),
    "active": lambda **c: decided(EngagementState.ACTIVE, sponsor_id=REQUESTER, **c),
    "ended": lambda **c: decided(EngagementState.ENDED, **c),
}
CASES = [(shape, role) for shape in SHAPES for role in ViewerRole]


def card(shape: str, role: ViewerRole, **kwargs: Any) -> Card:
    return approval_card(SHAPES[shape](), role=role, **kwargs)


def verbs_of(walk: Walk) -> list[str]:
    return [action["verb"] for action in walk.actions]


def decision_text(walk: Walk) -> str:
    return unescape(walk.block("decision")["text"])


# --- who gets which buttons ----------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "role"), CASES)
def test_only_the_approver_of_a_waiting_request_gets_decisions(
    shape: str, role: ViewerRole
) -> None:
    subject = SHAPES[shape]()
    walk = check(approval_card(subject, role=role))
    live = role is ViewerRole.APPROVER and subject.state is EngagementState.PENDING_APPROVAL
    assert bool(DECISIONS & set(verbs_of(walk))) is live
    assert bool(walk.inputs) is live


@pytest.mark.parametrize(("shape", "role"), CASES)
def test_only_the_requester_can_cancel_and_only_while_the_request_waits(
    shape: str, role: ViewerRole
) -> None:
    subject = SHAPES[shape]()
    walk = check(approval_card(subject, role=role))
    cancels = [a for a in walk.actions if a["verb"] == verbs.CANCEL_REQUEST]
    if role is ViewerRole.REQUESTER and subject.state in WAITING_STATES:
        (cancel,) = cancels
        assert cancel["title"] == texts.CANCEL_REQUEST
        assert cancel["data"] == {verbs.ENGAGEMENT_ID: 7}
        assert cancel["associatedInputs"] == "none"
        assert walk.actions == cancels  # and nothing else
    else:
        assert not cancels


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_requester_never_gets_a_decision_even_when_also_named_approver(shape: str) -> None:
    # No self-approval: the role decides, whoever is recorded as approver.
    subject = SHAPES[shape](approver_id=REQUESTER, approver_name="Rita Requester")
    walk = check(approval_card(subject, role=ViewerRole.REQUESTER))
    assert not DECISIONS & set(verbs_of(walk))
    assert not walk.inputs


def test_stage_one_approver_can_also_reassign() -> None:
    walk = check(card("pending-stage-1-of-2", ViewerRole.APPROVER))
    assert verbs_of(walk) == [
        verbs.APPROVE,
        verbs.REJECT,
        verbs.REQUEST_CHANGES,
        verbs.DELEGATE,
    ]
    assert [i["id"] for i in walk.inputs] == [verbs.REJECT_REASON, verbs.DELEGATE_TO]
    delegate_to = walk.input(verbs.DELEGATE_TO)
    assert delegate_to["placeholder"] == texts.DELEGATE_TO_PLACEHOLDER
    assert "isRequired" not in delegate_to  # Approve would be blocked by an empty field
    assert unescape(walk.block("stage")["text"]) == texts.STAGE_LABEL.format(stage=1, stages=2)
    for action in walk.actions:
        assert action["data"] == {verbs.ENGAGEMENT_ID: 7}
        assert action["associatedInputs"] == "auto"


def test_stage_two_is_decided_by_the_group_so_nobody_reassigns_it() -> None:
    walk = check(card("pending-stage-2-of-2", ViewerRole.APPROVER))
    assert verbs_of(walk) == [verbs.APPROVE, verbs.REJECT, verbs.REQUEST_CHANGES]
    assert [i["id"] for i in walk.inputs] == [verbs.REJECT_REASON]
    assert unescape(walk.block("stage")["text"]) == texts.STAGE_LABEL.format(stage=2, stages=2)
    comment = walk.input(verbs.REJECT_REASON)
    assert (comment["label"], comment["isMultiline"], comment["maxLength"]) == (
        texts.DECISION_COMMENT_LABEL,
        True,
        500,
    )


def test_a_single_stage_request_shows_no_stage_line() -> None:
    for role in ViewerRole:
        walk = check(card("pending-single", role))
        assert "stage" not in walk.ids
        assert "Stage " not in walk.shown_text


@pytest.mark.parametrize("role", list(ViewerRole))
def test_every_view_of_a_waiting_second_stage_says_which_stage(role: ViewerRole) -> None:
    walk = check(card("pending-stage-2-of-2", role))
    assert texts.STAGE_LABEL.format(stage=2, stages=2) in walk.shown_text


@pytest.mark.parametrize("shape", [s for s in SHAPES if not s.startswith("pending")])
def test_once_the_wait_is_over_nobody_sees_a_stage(shape: str) -> None:
    subject = SHAPES[shape](approval_stage=2, stages=2)
    for role in ViewerRole:
        assert "stage" not in check(approval_card(subject, role=role)).ids


# --- what each role reads -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_someone_not_involved_reads_nothing_private(shape: str) -> None:
    subject = SHAPES[shape](**PRIVATE)
    built = approval_card(subject, role=ViewerRole.OTHER)
    walk = check(built)
    dumped = json.dumps(built, ensure_ascii=False)
    for private in PRIVATE_SHOWN:
        assert private not in walk.shown_text, private
        assert private not in dumped, private
    assert not walk.inputs


@pytest.mark.parametrize("shape", list(SHAPES))
def test_someone_not_involved_reads_which_request_whose_and_its_state(shape: str) -> None:
    subject = SHAPES[shape]()
    walk = check(approval_card(subject, role=ViewerRole.OTHER))
    assert unescape(walk.text_blocks[0]["text"]) == texts.SUMMARY_TITLE.format(ref="FC-7")
    facts = {unescape(t): unescape(v) for t, v in walk.facts}
    assert facts == {
        texts.FACT_PROJECT: "Website redesign",
        texts.FACT_REQUESTER: "Rita Requester",
        texts.FACT_STATE: texts.STATE_LABELS[subject.state.value],
    }


@pytest.mark.parametrize("role", [ViewerRole.APPROVER, ViewerRole.REQUESTER])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_people_involved_read_the_whole_request(shape: str, role: ViewerRole) -> None:
    walk = check(approval_card(SHAPES[shape](**PRIVATE), role=role))
    facts = {unescape(t): unescape(v) for t, v in walk.facts}
    assert facts[texts.FACT_FREELANCER] == "Jane Doe (jane.private@contoso.com)"
    assert facts[texts.FACT_BUDGET] == "12,500"
    assert facts[texts.FACT_STATE] == texts.STATE_LABELS[SHAPES[shape]().state.value]


def test_the_approver_reads_the_description_and_justification() -> None:
    shown = check(approval_card(pending(**PRIVATE), role=ViewerRole.APPROVER)).shown_text
    assert PRIVATE["description"] in shown and PRIVATE["justification"] in shown


# The line that says where the request stands, for each shape (every role reads it, except the
# approver of a waiting request: the card is theirs to decide).
EXPECTED_LINES = {
    "pending-single": texts.APPROVAL_WAITING.format(approver="Alex Approver"),
    "pending-stage-1-of-2": texts.APPROVAL_WAITING.format(approver="Alex Approver"),
    "pending-stage-2-of-2": texts.APPROVAL_WAITING.format(approver=texts.STAGE_TWO_APPROVER),
    "changes_requested": texts.CHANGES_REQUESTED_BY.format(
        name="Alex Approver", comment="Please shorten it to two months."
    ),
    "rejected": texts.DECIDED_REJECTED.format(
        name="Alex Approver", when="4 Mar 2025", reason="Budget is frozen"
    ),
    "cancelled": texts.CANCELLED_BY.format(name="Rita Requester", when="20 Mar 2025"),
    "expired": texts.EXPIRED_ON.format(when="20 Mar 2025"),
    "provisioning": texts.DECIDED_APPROVED.format(name="Alex Approver", when="4 Mar 2025"),
    "provisioning_failed": texts.DECIDED_APPROVED.format(name="Alex Approver", when="4 Mar 2025"),
    "active": texts.DECIDED_APPROVED.format(name="Alex Approver", when="4 Mar 2025"),
    "ended": texts.DECIDED_APPROVED.format(name="Alex Approver", when="4 Mar 2025"),
}


@pytest.mark.parametrize(("shape", "role"), CASES)
def test_every_role_reads_where_the_request_stands(shape: str, role: ViewerRole) -> None:
    walk = check(card(shape, role))
    if role is ViewerRole.APPROVER and shape.startswith("pending"):
        assert "decision" not in walk.ids
    else:
        assert decision_text(walk) == EXPECTED_LINES[shape]


def test_the_requester_reads_the_status_before_the_facts() -> None:
    body = card("changes_requested", ViewerRole.REQUESTER)["body"]
    kinds = [(e["type"], e.get("id")) for e in body]
    assert kinds.index(("TextBlock", "decision")) < kinds.index(("FactSet", None))


def test_a_failed_set_up_gives_its_reason_to_the_people_involved_only() -> None:
    for role in (ViewerRole.APPROVER, ViewerRole.REQUESTER):
        facts = dict(check(card("provisioning_failed", role)).facts)
        assert facts[texts.FACT_REASON] == "Graph said no."
    assert "Graph said no" not in check(card("provisioning_failed", ViewerRole.OTHER)).shown_text


def test_changes_asked_for_in_the_second_stage_name_the_review_group() -> None:
    walk = check(
        approval_card(changes_requested(approval_stage=2, stages=2), role=ViewerRole.OTHER)
    )
    assert decision_text(walk) == texts.CHANGES_REQUESTED_BY.format(
        name=texts.STAGE_TWO_APPROVER[:1].upper() + texts.STAGE_TWO_APPROVER[1:],
        comment="Please shorten it to two months.",
    )


def test_changes_asked_for_by_a_recorded_person_name_them() -> None:
    subject = changes_requested(decided_by_name="Gina Group", approval_stage=2, stages=2)
    line = decision_text(check(approval_card(subject, role=ViewerRole.REQUESTER)))
    assert line.startswith("Gina Group ")


def test_changes_asked_for_without_a_comment_say_so() -> None:
    subject = changes_requested(decision_reason=None)
    line = decision_text(check(approval_card(subject, role=ViewerRole.REQUESTER)))
    assert line.endswith(texts.NO_REASON_GIVEN)


def test_a_cancel_or_expiry_without_its_time_falls_back_to_the_last_change() -> None:
    for subject in (cancelled(decided_at=None), expired(decided_at=None)):
        line = decision_text(check(approval_card(subject, role=ViewerRole.OTHER)))
        assert "3 Mar 2025" in line  # updated_at


# --- message and refresh on every view ----------------------------------------------------------


@pytest.mark.parametrize(("shape", "role"), CASES)
def test_every_view_keeps_the_message_on_top_and_the_refresh(shape: str, role: ViewerRole) -> None:
    users = [f"29:user-{n}" for n in range(MAX_REFRESH_USERS + 15)]
    built = card(shape, role, message=texts.NOT_PENDING, refresh_user_ids=users)
    check(built)
    assert unescape(built["body"][0]["text"]) == texts.NOT_PENDING
    assert built["refresh"]["userIds"] == users[:60]
    assert built["refresh"]["action"]["verb"] == verbs.REFRESH
    assert built["refresh"]["action"]["data"] == {verbs.ENGAGEMENT_ID: 7}
    assert "refresh" not in card(shape, role)


# --- the form sent back for changes ------------------------------------------------------------

TERMS: dict[str, Any] = {
    "justification": "The agency is booked until June.",
    "freelancer_org": "Upwork",
    "profile_url": "https://www.upwork.com/freelancers/jane",
    "data_classification": DataClassification.CONFIDENTIAL,
    "budget": Decimal("12500.50"),
    "hours": 120,
}
COMMENT = "Please shorten it to two months."


def sent_back(**changes: Any) -> Engagement:
    return changes_requested(**(TERMS | changes))


def changes_form(subject: Engagement | None = None, **kwargs: Any) -> Card:
    return changes_requested_card(
        subject or sent_back(),
        teams=kwargs.pop("teams", TEAMS),
        today=TODAY,
        comment=kwargs.pop("comment", COMMENT),
        comment_by=kwargs.pop("comment_by", "Alex Approver"),
        **kwargs,
    )


def test_the_changes_form_is_filled_with_the_request_as_it_was_sent() -> None:
    subject = sent_back()
    walk = check(changes_form(subject))
    expected = revision_values(subject)
    assert tuple(i["id"] for i in walk.inputs) == INTAKE_FIELDS
    for field in INTAKE_FIELDS:
        assert walk.input(field)["value"] == expected[field], field
    assert walk.input(FIELD_CLASSIFICATION)["value"] == "confidential"
    assert walk.input(FIELD_BUDGET)["value"] == "12500.50"
    assert walk.input(FIELD_TEAM)["value"] == "group-marketing"
    assert walk.input(FIELD_START_DATE)["value"] == "2025-03-10"


def test_a_start_date_that_has_passed_meanwhile_says_why_it_is_refused() -> None:
    # The client refuses to send a date before `min` (today): the message says why.
    walk = check(changes_form(sent_back(start_date=date(2025, 3, 1))))
    start = walk.input(FIELD_START_DATE)
    assert (start["value"], start["min"]) == ("2025-03-01", TODAY.isoformat())
    assert start["errorMessage"] == texts.ERR_START_PAST
    errors = {FIELD_START_DATE: texts.ERR_START_PAST + " (server)"}
    served = check(changes_form(values=USER_VALUES, errors=errors)).input(FIELD_START_DATE)
    assert served["errorMessage"] == errors[FIELD_START_DATE]


def test_the_changes_form_says_who_asked_for_what_under_its_title() -> None:
    built = changes_form()
    walk = check(built)
    title, notice = walk.text_blocks[:2]
    assert unescape(title["text"]) == texts.CHANGES_TITLE.format(ref="FC-7")
    assert notice["id"] == NOTICE_ID
    assert unescape(notice["text"]) == texts.CHANGES_NOTICE.format(
        name="Alex Approver", comment=COMMENT
    )
    assert texts.INTAKE_TITLE not in walk.shown_text
    assert texts.INTAKE_INTRO not in walk.shown_text


def test_the_changes_form_only_resubmits_the_engagement() -> None:
    walk = check(changes_form())
    (resubmit,) = walk.actions
    assert (resubmit["verb"], resubmit["title"], resubmit["style"]) == (
        verbs.RESUBMIT,
        texts.CHANGES_SUBMIT,
        "positive",
    )
    assert resubmit["data"] == {verbs.ENGAGEMENT_ID: 7, verbs.REVISION: 1}
    assert resubmit["associatedInputs"] == "auto"


def test_the_changes_form_keeps_what_was_typed_and_shows_errors_under_fields() -> None:
    errors = {FIELD_FREELANCER_EMAIL: texts.ERR_EMAIL, FIELD_END_DATE: texts.ERR_END_BEFORE_START}
    built = changes_form(values=USER_VALUES, errors=errors, time_zone="Europe/Berlin")
    walk = check(built)
    for field, value in USER_VALUES.items():
        assert walk.input(field)["value"] == value, field
    for field, message in errors.items():
        assert unescape(walk.block(error_block_id(field))["text"]) == message
        assert walk.input(field)["errorMessage"] == message
    assert texts.INTAKE_FIX_ERRORS in walk.shown_text
    assert "Europe/Berlin" in walk.shown_text
    assert texts.CHANGES_NOTICE.format(name="Alex Approver", comment=COMMENT) in walk.shown_text
    assert [a["verb"] for a in walk.actions] == [verbs.RESUBMIT]


def test_the_changes_form_says_when_the_justification_is_optional() -> None:
    walk = check(changes_form(justification_required=False))
    assert walk.input("justification")["label"] == texts.LABEL_JUSTIFICATION_OPTIONAL


def test_the_changes_form_without_a_comment_or_name_still_reads() -> None:
    walk = check(changes_form(comment="  ", comment_by=""))
    assert (
        texts.CHANGES_NOTICE.format(name=texts.UNKNOWN_APPROVER, comment=texts.NO_REASON_GIVEN)
        in walk.shown_text
    )


def test_the_changes_form_of_a_team_no_longer_there_lets_the_requester_pick() -> None:
    walk = check(changes_form(sent_back(team_id="group-gone")))
    assert "value" not in walk.input(FIELD_TEAM)


def test_the_changes_form_without_teams_says_so() -> None:
    walk = check(changes_form(teams=[]))
    assert not walk.inputs and not walk.actions
    assert texts.NO_TEAMS in walk.shown_text
    assert texts.CHANGES_TITLE.format(ref="FC-7") in walk.shown_text


def test_a_long_comment_is_cut_and_shown_literally() -> None:
    walk = check(changes_form(comment="**no** " * 200, comment_by="[x](https://evil.example)"))
    notice = walk.block(NOTICE_ID)["text"]
    assert "[x](https://evil.example)" in unescape(notice)
    assert "\\*\\*no\\*\\*" in notice
    assert len(unescape(notice)) < 900


def test_the_changes_form_values_are_the_project_title_as_typed() -> None:
    walk = check(changes_form(values={FIELD_PROJECT_TITLE: "New **title**"}))
    assert walk.input(FIELD_PROJECT_TITLE)["value"] == "New **title**"


# --- builders the official renderer checks too (tests/cards/test_official_renderer.py) -----------

APPROVAL_CARDS: dict[str, Builder] = (
    {
        f"approvals/{shape}/{role.value}": (lambda shape=shape, role=role: card(shape, role))
        for shape, role in CASES
    }
    | {
        f"approvals/{shape}/{role.value}+message+refresh": (
            lambda shape=shape, role=role: card(
                shape,
                role,
                message=texts.NOT_YOUR_DECISION.format(approver="Alex Approver", ref="FC-7"),
                refresh_user_ids=[f"29:user-{n}" for n in range(70)],
            )
        )
        for shape, role in CASES
        if shape in ("pending-stage-1-of-2", "pending-stage-2-of-2", "changes_requested")
    }
    | {
        "approvals/private/other": lambda: approval_card(
            pending(**PRIVATE), role=ViewerRole.OTHER
        ),
        "approvals/private/approver": lambda: approval_card(
            pending(**PRIVATE), role=ViewerRole.APPROVER
        ),
        "changes/prefilled": lambda: changes_form(),
        "changes/errors": lambda: changes_form(
            values=USER_VALUES,
            errors={FIELD_FREELANCER_EMAIL: texts.ERR_EMAIL, "form": texts.PREFLIGHT_UNAVAILABLE},
            time_zone="America/Los_Angeles",
            justification_required=False,
        ),
        "changes/long-comment": lambda: changes_form(comment="Shorter. " * 70),
        "changes/no-teams": lambda: changes_form(teams=[]),
    }
)


@pytest.mark.parametrize("name", sorted(APPROVAL_CARDS))
def test_every_shape_of_these_cards_is_valid_adaptive_card_1_5(name: str) -> None:
    check(APPROVAL_CARDS[name]())
