"""Cards about one engagement (submitted, approval, notices) and lists of engagements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from cards import verbs
from cards.common import (
    LONG_MAX,
    LONG_TEXT_STEPS,
    MESSAGE_MAX,
    REASON_MAX,
    SHORT_MAX,
    Card,
    adaptive_card,
    clause,
    clip,
    date_range,
    end_reason,
    execute,
    fact_set,
    fitted,
    format_date,
    heading,
    lifecycle_facts,
    long_texts,
    sentence,
    state_label,
    summary_facts,
    text_block,
    title_block,
)
from core import approvals, texts
from core.approvals import WAITING_STATES
from core.model import Engagement, EngagementState, Notice, ViewerRole

# Teams refreshes a card automatically for at most 60 listed users.
MAX_REFRESH_USERS = approvals.MAX_REFRESH_USERS
REJECT_REASON_MAX = approvals.MAX_COMMENT_LENGTH  # the reason to reject, or what to change
DELEGATE_TO_MAX = 320  # an e-mail address or UPN (what ApprovalService.delegate reads)
DESCRIPTION_MAX = LONG_MAX  # what intake accepts
MESSAGE_ID = "message"
STAGE_ID = "stage"
DECISION_ID = "decision"


def submitted_card(engagement: Engagement) -> Card:
    """The requester's confirmation that the request was stored, with what the approver gets."""
    return adaptive_card(
        [
            title_block(texts.SUBMITTED_TITLE.format(ref=engagement.ref)),
            text_block(texts.SUBMITTED_BODY),
            summary_facts(engagement, terms=True),
        ]
    )


def approval_card(
    engagement: Engagement,
    *,
    role: ViewerRole,
    message: str | None = None,
    refresh_user_ids: Sequence[str] = (),
) -> Card:
    """The card about a request for approval, as the person with `role` sees it (Universal
    Actions: every viewer gets their own rendering).

    - APPROVER: everything needed to decide; while the request waits for a decision, the
      reason-or-comment input, Approve, Reject and Request changes, and in the first stage a
      Reassign with the person to hand it to. Once decided, the outcome and no buttons.
    - REQUESTER: where the request stands (waiting for whom, decided, sent back, cancelled,
      expired), its facts, and Cancel request while it waits. Never a decision.
    - OTHER (anyone else): a read-only summary without the freelancer's address, the terms,
      the description or the justification.

    `message` (why a click changed nothing, say) is shown on top. `refresh_user_ids` are Teams
    user MRIs (29:...) whose client refreshes the card automatically; at most 60 are kept, and
    no refresh is declared without any.
    """
    return fitted(
        lambda long_max: _approval_card(
            engagement,
            role=role,
            message=message,
            refresh_user_ids=refresh_user_ids,
            long_max=long_max,
        ),
        LONG_TEXT_STEPS,
    )


def _approval_card(
    engagement: Engagement,
    *,
    role: ViewerRole,
    message: str | None,
    refresh_user_ids: Sequence[str],
    long_max: int,
) -> Card:
    body: list[Card] = []
    if message:
        body.append(
            text_block(
                clip(message, MESSAGE_MAX),
                color="warning",
                weight="bolder",
                element_id=MESSAGE_ID,
            )
        )
    actions: list[Card] = []
    match role:
        case ViewerRole.APPROVER:
            body.extend(_approver_view(engagement, long_max))
            if engagement.state is EngagementState.PENDING_APPROVAL:
                actions = _decision_actions(engagement)
        case ViewerRole.REQUESTER:
            body.extend(_requester_view(engagement))
            if engagement.state in WAITING_STATES:
                actions = [
                    execute(
                        verbs.CANCEL_REQUEST,
                        texts.CANCEL_REQUEST,
                        data={verbs.ENGAGEMENT_ID: _id(engagement)},
                        style="destructive",
                    )
                ]
        case ViewerRole.OTHER:
            body.extend(_summary_view(engagement))
        case _:
            assert_never(role)
    return adaptive_card(body, actions=actions, refresh=_refresh(engagement, refresh_user_ids))


