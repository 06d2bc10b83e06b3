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
from core import texts
from core.model import Engagement, EngagementState, Notice

MAX_REFRESH_USERS = 60  # Teams refreshes a card automatically for at most 60 listed users
REJECT_REASON_MAX = 500
DESCRIPTION_MAX = LONG_MAX  # what intake accepts


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
    viewer_id: str | None,
    message: str | None = None,
    refresh_user_ids: Sequence[str] = (),
) -> Card:
    """The approval card. Only the designated approver, while the engagement waits for a
    decision, gets live Approve / Reject buttons; everybody else sees the decision or status.

    `viewer_id` is the Entra object id of who will see this rendering (None: anyone, as in the
    shared message). `refresh_user_ids` are Teams user MRIs (29:...) whose client refreshes the
    card automatically; at most 60 are kept, and no refresh is declared without any.
    """
    return fitted(
        lambda long_max: _approval_card(
            engagement,
            viewer_id=viewer_id,
            message=message,
            refresh_user_ids=refresh_user_ids,
            long_max=long_max,
        ),
        LONG_TEXT_STEPS,
    )


def _approval_card(
    engagement: Engagement,
    *,
    viewer_id: str | None,
    message: str | None,
    refresh_user_ids: Sequence[str],
    long_max: int,
) -> Card:
    body: list[Card] = []
    if message:
        body.append(
            text_block(
                clip(message, MESSAGE_MAX), color="warning", weight="bolder", element_id="message"
            )
        )
    body.append(title_block(texts.APPROVAL_TITLE.format(ref=engagement.ref)))
    requester = clip(engagement.requester_name, SHORT_MAX)
    body.append(text_block(texts.APPROVAL_INTRO.format(requester=requester)))
    body.append(summary_facts(engagement, approver=True, terms=True))
    body.extend(long_texts(engagement.description, engagement.justification, long_max))

    actions: list[Card] = []
    if can_decide(engagement, viewer_id):
        body.append(
            {
                "type": "Input.Text",
                "id": verbs.REJECT_REASON,
                "label": texts.REJECT_REASON_LABEL,
                "placeholder": texts.REJECT_REASON_PLACEHOLDER,
                "isMultiline": True,
                "maxLength": REJECT_REASON_MAX,
            }
        )
        data = {verbs.ENGAGEMENT_ID: _id(engagement)}
        actions = [
            execute(verbs.APPROVE, texts.APPROVE, data=dict(data), style="positive"),
            execute(verbs.REJECT, texts.REJECT, data=dict(data), style="destructive", inputs=True),
        ]
    else:
        body.append(text_block(decision_line(engagement), weight="bolder", element_id="decision"))
        if engagement.state is EngagementState.PROVISIONING_FAILED and engagement.failure_reason:
            body.append(
                fact_set([(texts.FACT_REASON, clip(engagement.failure_reason, REASON_MAX))])
            )

    return adaptive_card(body, actions=actions, refresh=_refresh(engagement, refresh_user_ids))


def can_decide(engagement: Engagement, viewer_id: str | None) -> bool:
    """Whether `viewer_id` gets live buttons: the designated approver of a pending engagement."""
    return (
        engagement.state is EngagementState.PENDING_APPROVAL
        and viewer_id is not None
        and viewer_id == engagement.approver_id
    )


def decision_line(engagement: Engagement) -> str:
    """Who decided and when, or who is deciding, or just the status."""
    if engagement.decided_by_name and engagement.decided_at:
        when = format_date(engagement.decided_at)
        name = clip(engagement.decided_by_name, SHORT_MAX)
        if engagement.state is EngagementState.REJECTED:
            return texts.DECIDED_REJECTED.format(
                name=name,
                when=when,
                reason=clip(engagement.decision_reason or texts.NO_REASON_GIVEN, REASON_MAX),
            )
        return texts.DECIDED_APPROVED.format(name=name, when=when)
    if engagement.state is EngagementState.PENDING_APPROVAL:
        return texts.APPROVAL_WAITING.format(
            approver=clip(engagement.approver_name or texts.UNKNOWN_APPROVER, SHORT_MAX)
        )
    return state_label(engagement)


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
    EXTENSION_REJECTED (NO_REASON_GIVEN when empty); the other notices ignore it.
    """
    values = {
        "ref": engagement.ref,
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
        case _:
            assert_never(notice)
    return template.format(**values)


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
    Notice.PROVISIONED: "good",
    Notice.EXTENDED: "good",
    Notice.EXTENDED_BY_ADMIN: "good",
    Notice.ENDED: "good",
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
