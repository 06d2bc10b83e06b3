"""Cards of an engagement's lifecycle: the end reminder, the confirmation of ending it early,
the extension request to the approver, the nudge about an unaccepted invitation and the closing
note in the engagement's channel.

Like every card, each action carries only its verb and the engagement id (plus the values of
its inputs); the handler reloads the engagement and checks the actor and the state itself.
User content is cut to a bounded length and stripped of control characters (`clip`) before it
goes into a sentence, and escaped (`plain`, through text_block and fact_set) when it is shown.
"""

from __future__ import annotations

from datetime import date, timedelta

from cards import verbs
from cards.common import (
    MESSAGE_MAX,
    SHORT_MAX,
    Card,
    adaptive_card,
    clip,
    end_reason,
    ended_when,
    execute,
    fact_set,
    format_date,
    heading,
    lifecycle_facts,
    sentence,
    state_label,
    text_block,
    title_block,
)
from core import texts
from core.model import Engagement, EngagementState

REVOKE_REASON_MAX = 500  # the handler refuses longer reasons (texts.REVOKE_REASON_TOO_LONG)
EXTENSION_REJECT_REASON_MAX = 500
# Ending early is for engagements that give (or may give) the freelancer access; a failed
# offboarding is continued with /retry, not started again.
ENDABLE_STATES = frozenset({EngagementState.ACTIVE, EngagementState.PROVISIONING_FAILED})
MESSAGE_ID = "message"
STATUS_ID = "status"


# --- who may do what (the handler checks again on the stored engagement) -------------------


def can_answer_reminder(engagement: Engagement) -> bool:
    """Whether the end reminder offers Extend / End now / Let it end: an active engagement
    whose requester has neither asked for an extension nor chosen to let it end."""
    return (
        engagement.state is EngagementState.ACTIVE
        and not engagement.let_it_end
        and engagement.extension_end_date is None
    )


def can_decide_extension(engagement: Engagement, viewer_id: str | None) -> bool:
    """Whether `viewer_id` gets live buttons: the approver, while an extension waits."""
    return (
        engagement.state is EngagementState.ACTIVE
        and engagement.extension_end_date is not None
        and viewer_id is not None
        and viewer_id == engagement.approver_id
    )


# --- the cards ---------------------------------------------------------------------------------


def end_reminder_card(
    engagement: Engagement,
    *,
    today: date,
    message: str | None = None,
    attention: bool = False,
) -> Card:
    """To the requester, before the end date: extend it, end it now or let it end.

    `message` (a confirmation, or with `attention` an error) is shown first when the turn
    re-renders the card. The buttons are there only while `can_answer_reminder`; otherwise a
    line says where things stand.
    """
    values = _values(engagement)
    body = _message(message, attention)
    active = engagement.state is EngagementState.ACTIVE
    body.append(title_block(_countdown(engagement, today) if active else heading(engagement)))
    if can_answer_reminder(engagement):
        body.append(text_block(texts.REMINDER_BODY.format(**values)))
    body.append(_facts(engagement))

    actions: list[Card] = []
    if can_answer_reminder(engagement):
        actions = [
            _show_card(
                "lifecycle.extend.show",
                texts.EXTEND_BUTTON,
                [
                    {
                        "type": "Input.Date",
                        "id": verbs.NEW_END_DATE,
                        "label": texts.NEW_END_DATE_LABEL,
                        "min": (engagement.end_date + timedelta(days=1)).isoformat(),
                        "isRequired": True,
                        "errorMessage": texts.NEW_END_DATE_ERROR.format(end=values["end"]),
                    }
                ],
                _execute(engagement, verbs.EXTEND_REQUEST, texts.EXTEND_SUBMIT, inputs=True),
            ),
            _execute(engagement, verbs.END_NOW, texts.END_NOW_BUTTON, style="destructive"),
            _execute(engagement, verbs.LET_IT_END, texts.LET_IT_END_BUTTON),
        ]
    elif active and engagement.extension_end_date is not None:
        body.append(
            _status(
                texts.REMINDER_EXTENSION_WAITING.format(
                    date=format_date(engagement.extension_end_date), **values
                )
            )
        )
    elif active:
        body.append(_status(texts.REMINDER_LETTING_END.format(**values)))
    else:
        body.append(_status(_not_active(engagement)))
    return adaptive_card(body, actions=actions)