def _approver_view(engagement: Engagement, long_max: int) -> list[Card]:
    """What the approver decides on; while it waits for them, the inputs the buttons send."""
    body = [title_block(texts.APPROVAL_TITLE.format(ref=engagement.ref))]
    body.extend(_stage(engagement))
    requester = clip(engagement.requester_name, SHORT_MAX)
    body.append(text_block(texts.APPROVAL_INTRO.format(requester=requester)))
    body.append(summary_facts(engagement, approver=True, terms=True))
    body.extend(long_texts(engagement.description, engagement.justification, long_max))
    if engagement.state is not EngagementState.PENDING_APPROVAL:
        body.append(text_block(decision_line(engagement), weight="bolder", element_id=DECISION_ID))
        body.extend(_failure_facts(engagement))
        return body
    body.append(
        {
            "type": "Input.Text",
            "id": verbs.REJECT_REASON,
            "label": texts.DECISION_COMMENT_LABEL,
            "placeholder": texts.REJECT_REASON_PLACEHOLDER,
            "isMultiline": True,
            "maxLength": REJECT_REASON_MAX,
        }
    )
    if engagement.approval_stage == 1:
        # The second stage belongs to a group: there is nobody to hand it on from.
        body.append(
            {
                "type": "Input.Text",
                "id": verbs.DELEGATE_TO,
                "label": texts.DELEGATE_TO_LABEL,
                "placeholder": texts.DELEGATE_TO_PLACEHOLDER,
                "style": "Email",
                "maxLength": DELEGATE_TO_MAX,
            }
        )
    return body


def _decision_actions(engagement: Engagement) -> list[Card]:
    """Approve, Reject, Request changes and (first stage) Reassign: each sends the engagement id
    and the card's inputs; the handler reads the comment or the person it needs."""
    data = {verbs.ENGAGEMENT_ID: _id(engagement)}
    actions = [
        execute(verbs.APPROVE, texts.APPROVE, data=dict(data), style="positive", inputs=True),
        execute(verbs.REJECT, texts.REJECT, data=dict(data), style="destructive", inputs=True),
        execute(verbs.REQUEST_CHANGES, texts.REQUEST_CHANGES, data=dict(data), inputs=True),
    ]
    if engagement.approval_stage == 1:
        actions.append(execute(verbs.DELEGATE, texts.DELEGATE, data=dict(data), inputs=True))
    return actions


def _requester_view(engagement: Engagement) -> list[Card]:
    """Where the request stands, then what was asked for."""
    body = [title_block(texts.SUMMARY_TITLE.format(ref=engagement.ref))]
    body.extend(_stage(engagement))
    body.append(text_block(decision_line(engagement), weight="bolder", element_id=DECISION_ID))
    body.extend(_failure_facts(engagement))
    body.append(summary_facts(engagement, approver=True, terms=True))
    return body


def _summary_view(engagement: Engagement) -> list[Card]:
    """For someone not involved (any more): which request, whose, and where it stands. Nothing
    about the freelancer, the terms or the reasons for the request."""
    body = [title_block(texts.SUMMARY_TITLE.format(ref=engagement.ref))]
    body.extend(_stage(engagement))
    body.append(
        fact_set(
            [
                (texts.FACT_PROJECT, clip(engagement.project_title, SHORT_MAX)),
                (texts.FACT_REQUESTER, clip(engagement.requester_name, SHORT_MAX)),
                (texts.FACT_STATE, state_label(engagement)),
            ]
        )
    )
    line = status_line(engagement)
    if line:
        body.append(text_block(line, weight="bolder", element_id=DECISION_ID))
    return body


def _stage(engagement: Engagement) -> list[Card]:
    """The stage line ("Stage 2 of 2") while a request needing several approvals waits."""
    if engagement.stages <= 1 or engagement.state is not EngagementState.PENDING_APPROVAL:
        return []
    stage = texts.STAGE_LABEL.format(stage=engagement.approval_stage, stages=engagement.stages)
    return [text_block(stage, subtle=True, spacing="small", element_id=STAGE_ID)]


def _failure_facts(engagement: Engagement) -> list[Card]:
    if engagement.state is EngagementState.PROVISIONING_FAILED and engagement.failure_reason:
        return [fact_set([(texts.FACT_REASON, clip(engagement.failure_reason, REASON_MAX))])]
    return []


def decision_line(engagement: Engagement) -> str:
    """Who decided and when, or who is deciding, or just the status."""
    return status_line(engagement) or state_label(engagement)


def status_line(engagement: Engagement) -> str | None:
    """Who decided and when (or cancelled, or asked for changes), that it expired, or who is
    deciding; None when nothing is known beyond the state."""
    if engagement.state is EngagementState.PENDING_APPROVAL:
        return texts.APPROVAL_WAITING.format(approver=_deciding(engagement))
    return outcome_line(engagement)


def outcome_line(engagement: Engagement) -> str | None:
    """How the wait for a decision ended (approved, rejected, sent back for changes, cancelled,
    expired: who, when, why), None while it waits or when that is not recorded."""
    state = engagement.state
    when = engagement.decided_at or engagement.updated_at
    match state:
        case EngagementState.PENDING_APPROVAL:
            return None
        case EngagementState.CHANGES_REQUESTED:
            return texts.CHANGES_REQUESTED_BY.format(
                name=_changes_asked_by(engagement),
                comment=clip(engagement.decision_reason or texts.NO_REASON_GIVEN, REASON_MAX),
            )
        case EngagementState.CANCELLED:
            # Only the requester cancels.
            name = engagement.decided_by_name or engagement.requester_name
            return texts.CANCELLED_BY.format(name=clip(name, SHORT_MAX), when=format_date(when))
        case EngagementState.EXPIRED:
            return texts.EXPIRED_ON.format(when=format_date(when))
        case EngagementState.REJECTED:
            if not (engagement.decided_by_name and engagement.decided_at):
                return None
            return texts.DECIDED_REJECTED.format(
                name=clip(engagement.decided_by_name, SHORT_MAX),
                when=format_date(engagement.decided_at),
                reason=clip(engagement.decision_reason or texts.NO_REASON_GIVEN, REASON_MAX),
            )
        case (
            EngagementState.PROVISIONING
            | EngagementState.ACTIVE
            | EngagementState.PROVISIONING_FAILED
            | EngagementState.OFFBOARDING
            | EngagementState.OFFBOARDING_FAILED
            | EngagementState.ENDED
        ):
            if not (engagement.decided_by_name and engagement.decided_at):
                return None
            return texts.DECIDED_APPROVED.format(
                name=clip(engagement.decided_by_name, SHORT_MAX),
                when=format_date(engagement.decided_at),
            )
        case _:
            assert_never(state)


def _deciding(engagement: Engagement) -> str:
    """Who decides the stage the request waits in: the approver, or the review group."""
    if engagement.approval_stage > 1:
        return texts.STAGE_TWO_APPROVER
    return clip(engagement.approver_name or texts.UNKNOWN_APPROVER, SHORT_MAX)


def _changes_asked_by(engagement: Engagement) -> str:
    """Who sent the request back: as recorded, else whoever decided the stage it was in (the
    sentence starts with it)."""
    if engagement.decided_by_name:
        return clip(engagement.decided_by_name, SHORT_MAX)
    if engagement.approval_stage == 1 and engagement.approver_name:
        return clip(engagement.approver_name, SHORT_MAX)
    who = texts.STAGE_TWO_APPROVER if engagement.approval_stage > 1 else texts.UNKNOWN_APPROVER
    return who[:1].upper() + who[1:]


def _refresh(engagement: Engagement, user_ids: Sequence[str]) -> Card | None:
    unique = list(dict.fromkeys(uid for uid in user_ids if uid))[:MAX_REFRESH_USERS]
    if not unique:
        return None
    return {
        "action": {
            "type": "Action.Execute",
            "verb": verbs.REFRESH,
            "data": {verbs.ENGAGEMENT_ID: _id(engagement)},
        },
        "userIds": unique,
    }