def revoke_confirm_card(engagement: Engagement, *, reason: str) -> Card:
    """The confirmation of /revoke and of End now on the reminder ("End FC-12 now?"): what
    ending it does, the reason (prefilled with `reason`, editable, required), Confirm / Keep it.

    An engagement that can't be ended (any more) gets no input and no buttons, only why.
    """
    values = _values(engagement)
    body: list[Card] = [title_block(texts.REVOKE_CONFIRM_TITLE.format(ref=engagement.ref))]
    if engagement.state not in ENDABLE_STATES:
        body.append(_facts(engagement))
        if engagement.state is EngagementState.PROVISIONING:
            refusal = texts.CANNOT_END_WHILE_PROVISIONING.format(ref=engagement.ref)
        else:
            refusal = texts.CANNOT_END_IN_STATE.format(
                ref=engagement.ref, state=state_label(engagement)
            )
        body.append(_status(refusal))
        return adaptive_card(body)

    body.append(text_block(texts.REVOKE_CONFIRM_BODY.format(**values)))
    body.append(_facts(engagement))
    body.append(
        {
            "type": "Input.Text",
            "id": verbs.REVOKE_REASON,
            "label": texts.REVOKE_REASON_LABEL,
            # An input shows its value literally: kept raw, only made safe and bounded.
            "value": clip(reason, REVOKE_REASON_MAX, mark=False),
            "isMultiline": True,
            "maxLength": REVOKE_REASON_MAX,
            "isRequired": True,
            "errorMessage": texts.REVOKE_REASON_ERROR,
        }
    )
    actions = [
        _execute(
            engagement,
            verbs.REVOKE_CONFIRM,
            texts.REVOKE_CONFIRM_BUTTON,
            style="destructive",
            inputs=True,
        ),
        _execute(engagement, verbs.REVOKE_CANCEL, texts.REVOKE_CANCEL_BUTTON),
    ]
    return adaptive_card(body, actions=actions)


def extension_approval_card(
    engagement: Engagement,
    *,
    viewer_id: str | None,
    message: str | None = None,
    attention: bool = False,
) -> Card:
    """To the approver: the requester asks for a later end date.

    Only the designated approver (`viewer_id` is who sees this rendering), while the extension
    waits and the engagement is active, gets Approve extension / Reject… (with a required
    reason); everybody else, and everybody once it is decided, sees where things stand.
    """
    values = _values(engagement)
    body = _message(message, attention)
    requested = engagement.extension_end_date
    if requested is not None:
        title = texts.EXTENSION_APPROVAL_TITLE.format(date=format_date(requested), **values)
    else:
        title = texts.EXTENSION_TITLE.format(ref=engagement.ref)
    body.append(title_block(title))
    body.append(
        fact_set(
            [
                (texts.FACT_PROJECT, values["project"]),
                (texts.FACT_CURRENT_END, values["end"]),
                (texts.FACT_REQUESTED_END, format_date(requested) if requested else ""),
                (texts.FACT_FREELANCER, values["freelancer"]),
                (texts.FACT_TEAM, values["team"]),
                (texts.FACT_CHANNEL, values["channel"]),
                *lifecycle_facts(engagement),
                (texts.FACT_STATE, state_label(engagement)),
            ]
        )
    )

    actions: list[Card] = []
    if engagement.state is not EngagementState.ACTIVE:
        body.append(_status(_not_active(engagement)))
    elif requested is None:
        body.append(_status(texts.EXTENSION_NONE_WAITING.format(**values)))
    elif can_decide_extension(engagement, viewer_id):
        body.append(text_block(texts.EXTENSION_APPROVAL_INTRO.format(**values)))
        actions = [
            _execute(
                engagement,
                verbs.EXTENSION_APPROVE,
                texts.EXTENSION_APPROVE_BUTTON,
                style="positive",
            ),
            _show_card(
                "lifecycle.extension_reject.show",
                texts.EXTENSION_REJECT_BUTTON,
                [
                    {
                        "type": "Input.Text",
                        "id": verbs.REJECT_REASON,
                        "label": texts.EXTENSION_REJECT_LABEL,
                        "placeholder": texts.REJECT_REASON_PLACEHOLDER,
                        "isMultiline": True,
                        "maxLength": EXTENSION_REJECT_REASON_MAX,
                        "isRequired": True,
                        "errorMessage": texts.EXTENSION_REJECT_ERROR,
                    }
                ],
                _execute(
                    engagement,
                    verbs.EXTENSION_REJECT,
                    texts.EXTENSION_REJECT_SUBMIT,
                    style="destructive",
                    inputs=True,
                ),
            ),
        ]
    else:
        body.append(_status(texts.APPROVAL_WAITING.format(approver=values["approver"])))
    return adaptive_card(body, actions=actions)


def invitation_nudge_card(engagement: Engagement, *, days_pending: int) -> Card:
    """To the requester: the freelancer has not accepted the guest invitation yet.

    "Resend invitation" only while the engagement is active.
    """
    values = _values(engagement)
    body: list[Card] = [
        title_block(texts.NUDGE_TITLE.format(ref=engagement.ref)),
        text_block(texts.NUDGE_BODY.format(ago=_days_ago(days_pending), **values)),
        text_block(texts.NUDGE_HINT.format(**values)),
        _facts(engagement),
    ]
    actions: list[Card] = []
    if engagement.state is EngagementState.ACTIVE:
        actions = [
            _execute(engagement, verbs.RESEND_INVITATION, texts.RESEND_INVITATION_BUTTON),
        ]
    else:
        body.append(_status(_not_active(engagement)))
    return adaptive_card(body, actions=actions)