def _id(engagement: Engagement) -> int:
    if engagement.id is None:
        raise ValueError("engagement has no id before it is stored")
    return engagement.id


def engagement_list_card(
    title: str, engagements: Sequence[Engagement], *, empty_text: str
) -> Card:
    """One compact row per engagement: ref, project, freelancer, status and end date."""
    body: list[Card] = [title_block(clip(title, SHORT_MAX))]
    if not engagements:
        body.append(text_block(clip(empty_text, MESSAGE_MAX)))
    body.extend(_row(engagement) for engagement in engagements)
    return adaptive_card(body)


def _row(engagement: Engagement) -> Card:
    return {
        "type": "ColumnSet",
        "separator": True,
        "columns": [
            {
                "type": "Column",
                "width": "auto",
                "items": [text_block(engagement.ref, weight="bolder")],
            },
            {
                "type": "Column",
                "width": "stretch",
                "items": [
                    text_block(clip(engagement.project_title, SHORT_MAX)),
                    text_block(
                        clip(engagement.freelancer_name, SHORT_MAX),
                        subtle=True,
                        size="small",
                        spacing="none",
                    ),
                ],
            },
            {
                "type": "Column",
                "width": "auto",
                "items": [
                    text_block(state_label(engagement)),
                    text_block(
                        texts.LIST_ENDS.format(date=format_date(engagement.end_date)),
                        subtle=True,
                        size="small",
                        spacing="none",
                    ),
                ],
            },
        ],
    }


def notice_text(engagement: Engagement, notice: Notice, detail: str | None = None) -> str:
    """The sentence that tells the requester, approver or an admin what happened.

    `detail` is what the job carries besides the engagement: the approver's reason for
    EXTENSION_REJECTED (NO_REASON_GIVEN when empty), the admin's name for EXTENDED_BY_ADMIN,
    the new approver's name for ESCALATED and DELEGATED (the engagement's approver when
    empty); the other notices ignore it.
    """
    values = {
        "ref": engagement.ref,
        "requester": clip(engagement.requester_name, SHORT_MAX),
        "approver": clip(engagement.approver_name or texts.UNKNOWN_APPROVER, SHORT_MAX),
        "name": clip(engagement.decided_by_name or texts.UNKNOWN_APPROVER, SHORT_MAX),
        "channel": clip(engagement.channel_name, SHORT_MAX),
        "team": clip(engagement.team_name, SHORT_MAX),
        "freelancer": clip(engagement.freelancer_name, SHORT_MAX),
        "reason": clip(engagement.failure_reason or texts.NO_REASON_GIVEN, REASON_MAX),
        "end": format_date(engagement.end_date),
    }
    match notice:
        case Notice.APPROVER_NOT_INSTALLED:
            template = texts.NOTICE_APPROVER_NOT_INSTALLED
        case Notice.NO_APPROVER:
            template = texts.NOTICE_NO_APPROVER
        case Notice.SENT_FOR_APPROVAL:
            template = texts.NOTICE_SENT_FOR_APPROVAL
        case Notice.APPROVED:
            template = texts.NOTICE_APPROVED
        case Notice.REJECTED:
            template = texts.NOTICE_REJECTED
            values["reason"] = clip(
                engagement.decision_reason or texts.NO_REASON_GIVEN, REASON_MAX
            )
        case Notice.PROVISIONED:
            template = (
                texts.NOTICE_PROVISIONED_REUSED
                if engagement.guest_reused
                else texts.NOTICE_PROVISIONED
            )
        case Notice.PROVISIONING_FAILED:
            template = texts.NOTICE_PROVISIONING_FAILED
        case Notice.ROUTING_FAILED:
            template = texts.NOTICE_ROUTING_FAILED
        case Notice.PROVISIONING_FAILED_ADMIN:
            template = texts.NOTICE_PROVISIONING_FAILED_ADMIN
        case Notice.PROVISIONING_RETRIED:
            template = texts.NOTICE_PROVISIONING_RETRIED
        case Notice.ENDED:
            template = texts.NOTICE_ENDED
            values["reason"] = clause(end_reason(engagement)) or texts.NO_REASON_GIVEN
        case Notice.OFFBOARDING_FAILED:
            template = texts.NOTICE_OFFBOARDING_FAILED
            values["reason"] = sentence(_failure(engagement))
        case Notice.OFFBOARDING_FAILED_ADMIN:
            template = texts.NOTICE_OFFBOARDING_FAILED_ADMIN
            values["reason"] = sentence(_failure(engagement))
        case Notice.EXTENDED:
            template = texts.NOTICE_EXTENDED
        case Notice.EXTENSION_REJECTED:
            template = texts.NOTICE_EXTENSION_REJECTED
            reason = clip(detail.strip(), REASON_MAX) if detail else ""
            values["reason"] = sentence(reason or texts.NO_REASON_GIVEN)
        case Notice.INVITATION_RESENT:
            template = texts.NOTICE_INVITATION_RESENT
        case Notice.EXTENDED_BY_ADMIN:
            template = texts.NOTICE_EXTENDED_BY_ADMIN
            values["admin"] = clip((detail or "").strip() or texts.SOMEONE, SHORT_MAX)
        case Notice.CANCELLED:
            template = texts.NOTICE_CANCELLED
        case Notice.EXPIRED:
            template = texts.NOTICE_EXPIRED
        case Notice.APPROVAL_REMINDER:
            template = texts.NOTICE_APPROVAL_REMINDER
        case Notice.ESCALATED:
            template = texts.NOTICE_ESCALATED
            values["detail"] = _new_approver(engagement, detail)
        case Notice.DELEGATED:
            template = texts.NOTICE_DELEGATED
            values["detail"] = _new_approver(engagement, detail)
        case Notice.STAGE_APPROVED:
            template = texts.NOTICE_STAGE_APPROVED
        case _:
            assert_never(notice)
    return template.format(**values)


def _new_approver(engagement: Engagement, detail: str | None) -> str:
    """Whom the decision went to: the job's detail, else the engagement's approver now."""
    name = (detail or "").strip() or engagement.approver_name or texts.UNKNOWN_APPROVER
    return clip(name, SHORT_MAX)


def _failure(engagement: Engagement) -> str:
    reason = (engagement.failure_reason or "").strip()
    return clip(reason, REASON_MAX) if reason else texts.NO_REASON_GIVEN


_NOTICE_COLORS = {
    Notice.NO_APPROVER: "attention",
    Notice.ROUTING_FAILED: "attention",
    Notice.PROVISIONING_FAILED: "attention",
    Notice.PROVISIONING_FAILED_ADMIN: "attention",
    Notice.OFFBOARDING_FAILED: "attention",
    Notice.OFFBOARDING_FAILED_ADMIN: "attention",
    Notice.APPROVER_NOT_INSTALLED: "warning",
    Notice.EXTENSION_REJECTED: "warning",
    Notice.EXPIRED: "warning",
    Notice.APPROVAL_REMINDER: "warning",
    Notice.PROVISIONED: "good",
    Notice.EXTENDED: "good",
    Notice.EXTENDED_BY_ADMIN: "good",
    Notice.ENDED: "good",
    Notice.STAGE_APPROVED: "good",
}


def notice_card(engagement: Engagement, notice: Notice, detail: str | None = None) -> Card:
    """An asynchronous notice: what happened, and a small summary of the engagement."""
    return adaptive_card(
        [
            text_block(heading(engagement), weight="bolder"),
            text_block(notice_text(engagement, notice, detail), color=_NOTICE_COLORS.get(notice)),
            fact_set(
                [
                    (texts.FACT_FREELANCER, clip(engagement.freelancer_name, SHORT_MAX)),
                    (texts.FACT_DATES, date_range(engagement)),
                    (texts.FACT_TEAM, clip(engagement.team_name, SHORT_MAX)),
                    (texts.FACT_CHANNEL, clip(engagement.channel_name, SHORT_MAX)),
                    *lifecycle_facts(engagement),
                    (texts.FACT_STATE, state_label(engagement)),
                ]
            ),
        ]
    )