def closing_note_card(engagement: Engagement) -> Card:
    """Posted in the engagement's channel when it ends: why, by whom, that the freelancer's
    access was removed and that the channel stays for the team's records."""
    values = _values(engagement)
    reason = sentence(end_reason(engagement))
    when = ended_when(engagement)
    if engagement.ended_by_name:
        name = clip(engagement.ended_by_name, SHORT_MAX)
        if when is None:
            ended = texts.CLOSING_ENDED_BY_UNDATED.format(name=name, reason=reason)
        else:
            ended = texts.CLOSING_ENDED_BY.format(name=name, when=format_date(when), reason=reason)
    else:
        when = when or engagement.end_date
        ended = texts.CLOSING_ENDED_ON.format(when=format_date(when), reason=reason)
    return adaptive_card(
        [
            title_block(texts.CLOSING_TITLE.format(ref=engagement.ref)),
            text_block(ended),
            text_block(texts.CLOSING_ACCESS_REMOVED.format(**values)),
            fact_set(
                [
                    (texts.FACT_PROJECT, values["project"]),
                    (texts.FACT_FREELANCER, values["freelancer"]),
                    (texts.FACT_REQUESTER, values["requester"]),
                    (texts.FACT_DATES, values["dates"]),
                ]
            ),
            text_block(texts.CLOSING_CHANNEL_KEPT, subtle=True),
        ]
    )


# --- parts -------------------------------------------------------------------------------------


def _values(engagement: Engagement) -> dict[str, str]:
    """What the sentences put in, user content clipped (escaping comes when it's shown)."""
    start, end = format_date(engagement.start_date), format_date(engagement.end_date)
    return {
        "ref": engagement.ref,
        "project": clip(engagement.project_title, SHORT_MAX),
        "freelancer": clip(engagement.freelancer_name, SHORT_MAX),
        "email": clip(engagement.freelancer_email, SHORT_MAX),
        "requester": clip(engagement.requester_name, SHORT_MAX),
        "approver": clip(engagement.approver_name or texts.UNKNOWN_APPROVER, SHORT_MAX),
        "team": clip(engagement.team_name, SHORT_MAX),
        "channel": clip(engagement.channel_name, SHORT_MAX),
        "end": end,
        "dates": texts.DATE_RANGE.format(start=start, end=end),
    }


def _facts(engagement: Engagement) -> Card:
    values = _values(engagement)
    freelancer = texts.FREELANCER_WITH_EMAIL.format(
        name=values["freelancer"], email=values["email"]
    )
    return fact_set(
        [
            (texts.FACT_PROJECT, values["project"]),
            (texts.FACT_FREELANCER, freelancer),
            (texts.FACT_DATES, values["dates"]),
            (texts.FACT_TEAM, values["team"]),
            (texts.FACT_CHANNEL, values["channel"]),
            *lifecycle_facts(engagement),
            (texts.FACT_STATE, state_label(engagement)),
        ]
    )


def _countdown(engagement: Engagement, today: date) -> str:
    """FC-12 ends in 5 days, on 3 Mar 2025 (tomorrow / today / was due to end)."""
    days = (engagement.end_date - today).days
    values = {"ref": engagement.ref, "date": format_date(engagement.end_date), "days": days}
    if days < 0:
        return texts.REMINDER_TITLE_PAST.format(**values)
    if days == 0:
        return texts.REMINDER_TITLE_TODAY.format(**values)
    if days == 1:
        return texts.REMINDER_TITLE_TOMORROW.format(**values)
    return texts.REMINDER_TITLE_DAYS.format(**values)


def _days_ago(days: int) -> str:
    if days <= 0:
        return texts.DAYS_AGO_TODAY
    if days == 1:
        return texts.DAYS_AGO_ONE
    return texts.DAYS_AGO_MANY.format(days=days)


def _not_active(engagement: Engagement) -> str:
    return texts.LIFECYCLE_STATUS.format(ref=engagement.ref, state=state_label(engagement))


def _message(message: str | None, attention: bool) -> list[Card]:
    if not message:
        return []
    return [
        text_block(
            clip(message, MESSAGE_MAX),
            color="attention" if attention else "good",
            weight="bolder",
            element_id=MESSAGE_ID,
        )
    ]


def _status(text: str) -> Card:
    return text_block(text, weight="bolder", element_id=STATUS_ID)


def _execute(
    engagement: Engagement,
    verb: str,
    title: str,
    *,
    style: str | None = None,
    inputs: bool = False,
) -> Card:
    """An Action.Execute carrying only the engagement id (see `execute`)."""
    data = {verbs.ENGAGEMENT_ID: _id(engagement)}
    return execute(verb, title, data=data, style=style, inputs=inputs)


def _show_card(action_id: str, title: str, body: list[Card], submit: Card) -> Card:
    """A button that opens a small form (its inputs and the action that submits them)."""
    return {
        "type": "Action.ShowCard",
        "id": action_id,
        "title": title,
        "card": {"type": "AdaptiveCard", "body": body, "actions": [submit]},
    }


def _id(engagement: Engagement) -> int:
    if engagement.id is None:
        raise ValueError("engagement has no id before it is stored")
    return engagement.id
